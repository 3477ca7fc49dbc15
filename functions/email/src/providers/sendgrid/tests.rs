//! SendGrid against a faithful fake over real HTTP (wiremock).

use std::time::{Duration, Instant};

use domain::FailureClassification;
use serde_json::json;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::providers::testing::{self, Harness, Perform as _, RUN, assert_no_secret, email};

const KEY: &str = "SG.test-key.s3cr3t";

fn harness_at(base: &str) -> Harness {
    testing::harness(
        "sendgrid",
        CredentialKind::ApiKey,
        json!({"apiKey": KEY}),
        json!({"from": "noreply@example.com", "baseUrl": base}),
    )
}

fn harness(server: &MockServer) -> Harness {
    harness_at(&server.uri())
}

fn sendgrid() -> SendGrid {
    SendGrid::new(testing::net())
}

async fn mount_send(server: &MockServer, answer: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .respond_with(answer)
        .mount(server)
        .await;
}

fn accepted() -> ResponseTemplate {
    ResponseTemplate::new(202).insert_header("X-Message-Id", "14c5d75ce93.dfd.64b469")
}

#[tokio::test]
async fn sends_the_v3_mail_send_shape() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(header("content-type", "application/json"))
        .and(body_partial_json(json!({
            "personalizations": [{
                "to": [{"email": "ada@example.com"}],
                "cc": [{"email": "grace@example.com"}],
                "bcc": [{"email": "alan@example.com"}],
                "custom_args": {"run_id": RUN},
            }],
            "from": {"email": "noreply@example.com"},
            "subject": "Hello",
            "attachments": [{"content": "aGVsbG8=", "filename": "note.txt", "type": "text/plain", "disposition": "attachment"}],
        })))
        .respond_with(accepted())
        .expect(1)
        .mount(&server)
        .await;
    let out = sendgrid()
        .perform(&harness(&server).call(), &email())
        .await
        .expect("sent");
    assert_eq!(
        out.vendor_message_id.as_deref(),
        Some("14c5d75ce93.dfd.64b469")
    );
    assert_eq!(out.summary["status"], "accepted");
    assert_eq!(out.summary["attempts"], 1);
    let received = server.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(
        body["content"],
        json!([
            {"type": "text/plain", "value": "Plain body"},
            {"type": "text/html", "value": "<p>HTML body</p>"},
        ]),
        "text/plain comes first"
    );
    // An html-only message with `from` given, and no run: no custom_args.
    let server = MockServer::start().await;
    mount_send(&server, accepted()).await;
    let mut h = harness(&server);
    h.idempotency_key = None;
    let input = json!({"to": ["a@example.com"], "subject": "s", "html": "<b>x</b>", "from": "news@example.com"});
    sendgrid().perform(&h.call(), &input).await.unwrap();
    let received = server.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(body["from"], json!({"email": "news@example.com"}));
    assert_eq!(
        body["content"],
        json!([{"type": "text/html", "value": "<b>x</b>"}])
    );
    assert!(body["personalizations"][0].get("custom_args").is_none());
    assert!(body["personalizations"][0].get("cc").is_none());
    assert!(body.get("attachments").is_none());
}

#[tokio::test]
async fn a_validation_error_carries_the_vendors_message_and_field() {
    let server = MockServer::start().await;
    mount_send(
        &server,
        ResponseTemplate::new(400).set_body_json(json!({"errors": [{
            "message": "Does not contain a valid address.",
            "field": "personalizations.0.to.0.email",
            "help": "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.personalizations.to"
        }]})),
    )
    .await;
    let e = sendgrid()
        .perform(&harness(&server).call(), &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Validation);
    assert_eq!(e.failure.vendor_status, Some(400));
    assert!(
        e.failure
            .message
            .contains("Does not contain a valid address. (field personalizations.0.to.0.email)"),
        "{}",
        e.failure.message
    );
    assert_eq!(e.attempts, 1);
    assert!(!e.retryable);
}

#[tokio::test]
async fn an_auth_error_names_no_secret() {
    let server = MockServer::start().await;
    mount_send(
        &server,
        ResponseTemplate::new(401).set_body_json(json!({"errors": [{
            "message": "The provided authorization grant is invalid, expired, or revoked",
            "field": null
        }]})),
    )
    .await;
    let e = sendgrid()
        .perform(&harness(&server).call(), &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Auth);
    assert_eq!(e.failure.vendor_status, Some(401));
    assert!(e.failure.message.contains("authorization grant is invalid"));
    assert_no_secret(&e, &[KEY, "s3cr3t"]);
}

