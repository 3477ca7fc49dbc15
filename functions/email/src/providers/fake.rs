//! The Fake provider (`fake-email`): an in-process email vendor for tests and demos. It runs
//! through the same resilience pipeline as the real ones (so timeouts, breakers and failover
//! behave the same) and is deterministic:
//!
//! - credential `{"kind":"apiKey","apiKey":"…"}`; the key `rejected` fails the connection
//!   test (and sends) as an auth error;
//! - connection config `mode` (sends only; the connection test checks the key): `ok` (default), `fail` (the vendor answers 503), `timeout`
//!   (it never answers), `throttle` (429 with `retryAfterMs`, default 1000), `reject` (400);
//!   `latencyMs` (0–10000) delays every answer;
//! - a message to [`UNDELIVERABLE`] is refused as unprocessable (422), like a suppressed
//!   address;
//! - message ids are derived from the run (`FE` + 32 hex digits), so a repeated call for
//!   one run gets the same id; [`sent`] lists what was accepted and [`calls`] counts the
//!   calls per run, for tests.

use async_trait::async_trait;
use domain::{CredentialKind, FailureClassification};
use integration_kit::fake::{self, CallCounter};
use integration_kit::{Provider, ProviderCall};
use resilience::{CallError, HttpStatus, Outcome, Safety, VendorFailure};
use sha2::{Digest as _, Sha256};

/// The address the Fake refuses.
pub const UNDELIVERABLE: &str = "bounce@fake-email.invalid";

/// A message the Fake accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeEmail {
    pub tenant: String,
    pub message_id: String,
    pub from: Option<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    /// File names, in order.
    pub attachments: Vec<String>,
}

static SENT: fake::Recent<FakeEmail> = fake::Recent::new();
static CALLS: CallCounter = CallCounter::new();

/// Emails accepted so far in this process (the last [`fake::FAKE_MEMORY`]).
pub fn sent() -> Vec<FakeEmail> {
    SENT.all()
}

/// Calls that reached the Fake for one run (its idempotency key), accepted or not.
pub fn calls(idempotency_key: &str) -> u32 {
    CALLS.calls(idempotency_key)
}

pub struct Fake;

fn strings(list: &[crate::Address]) -> Vec<String> {
    list.iter().map(|a| a.to_string()).collect()
}

impl Fake {
    /// One call to the "vendor", as the pipeline sees it. `recipients` is `None` for the
    /// connection test.
    async fn answer(
        call: &ProviderCall<'_>,
        steer: &fake::Steer,
        recipients: Option<&[&str]>,
    ) -> Outcome<()> {
        if let Some(out) = fake::answer(&CALLS, call, steer, recipients.is_some()).await {
            return out;
        }
        if recipients.is_some_and(|r| r.iter().any(|a| a.eq_ignore_ascii_case(UNDELIVERABLE))) {
            return Outcome::Failed {
                failure: VendorFailure::new(
                    FailureClassification::Unprocessable,
                    "a recipient is on the suppression list",
                )
                .status(422)
                .code("suppressed"),
                maybe_processed: false,
            };
        }
        Outcome::Done(())
    }
}

#[async_trait]
impl Provider for Fake {
    fn key(&self) -> &'static str {
        "fake-email"
    }

    fn credential_kinds(&self) -> &'static [CredentialKind] {
        &[CredentialKind::ApiKey]
    }

    async fn test_connection(&self, call: &ProviderCall<'_>) -> Result<(), CallError> {
        let steer: fake::Steer = call.config_as()?;
        call.pipeline
            .execute(call.call(Safety::Safe, &HttpStatus), |_| {
                Self::answer(call, &steer, None)
            })
            .await
            .map(|_| ())
    }

    fn serves(served: &mut integration_kit::Served<Self>) {
        served.operation::<crate::Send>().config::<fake::Steer>();
    }
}

