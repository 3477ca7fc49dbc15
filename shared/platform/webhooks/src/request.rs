//! The typestate: an [`Unverified`] request becomes a [`Verified`] one only through a scheme.

use chrono::{DateTime, Utc};
use http::{HeaderMap, Method};

use crate::headers::sha256_hex;
use crate::{Scheme, Secret, VerifyError, schemes};

/// Bodies larger than this (1 MiB) are refused before hashing unless the limit is changed.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// An inbound request exactly as received: nothing in it is trusted yet.
#[derive(Debug, Clone)]
pub struct Unverified<'a> {
    method: Method,
    url: &'a str,
    headers: &'a HeaderMap,
    body: &'a [u8],
    body_limit: usize,
}

impl<'a> Unverified<'a> {
    /// `url` is the public URL the vendor signed (scheme, host, path and query as configured
    /// at the vendor), not the one the handler sees behind proxies; `body` the raw bytes.
    pub fn new(method: Method, url: &'a str, headers: &'a HeaderMap, body: &'a [u8]) -> Self {
        Self {
            method,
            url,
            headers,
            body,
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }

    /// Refuse bodies larger than `limit` bytes (default [`DEFAULT_BODY_LIMIT`]).
    #[must_use]
    pub fn with_body_limit(mut self, limit: usize) -> Self {
        self.body_limit = limit;
        self
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The public URL the vendor signed.
    pub fn url(&self) -> &'a str {
        self.url
    }

    /// The raw headers.
    pub fn headers(&self) -> &'a HeaderMap {
        self.headers
    }

    /// The raw body (untrusted).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// Verify the request with `scheme` and `secret` at time `now`. The body is read as JSON
    /// (for the delivery id and event type) only after the signature or shared secret matched.
    pub fn verify(
        &self,
        scheme: &Scheme,
        secret: &Secret,
        now: DateTime<Utc>,
    ) -> Result<Verified<'a>, VerifyError> {
        if self.body.len() > self.body_limit {
            return Err(VerifyError::TooLarge {
                limit: self.body_limit,
            });
        }
        let outcome = schemes::verify(self, scheme, secret, now)?;
        let (delivery_id, fallback) = match outcome.delivery_id {
            Some(id) => (id, false),
            None => (sha256_hex(self.body), true),
        };
        Ok(Verified {
            body: self.body,
            headers: self.headers,
            scheme: scheme.name(),
            delivery_id,
            delivery_id_is_fallback: fallback,
            event_type: outcome.event_type,
            handshake: outcome.handshake,
            signed_at: outcome
                .signed_at
                .and_then(|t| DateTime::from_timestamp(t, 0)),
        })
    }
}

/// A request whose signature (or shared secret) matched: its body can be trusted and parsed.
#[derive(Debug, Clone)]
pub struct Verified<'a> {
    body: &'a [u8],
    headers: &'a HeaderMap,
    scheme: &'static str,
    delivery_id: String,
    delivery_id_is_fallback: bool,
    event_type: Option<String>,
    handshake: Option<Handshake>,
    signed_at: Option<DateTime<Utc>>,
}

impl<'a> Verified<'a> {
    /// The raw body, now authenticated.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The request headers.
    pub fn headers(&self) -> &'a HeaderMap {
        self.headers
    }

    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(self.body)
    }

    /// The scheme's short name (e.g. `github`).
    pub fn scheme(&self) -> &'static str {
        self.scheme
    }

    /// The vendor's dedupe key for this delivery (stable across the vendor's retries), or the
    /// hex SHA-256 of the body when the vendor gave none.
    pub fn delivery_id(&self) -> &str {
        &self.delivery_id
    }

    /// True when [`Self::delivery_id`] is the body hash, not a vendor id.
    pub fn delivery_id_is_fallback(&self) -> bool {
        self.delivery_id_is_fallback
    }

    /// The vendor's event type, where the scheme has one.
    pub fn event_type(&self) -> Option<&str> {
        self.event_type.as_deref()
    }

    /// The signed timestamp, for timestamped schemes.
    pub fn signed_at(&self) -> Option<DateTime<Utc>> {
        self.signed_at
    }

    /// A handshake to answer instead of an event to process.
    pub fn handshake(&self) -> Option<&Handshake> {
        self.handshake.as_ref()
    }
}

/// A vendor handshake: answer it, do not process it as an event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Handshake {
    /// Event Grid `SubscriptionValidation`: answer `200` with [`Handshake::response_body`].
    EventGridValidation {
        /// `data.validationCode` of the validation event.
        validation_code: String,
        /// `data.validationUrl`, for manual validation (a GET on it also validates).
        validation_url: Option<String>,
    },
}

impl Handshake {
    /// The JSON body to answer with: `{"validationResponse": code}`.
    pub fn response_body(&self) -> serde_json::Value {
        match self {
            Self::EventGridValidation {
                validation_code, ..
            } => serde_json::json!({ "validationResponse": validation_code }),
        }
    }
}