#[tokio::test]
async fn a_429_is_retried_after_retry_after_even_though_the_send_is_unsafe() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_send(&server, accepted()).await;
    let started = Instant::now();
    let out = sendgrid()
        .perform(&harness(&server).call(), &email())
        .await
        .unwrap();
    assert_eq!(out.summary["attempts"], 2);
    assert!(started.elapsed() >= Duration::from_secs(1));
    // The reset header alone is honoured too.
    let server = MockServer::start().await;
    mount_send(
        &server,
        ResponseTemplate::new(429).insert_header("X-RateLimit-Reset", "60"),
    )
    .await;
    let e = sendgrid()
        .perform(&harness(&server).call(), &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::RateLimited);
    assert_eq!(e.failure.retry_after, Some(Duration::from_secs(60)));
    assert!(e.retryable);
}

#[tokio::test]
async fn a_5xx_is_not_repeated_since_sendgrid_may_have_sent() {
    let server = MockServer::start().await;
    mount_send(&server, ResponseTemplate::new(502)).await;
    let e = sendgrid()
        .perform(&harness(&server).call(), &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Transient);
    assert_eq!(e.failure.vendor_status, Some(502));
    assert_eq!(e.attempts, 1);
    assert!(!e.retryable, "no idempotency key: not safe to repeat");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_timeout_is_not_repeated_either() {
    let server = MockServer::start().await;
    mount_send(&server, accepted().set_delay(Duration::from_secs(3))).await;
    let e = sendgrid()
        .perform(&harness(&server).call(), &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Timeout);
    assert_eq!(e.attempts, 1);
    assert!(!e.retryable);
}

#[tokio::test]
async fn a_refused_connection_is_repeated_since_nothing_was_sent() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let h = harness_at(&format!("http://127.0.0.1:{port}"));
    let e = sendgrid().perform(&h.call(), &email()).await.unwrap_err();
    assert_eq!(e.class(), FailureClassification::Transient);
    assert_eq!(e.attempts, 3);
    assert!(e.retryable);
}

#[tokio::test]
async fn odd_answers_are_read_without_guessing() {
    // An error body that is not JSON classifies by status.
    let server = MockServer::start().await;
    mount_send(
        &server,
        ResponseTemplate::new(400).set_body_string("<html>Bad Request</html>"),
    )
    .await;
    let e = sendgrid()
        .perform(&harness(&server).call(), &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Validation);
    assert_eq!(e.failure.message, "the vendor answered 400 Bad Request");
    // A 2xx without X-Message-Id still sent the message.
    let server = MockServer::start().await;
    mount_send(
        &server,
        ResponseTemplate::new(202).set_body_string("garbage"),
    )
    .await;
    let out = sendgrid()
        .perform(&harness(&server).call(), &email())
        .await
        .unwrap();
    assert_eq!(out.vendor_message_id, None);
    assert_eq!(out.summary["messageId"], Value::Null);
}

#[tokio::test]
async fn the_connection_test_reads_the_scopes() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v3/scopes"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"scopes": ["mail.send"]})))
        .expect(1)
        .mount(&server)
        .await;
    sendgrid()
        .test_connection(&harness(&server).call())
        .await
        .expect("fine");
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"errors": [{"field": null, "message": "access forbidden"}]})),
        )
        .mount(&server)
        .await;
    let e = sendgrid()
        .test_connection(&harness(&server).call())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Auth);
    assert_no_secret(&e, &[KEY]);
}

#[test]
fn config_is_checked() {
    let check = |v: Value| {
        integration_kit::config_of::<SendGridConfig>(v.as_object().unwrap())
            .map(drop)
            .map_err(|e| format!("{}: {}", e.path, e.message))
    };
    assert!(check(json!({"from": "noreply@example.com"})).is_ok());
    assert!(
        check(json!({"from": "noreply@example.com", "baseUrl": "https://api.eu.sendgrid.com"}))
            .is_ok()
    );
    assert!(check(json!({})).unwrap_err().contains("from"));
    assert!(check(json!({"from": "x"})).unwrap_err().starts_with("from"));
    assert!(
        check(json!({"from": "noreply@example.com", "baseUrl": "https://api.sendgrid.com/v3"}))
            .unwrap_err()
            .starts_with("baseUrl")
    );
    // An internal address is the kit's to refuse, for every provider (`url_refused`).
}

/// A signed Event Webhook batch: ECDSA P-256 over timestamp + body, as SendGrid signs.
fn signed_events(
    key: &p256::ecdsa::SigningKey,
    timestamp: &str,
    body: &[u8],
) -> reqwest::header::HeaderMap {
    use base64::Engine as _;
    use p256::ecdsa::signature::Signer as _;
    let mut message = timestamp.as_bytes().to_vec();
    message.extend_from_slice(body);
    let signature: p256::ecdsa::Signature = key.sign(&message);
    let der = signature.to_der();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "x-twilio-email-event-webhook-signature",
        base64::engine::general_purpose::STANDARD
            .encode(der.as_bytes())
            .parse()
            .unwrap(),
    );
    headers.insert(
        "x-twilio-email-event-webhook-timestamp",
        timestamp.parse().unwrap(),
    );
    headers
}

