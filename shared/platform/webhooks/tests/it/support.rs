//! Correctly signed requests for every scheme, built by hand from the vendors' descriptions (not
//! with the code under test, except the Standard Webhooks `v1` signer which is checked against
//! the published vector and the reference crate).
#![allow(dead_code, unreachable_pub)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use ed25519_dalek::Signer as _;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use p256::ecdsa::signature::DigestSigner as _;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use webhooks::{
    AzureDevOpsAuth, GenericHmac, Scheme, Secret, SignatureEncoding, TwilioVariant, Unverified,
    outbound,
};

pub const NOW: i64 = 1_700_000_000;

pub fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(NOW, 0).unwrap()
}

pub fn at(ts: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(ts, 0).unwrap()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Github,
    Stripe,
    TwilioForm,
    TwilioSha256,
    TwilioJson,
    StandardV1,
    StandardV1a,
    Slack,
    Shopify,
    ShopifyUnprefixed,
    AdoBasic,
    AdoHeader,
    EventGridQuery,
    EventGridHeader,
    Generic,
    GenericNoTimestamp,
    GenericBase64,
    SendGrid,
    Zendesk,
    Hubspot,
    Bill,
}

pub const ALL: &[Kind] = &[
    Kind::Github,
    Kind::Stripe,
    Kind::TwilioForm,
    Kind::TwilioSha256,
    Kind::TwilioJson,
    Kind::StandardV1,
    Kind::StandardV1a,
    Kind::Slack,
    Kind::Shopify,
    Kind::ShopifyUnprefixed,
    Kind::AdoBasic,
    Kind::AdoHeader,
    Kind::EventGridQuery,
    Kind::EventGridHeader,
    Kind::Generic,
    Kind::GenericNoTimestamp,
    Kind::GenericBase64,
    Kind::SendGrid,
    Kind::Zendesk,
    Kind::Hubspot,
    Kind::Bill,
];

const KEY: &str = "test-secret-of-the-tenant";
const OTHER_KEY: &str = "another-secret-entirely";
const STD_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const STD_OTHER: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

pub fn ed25519_key(seed: u8) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
}

pub fn p256_key(seed: u8) -> p256::ecdsa::SigningKey {
    let mut bytes = [seed; 32];
    bytes[0] = 1;
    p256::ecdsa::SigningKey::from_slice(&bytes).unwrap()
}

fn p256_secret(seed: u8) -> Secret {
    // DER SubjectPublicKeyInfo: the fixed P-256 header, then the uncompressed point.
    let mut der = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    let point = p256_key(seed).verifying_key().to_encoded_point(false);
    der.extend_from_slice(point.as_bytes());
    Secret::sendgrid_public_key(&STANDARD.encode(der)).unwrap()
}

fn whpk(seed: u8) -> Secret {
    let pk = ed25519_key(seed).verifying_key();
    Secret::standard_webhooks(&format!("whpk_{}", STANDARD.encode(pk.as_bytes()))).unwrap()
}

impl Kind {
    pub fn scheme(self) -> Scheme {
        match self {
            Self::Github => Scheme::Github,
            Self::Stripe => Scheme::stripe(),
            Self::TwilioForm | Self::TwilioJson => Scheme::Twilio {
                variant: TwilioVariant::Sha1,
            },
            Self::TwilioSha256 => Scheme::Twilio {
                variant: TwilioVariant::Sha256,
            },
            Self::StandardV1 | Self::StandardV1a => Scheme::standard_webhooks(),
            Self::Slack => Scheme::slack(),
            Self::Shopify | Self::ShopifyUnprefixed => Scheme::Shopify,
            Self::AdoBasic => Scheme::AzureDevOps {
                mode: AzureDevOpsAuth::Basic {
                    username: "ado".into(),
                },
            },
            Self::AdoHeader => Scheme::AzureDevOps {
                mode: AzureDevOpsAuth::Header {
                    name: "X-Ado-Key".into(),
                },
            },
            Self::EventGridQuery | Self::EventGridHeader => Scheme::event_grid(),
            Self::Generic => Scheme::GenericHmac(GenericHmac::default()),
            Self::GenericNoTimestamp => Scheme::GenericHmac(GenericHmac {
                timestamp_header: None,
                ..GenericHmac::default()
            }),
            Self::GenericBase64 => Scheme::GenericHmac(GenericHmac {
                encoding: SignatureEncoding::Base64,
                prefix: String::new(),
                ..GenericHmac::default()
            }),
            Self::SendGrid => Scheme::sendgrid(),
            Self::Zendesk => Scheme::zendesk(),
            Self::Hubspot => Scheme::hubspot(),
            Self::Bill => Scheme::Bill,
        }
    }