#[async_trait]
impl integration_kit::Serves<crate::Send> for Fake {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        email: &crate::Email,
    ) -> Result<integration_kit::Step<crate::EmailSent>, CallError> {
        let recipients: Vec<&str> = email
            .to
            .iter()
            .chain(&email.cc)
            .chain(&email.bcc)
            .map(|a| a.as_str())
            .collect();
        let steer: fake::Steer = call.config_as()?;
        // The Fake de-duplicates on the run like a vendor with idempotency keys would.
        let (_, attempts) = call
            .pipeline
            .execute(call.call(Safety::Idempotent, &HttpStatus), |_| {
                Self::answer(call, &steer, Some(&recipients))
            })
            .await?;
        let seed = call
            .idempotency_key
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{}/{}", recipients.join(","), email.subject));
        let digest = Sha256::digest(format!("fake-email/{seed}").as_bytes());
        let message_id = format!(
            "FE{}",
            digest[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        SENT.keep(
            FakeEmail {
                tenant: call.key.tenant.to_string(),
                message_id: message_id.clone(),
                from: email.from.as_deref().map(str::to_owned),
                to: strings(&email.to),
                cc: strings(&email.cc),
                bcc: strings(&email.bcc),
                subject: email.subject.to_string(),
                text: email.text.as_deref().map(str::to_owned),
                html: email.html.as_deref().map(str::to_owned),
                attachments: email
                    .attachments
                    .iter()
                    .map(|a| a.name.to_string())
                    .collect(),
            },
            |m| m.message_id == message_id,
        );
        Ok(super::sent(email, Some(message_id), "accepted", attempts).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::{self, Harness, Perform as _, assert_no_secret, email};
    use serde_json::Value;
    use serde_json::json;

    fn harness(key: &str, config: Value) -> Harness {
        testing::harness(
            "fake-email",
            CredentialKind::ApiKey,
            json!({"apiKey": key}),
            config,
        )
    }

    #[tokio::test]
    async fn sends_with_a_message_id_derived_from_the_run() {
        let mut h = harness("k-1", json!({}));
        h.idempotency_key = Some("run_fake_ok".into());
        let out = Fake.perform(&h.call(), &email()).await.expect("sent");
        let id = out.vendor_message_id.clone().expect("an id");
        assert!(id.starts_with("FE") && id.len() == 34, "{id}");
        assert_eq!(out.summary["status"], "accepted");
        assert_eq!(out.summary["recipients"], 3);
        assert_eq!(out.summary["attachments"], 1);
        assert_eq!(out.usage.units, 3);
        // Same run, same id, recorded once.
        let again = Fake.perform(&h.call(), &email()).await.unwrap();
        assert_eq!(again.vendor_message_id.as_deref(), Some(id.as_str()));
        let mine: Vec<_> = sent().into_iter().filter(|m| m.message_id == id).collect();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].to, ["ada@example.com"]);
        assert_eq!(mine[0].bcc, ["alan@example.com"]);
        assert_eq!(mine[0].attachments, ["note.txt"]);
        assert_eq!(mine[0].tenant, "tenant-a");
        assert_eq!(calls("run_fake_ok"), 2);
        // The summary holds no address or content.
        let summary = out.summary.to_string();
        assert!(!summary.contains("example.com") && !summary.contains("body"));
    }

    #[tokio::test]
    async fn the_rejected_key_is_an_auth_failure() {
        let h = harness("rejected", json!({}));
        let e = Fake.test_connection(&h.call()).await.unwrap_err();
        assert_eq!(e.class(), FailureClassification::Auth);
        assert_eq!(e.failure.vendor_status, Some(401));
        assert!(!e.retryable);
        assert!(harness("fine", json!({})).call().secret("apiKey").is_ok());
        assert!(
            Fake.test_connection(&harness("fine", json!({})).call())
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn modes_map_to_classes() {
        let e = Fake
            .perform(&harness("k", json!({"mode": "fail"})).call(), &email())
            .await
            .unwrap_err();
        assert_eq!(e.class(), FailureClassification::Transient);
        assert_eq!(e.attempts, 3, "idempotent, so retried");
        assert!(e.retryable);
        let e = Fake
            .perform(&harness("k", json!({"mode": "reject"})).call(), &email())
            .await
            .unwrap_err();
        assert_eq!(e.class(), FailureClassification::Validation);
        assert_eq!(e.attempts, 1);
        let e = Fake
            .perform(&harness("k", json!({"mode": "timeout"})).call(), &email())
            .await
            .unwrap_err();
        assert_eq!(e.class(), FailureClassification::Timeout);
        let e = Fake
            .perform(
                &harness("k", json!({"mode": "throttle", "retryAfterMs": 5000})).call(),
                &email(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.class(), FailureClassification::RateLimited);
        assert_eq!(
            e.failure.retry_after,
            Some(std::time::Duration::from_secs(5))
        );
        let mut suppressed = email();
        suppressed["to"] = json!([UNDELIVERABLE]);
        let e = Fake
            .perform(&harness("s3cr3t-fake-key", json!({})).call(), &suppressed)
            .await
            .unwrap_err();
        assert_eq!(e.class(), FailureClassification::Unprocessable);
        assert_eq!(e.failure.vendor_code.as_deref(), Some("suppressed"));
        assert_no_secret(&e, &["s3cr3t-fake-key"]);
    }

    #[tokio::test]
    async fn bad_input_and_config_are_refused() {
        let h = harness("k", json!({}));
        let e = Fake
            .perform(&h.call(), &json!({"to": []}))
            .await
            .unwrap_err();
        assert_eq!(e.class(), FailureClassification::Validation);
        let bad = json!({"mode": "sometimes"});
        assert_eq!(
            integration_kit::config_of::<fake::Steer>(bad.as_object().unwrap())
                .map(drop)
                .unwrap_err()
                .path,
            "mode"
        );
    }
}