#[test]
fn the_event_webhook_is_verified_and_normalised() {
    use base64::Engine as _;
    use integration_kit::{DeliveryState as S, Receipt, ReceiptError, ReceiptRequest};
    let signing = p256::ecdsa::SigningKey::random(&mut rand::thread_rng());
    // SubjectPublicKeyInfo for a P-256 key: the fixed algorithm header, then the point.
    let mut der = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    der.extend_from_slice(signing.verifying_key().to_encoded_point(false).as_bytes());
    let public = base64::engine::general_purpose::STANDARD.encode(der);
    let config: ConnectionConfig =
        json!({"from": "noreply@example.com", "eventWebhookPublicKey": public})
            .as_object()
            .unwrap()
            .clone();
    let credential = custody::SecretMaterial::new(
        CredentialKind::ApiKey,
        json!({"apiKey": KEY}).as_object().unwrap().clone(),
    )
    .unwrap();
    let body = json!([
        {"email": "a@example.com", "event": "processed", "sg_message_id": "abc123.filter0001.1.0", "timestamp": 1},
        {"email": "a@example.com", "event": "delivered", "sg_message_id": "abc123.filter0001.1.0", "timestamp": 2},
        {"email": "b@example.com", "event": "bounce", "sg_message_id": "def456.filter0002.1.0", "timestamp": 3},
        {"email": "a@example.com", "event": "open", "sg_message_id": "abc123.filter0001.1.0", "timestamp": 4}
    ])
    .to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let headers = signed_events(&signing, &now, body.as_bytes());
    let url = "https://platform.example/email/api/integrations/receipts/t/c";
    let request = ReceiptRequest {
        url,
        headers: &headers,
        body: body.as_bytes(),
    };
    let receipts = sendgrid()
        .parse_receipts(&credential, &config, &request)
        .expect("verified");
    let states: Vec<_> = receipts
        .iter()
        .map(|r: &Receipt| (r.message_id.as_str(), r.state))
        .collect();
    assert_eq!(
        states,
        vec![
            ("abc123", S::Queued),
            ("abc123", S::Delivered),
            ("def456", S::Undelivered)
        ]
    );
    // A tampered body, or another key: refused.
    let tampered = body.replace("bounce", "delivered");
    let request = ReceiptRequest {
        url,
        headers: &headers,
        body: tampered.as_bytes(),
    };
    assert_eq!(
        sendgrid().parse_receipts(&credential, &config, &request),
        Err(ReceiptError::Unauthorized)
    );
    // No verification key configured: this connection takes no receipts.
    let bare: ConnectionConfig = json!({"from": "noreply@example.com"})
        .as_object()
        .unwrap()
        .clone();
    let request = ReceiptRequest {
        url,
        headers: &headers,
        body: body.as_bytes(),
    };
    assert_eq!(
        sendgrid().parse_receipts(&credential, &bare, &request),
        Err(ReceiptError::NotSupported)
    );
    // A key that is not a P-256 verification key is refused at connection time.
    let bad: ConnectionConfig =
        json!({"from": "noreply@example.com", "eventWebhookPublicKey": "bm90LWEta2V5"})
            .as_object()
            .unwrap()
            .clone();
    assert_eq!(
        integration_kit::config_of::<SendGridConfig>(&bad)
            .map(drop)
            .unwrap_err()
            .path,
        "eventWebhookPublicKey"
    );
}

/// SendGrid in its documented shapes, for the kit's conformance suite.
struct SendGridScript;

impl integration_kit::testing::VendorScript for SendGridScript {
    fn reply(
        &self,
        case: integration_kit::testing::Case,
        request: &integration_kit::testing::Recorded,
    ) -> Result<integration_kit::testing::Reply, &'static str> {
        use integration_kit::testing::{Case, Reply, THROTTLE_SECS};
        let error = |status: u16, message: &str| {
            Reply::json(
                status,
                json!({"errors": [{"message": message, "field": null, "help": null}]}),
            )
        };
        if request.path != "/v3/mail/send" {
            return Ok(error(404, "not found"));
        }
        Ok(match case {
            Case::Success => Reply::text(202, "").header("x-message-id", "sg-conformance-1"),
            Case::Invalid => error(
                400,
                "The to array is required for all personalization objects",
            ),
            Case::Unauthorized => error(
                401,
                "The provided authorization grant is invalid, expired, or revoked",
            ),
            Case::Throttled => {
                error(429, "too many requests").header("retry-after", &THROTTLE_SECS.to_string())
            }
            Case::ServerError => error(503, "service unavailable"),
            Case::Malformed => {
                return Err("SendGrid's success has no body: there is nothing to garble");
            }
        })
    }
}

#[tokio::test]
async fn conforms_to_the_provider_suite() {
    let skipped = integration_kit::testing::conformance::<crate::Send, _, _>(
        &sendgrid(),
        SendGridScript,
        harness_at,
        email(),
        &[KEY],
        false,
    )
    .await;
    assert_eq!(skipped.len(), 1, "{skipped:?}");
}