    pub fn secret(self) -> Secret {
        match self {
            Self::StandardV1 => Secret::standard_webhooks(STD_SECRET).unwrap(),
            Self::StandardV1a => whpk(7),
            Self::SendGrid => p256_secret(7),
            _ => Secret::for_scheme(&self.scheme(), KEY).unwrap(),
        }
    }

    pub fn wrong_secret(self) -> Secret {
        match self {
            Self::StandardV1 => Secret::standard_webhooks(STD_OTHER).unwrap(),
            Self::StandardV1a => whpk(8),
            Self::SendGrid => p256_secret(8),
            _ => Secret::for_scheme(&self.scheme(), OTHER_KEY).unwrap(),
        }
    }

    /// Timestamped schemes (replay window).
    pub fn timestamped(self) -> bool {
        matches!(
            self,
            Self::Stripe
                | Self::StandardV1
                | Self::StandardV1a
                | Self::Slack
                | Self::Generic
                | Self::GenericBase64
                | Self::SendGrid
                | Self::Zendesk
                | Self::Hubspot
        )
    }

    /// Whether every byte of the body is covered by the signature. Twilio form bodies are
    /// signed as decoded parameters (`+` and `%20` are the same), shared-secret schemes sign
    /// nothing.
    pub fn binds_body_bytes(self) -> bool {
        !matches!(
            self,
            Self::TwilioForm
                | Self::TwilioSha256
                | Self::AdoBasic
                | Self::AdoHeader
                | Self::EventGridQuery
                | Self::EventGridHeader
        )
    }

    /// Headers whose absence must be refused.
    pub fn required_headers(self) -> &'static [&'static str] {
        match self {
            Self::Github => &["x-hub-signature-256"],
            Self::Stripe => &["stripe-signature"],
            Self::TwilioForm | Self::TwilioSha256 | Self::TwilioJson => &["x-twilio-signature"],
            Self::StandardV1 | Self::StandardV1a => {
                &["webhook-id", "webhook-timestamp", "webhook-signature"]
            }
            Self::Slack => &["x-slack-signature", "x-slack-request-timestamp"],
            Self::Shopify => &["x-shopify-hmac-sha256"],
            Self::ShopifyUnprefixed => &["shopify-hmac-sha256"],
            Self::AdoBasic => &["authorization"],
            Self::AdoHeader => &["x-ado-key"],
            Self::EventGridQuery => &[],
            Self::EventGridHeader => &["x-webhook-key"],
            Self::Generic | Self::GenericBase64 => &["x-signature", "x-timestamp"],
            Self::GenericNoTimestamp => &["x-signature"],
            Self::SendGrid => &[
                "x-twilio-email-event-webhook-signature",
                "x-twilio-email-event-webhook-timestamp",
            ],
            Self::Zendesk => &[
                "x-zendesk-webhook-signature",
                "x-zendesk-webhook-signature-timestamp",
            ],
            Self::Hubspot => &["x-hubspot-signature-v3", "x-hubspot-request-timestamp"],
            Self::Bill => &["x-bill-sha-signature"],
        }
    }

    /// The header carrying the signed timestamp (Stripe's is inside its signature header).
    pub fn timestamp_header(self) -> Option<&'static str> {
        match self {
            Self::Stripe => Some("stripe-signature"),
            Self::StandardV1 | Self::StandardV1a => Some("webhook-timestamp"),
            Self::Slack => Some("x-slack-request-timestamp"),
            Self::Generic | Self::GenericBase64 => Some("x-timestamp"),
            Self::SendGrid => Some("x-twilio-email-event-webhook-timestamp"),
            Self::Zendesk => Some("x-zendesk-webhook-signature-timestamp"),
            Self::Hubspot => Some("x-hubspot-request-timestamp"),
            _ => None,
        }
    }

    /// The header carrying the signature or shared secret.
    pub fn signature_header(self) -> Option<&'static str> {
        match self {
            Self::EventGridQuery => None,
            _ => self.required_headers().first().copied(),
        }
    }
}

/// A request as a vendor would send it.
#[derive(Debug, Clone)]
pub struct Signed {
    pub kind: Kind,
    pub scheme: Scheme,
    pub secret: Secret,
    pub url: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Signed {
    pub fn request(&self) -> Unverified<'_> {
        Unverified::new(Method::POST, &self.url, &self.headers, &self.body)
    }

    pub fn verify(&self) -> Result<webhooks::Verified<'_>, webhooks::VerifyError> {
        self.request().verify(&self.scheme, &self.secret, now())
    }

    pub fn with_body(&self, body: Vec<u8>) -> Self {
        Self {
            body,
            ..self.clone()
        }
    }
}

fn hmac256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn put(h: &mut HeaderMap, name: &str, value: &str) {
    h.insert(
        HeaderName::from_bytes(name.as_bytes()).unwrap(),
        HeaderValue::from_str(value).unwrap(),
    );
}

pub fn twilio_string(url: &str, body: &[u8]) -> Vec<u8> {
    let mut params: Vec<(String, String)> = form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    params.sort();
    let mut s = url.as_bytes().to_vec();
    for (k, v) in params {
        s.extend_from_slice(k.as_bytes());
        s.extend_from_slice(v.as_bytes());
    }
    s
}

/// A request of `kind` carrying `body`, signed at `ts`.
pub fn signed(kind: Kind, body: &[u8], ts: i64) -> Signed {
    let mut h = HeaderMap::new();
    let mut url = "https://hooks.example.com/api/webhooks/inbound/src_1".to_owned();
    let key = KEY.as_bytes();
    let t = ts.to_string();
    match kind {
        Kind::Github => {
            put(
                &mut h,
                "X-GitHub-Delivery",
                "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            );
            put(&mut h, "X-GitHub-Event", "push");
            put(
                &mut h,
                "X-Hub-Signature-256",
                &format!("sha256={}", hex(&hmac256(key, body))),
            );
        }
        Kind::Stripe => {
            let mut signed = format!("{t}.").into_bytes();
            signed.extend_from_slice(body);
            put(
                &mut h,
                "Stripe-Signature",
                &format!("t={t},v1={}", hex(&hmac256(key, &signed))),
            );
        }
        Kind::TwilioForm | Kind::TwilioSha256 => {
            url.push_str("?run=r-42");
            put(&mut h, "Content-Type", "application/x-www-form-urlencoded");
            let data = twilio_string(&url, body);
            let sig = if kind == Kind::TwilioForm {
                let mut m = Hmac::<Sha1>::new_from_slice(key).unwrap();
                m.update(&data);
                m.finalize().into_bytes().to_vec()
            } else {
                hmac256(key, &data)
            };
            put(&mut h, "X-Twilio-Signature", &STANDARD.encode(sig));
        }
        Kind::TwilioJson => {
            url.push_str(&format!("?bodySHA256={}", hex(&Sha256::digest(body))));
            put(&mut h, "Content-Type", "application/json");
            let mut m = Hmac::<Sha1>::new_from_slice(key).unwrap();
            m.update(url.as_bytes());
            put(
                &mut h,
                "X-Twilio-Signature",
                &STANDARD.encode(m.finalize().into_bytes()),
            );
        }
        Kind::StandardV1 => {
            let secret = Secret::standard_webhooks(STD_SECRET).unwrap();
            put(&mut h, "webhook-id", "msg_1");
            put(&mut h, "webhook-timestamp", &t);
            put(
                &mut h,
                "webhook-signature",
                &outbound::sign(&secret, "msg_1", ts, body).unwrap(),
            );
        }
        Kind::StandardV1a => {
            let mut msg = format!("msg_1.{t}.").into_bytes();
            msg.extend_from_slice(body);
            let sig = ed25519_key(7).sign(&msg);
            put(&mut h, "webhook-id", "msg_1");
            put(&mut h, "webhook-timestamp", &t);
            put(
                &mut h,
                "webhook-signature",
                &format!("v1a,{}", STANDARD.encode(sig.to_bytes())),
            );
        }
        Kind::Slack => {
            let mut base = format!("v0:{t}:").into_bytes();
            base.extend_from_slice(body);
            put(&mut h, "X-Slack-Request-Timestamp", &t);
            put(
                &mut h,
                "X-Slack-Signature",
                &format!("v0={}", hex(&hmac256(key, &base))),
            );
        }
        Kind::Shopify | Kind::ShopifyUnprefixed => {
            let sig = STANDARD.encode(hmac256(key, body));
            if kind == Kind::Shopify {
                put(&mut h, "X-Shopify-Hmac-SHA256", &sig);
                put(
                    &mut h,
                    "X-Shopify-Webhook-Id",
                    "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
                );
                put(&mut h, "X-Shopify-Topic", "orders/create");
            } else {
                put(&mut h, "Shopify-Hmac-Sha256", &sig);
                put(
                    &mut h,
                    "Shopify-Webhook-Id",
                    "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
                );
                put(&mut h, "Shopify-Topic", "orders/create");
            }
        }
        Kind::AdoBasic => {
            put(
                &mut h,
                "Authorization",
                &format!("Basic {}", STANDARD.encode(format!("ado:{KEY}"))),
            );
        }
        Kind::AdoHeader => put(&mut h, "X-Ado-Key", KEY),
        Kind::EventGridQuery => {
            url.push_str(&format!("?code={KEY}"));
            put(&mut h, "aeg-event-type", "Notification");
        }
        Kind::EventGridHeader => {
            put(&mut h, "aeg-event-type", "Notification");
            put(&mut h, "x-webhook-key", KEY);
        }
        Kind::Generic | Kind::GenericBase64 => {
            let mut signed = format!("{t}.").into_bytes();
            signed.extend_from_slice(body);
            let mac = hmac256(key, &signed);
            let sig = if kind == Kind::Generic {
                format!("sha256={}", hex(&mac))
            } else {
                STANDARD.encode(mac)
            };
            put(&mut h, "X-Signature", &sig);
            put(&mut h, "X-Timestamp", &t);
            put(&mut h, "X-Event-Id", "evt_generic_1");
            put(&mut h, "X-Event-Type", "thing.happened");
        }
        Kind::GenericNoTimestamp => {
            put(
                &mut h,
                "X-Signature",
                &format!("sha256={}", hex(&hmac256(key, body))),
            );
        }
        Kind::SendGrid => {
            let digest = Sha256::new().chain_update(t.as_bytes()).chain_update(body);
            let sig: p256::ecdsa::Signature = p256_key(7).sign_digest(digest);
            put(
                &mut h,
                "X-Twilio-Email-Event-Webhook-Signature",
                &STANDARD.encode(sig.to_der()),
            );
            put(&mut h, "X-Twilio-Email-Event-Webhook-Timestamp", &t);
        }
        Kind::Zendesk => {
            // Zendesk's timestamp is an ISO 8601 instant, signed as sent.
            let iso = at(ts).format("%Y-%m-%dT%H:%M:%SZ").to_string();
            let mut signed = iso.clone().into_bytes();
            signed.extend_from_slice(body);
            put(&mut h, "X-Zendesk-Webhook-Signature-Timestamp", &iso);
            put(
                &mut h,
                "X-Zendesk-Webhook-Signature",
                &STANDARD.encode(hmac256(key, &signed)),
            );
            put(&mut h, "X-Zendesk-Webhook-Id", "01HXYZWEBHOOK");
        }
        Kind::Hubspot => {
            // Milliseconds, signed after method, URL and body.
            let millis = format!("{t}000");
            let mut signed = format!("POST{url}").into_bytes();
            signed.extend_from_slice(body);
            signed.extend_from_slice(millis.as_bytes());
            put(&mut h, "X-HubSpot-Request-Timestamp", &millis);
            put(
                &mut h,
                "X-HubSpot-Signature-v3",
                &STANDARD.encode(hmac256(key, &signed)),
            );
        }
        Kind::Bill => {
            put(
                &mut h,
                "x-bill-sha-signature",
                &STANDARD.encode(hmac256(key, body)),
            );
        }
    }
    Signed {
        kind,
        scheme: kind.scheme(),
        secret: kind.secret(),
        url,
        headers: h,
        body: body.to_vec(),
    }
}
