//! SendGrid v3 (`sendgrid`).
//!
//! - Credential `{"kind":"apiKey","apiKey":"SG.…"}`; config `from` (the verified sender;
//!   `send`'s `from` overrides it) and optional `baseUrl` (default
//!   `https://api.sendgrid.com`; the EU region is `https://api.eu.sendgrid.com`): an
//!   origin, https outside development, never an internal IP literal.
//! - Send: `POST {base}/v3/mail/send` with bearer auth; one personalization holding to, cc,
//!   bcc and `custom_args.run_id` (the run, so event webhooks find it); `content` as
//!   `text/plain` then `text/html` (the order SendGrid requires); attachments with
//!   `disposition: attachment`. 202 with `X-Message-Id` → the vendor message id (a 2xx
//!   without it still succeeds, without an id).
//! - SendGrid has no idempotency key: the send is `Safety::Unsafe`, so it is repeated only
//!   when SendGrid certainly did not take it (refused connection, 429), never after a timeout
//!   or a 5xx.
//! - Errors `{"errors":[{"message","field"}]}`: the first one's message and field join the
//!   failure's message.
//! - Connection test: `GET {base}/v3/scopes` (200 = fine, 401/403 = auth).

use async_trait::async_trait;
use domain::{ConnectionConfig, CredentialKind, FailureClassification};
use integration_kit::{InputError, Provider, ProviderCall, call_failed};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use resilience::{CallError, Classifier, Safety, Verdict, classify_status};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Net, vendor_text};
use crate::is_email_address;

pub const DEFAULT_BASE_URL: &str = "https://api.sendgrid.com";

pub struct SendGrid {
    net: Net,
}

impl SendGrid {
    pub fn new(net: Net) -> Self {
        SendGrid { net }
    }

    /// The API's origin: `baseUrl` checked as an origin (https, no internal IP literal: the
    /// guarded client checks names, not literals), or SendGrid's.
    fn base(&self, call: &ProviderCall<'_>, config: &SendGridConfig) -> Result<String, CallError> {
        if let Some(raw) = &config.base_url {
            self.net
                .origin(raw, "baseUrl")
                .map_err(|e| call_failed(FailureClassification::Validation, e))?;
        }
        Ok(call.base_url(DEFAULT_BASE_URL))
    }
}

#[derive(Debug, Deserialize)]
struct Errors {
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Debug, Deserialize)]
struct ErrorItem {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    field: Option<String>,
}

/// SendGrid's answers: the status classes, with the first error's message and field.
struct Answers;

impl Classifier for Answers {
    fn classify(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Verdict {
        match classify_status(status, headers) {
            Verdict::Success => Verdict::Success,
            Verdict::Failure(mut f) => {
                if let Ok(Errors { errors }) = serde_json::from_slice::<Errors>(body)
                    && let Some(first) = errors.first()
                {
                    if let Some(m) = first.message.as_deref().filter(|m| !m.is_empty()) {
                        f.message = format!("{}: {}", f.message, vendor_text(m, &[]));
                    }
                    if let Some(field) = first.field.as_deref().filter(|m| !m.is_empty()) {
                        f.message = format!("{} (field {})", f.message, vendor_text(field, &[]));
                    }
                }
                Verdict::Failure(f)
            }
        }
    }
}

/// The connection's config, checked when a connection is made (a misspelt, mistyped or
/// malformed setting is a 400 naming it).
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SendGridConfig {
    /// The verified sender's address.
    from: String,
    /// The API's origin (a regional one, or a fake), checked as the kit checks `baseUrl`.
    #[serde(rename = "baseUrl")]
    base_url: Option<String>,
    /// The Event Webhook's verification key (base64 DER), for delivery receipts.
    event_webhook_public_key: Option<String>,
}

impl integration_kit::ProviderConfig for SendGridConfig {
    fn check(&self) -> Result<(), InputError> {
        if !is_email_address(&self.from) {
            return Err(InputError::at(
                "from",
                "must be the verified sender's address",
            ));
        }
        if let Some(base) = &self.base_url {
            super::origin_shape(base).map_err(|e| InputError::at("baseUrl", e))?;
        }
        if let Some(key) = &self.event_webhook_public_key {
            webhooks::Secret::sendgrid_public_key(key).map_err(|_| {
                InputError::at(
                    "eventWebhookPublicKey",
                    "must be the Event Webhook verification key (base64 DER)",
                )
            })?;
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for SendGrid {
    fn key(&self) -> &'static str {
        "sendgrid"
    }

    fn credential_kinds(&self) -> &'static [CredentialKind] {
        &[CredentialKind::ApiKey]
    }

    /// The signed Event Webhook, pointed at the connection's `receiptUrl`, verified with the
    /// key in config `eventWebhookPublicKey` (ECDSA P-256 over timestamp + body, five
    /// minutes' tolerance). Events normalise as `processed`/`deferred` → queued,
    /// `delivered` → delivered, `bounce`/`blocked` → undelivered, `dropped` → failed;
    /// engagement events (open, click, ...) are not delivery states and are skipped.
    fn parse_receipts(
        &self,
        _credential: &custody::SecretMaterial,
        config: &ConnectionConfig,
        request: &integration_kit::ReceiptRequest<'_>,
    ) -> Result<Vec<integration_kit::Receipt>, integration_kit::ReceiptError> {
        use integration_kit::{DeliveryState as S, ReceiptError};
        let Some(key) = integration_kit::config_of::<SendGridConfig>(config)
            .ok()
            .and_then(|c| c.event_webhook_public_key)
        else {
            return Err(ReceiptError::NotSupported);
        };
        let secret =
            webhooks::Secret::sendgrid_public_key(&key).map_err(|_| ReceiptError::Unauthorized)?;
        request.verify(&webhooks::Scheme::sendgrid(), &secret)?;
        let events: Vec<Value> = serde_json::from_slice(request.body)
            .map_err(|_| ReceiptError::Malformed("the Event Webhook sends a JSON array".into()))?;
        Ok(events
            .iter()
            .filter_map(|e| {
                let state = match e["event"].as_str()? {
                    "processed" | "deferred" => S::Queued,
                    "delivered" => S::Delivered,
                    "bounce" | "blocked" => S::Undelivered,
                    "dropped" => S::Failed,
                    _ => return None,
                };
                // `sg_message_id` is the send's `X-Message-Id` plus a per-recipient suffix.
                let id = e["sg_message_id"].as_str()?.split('.').next()?.to_owned();
                Some(integration_kit::Receipt {
                    message_id: id,
                    state,
                    detail: e["event"].as_str().map(str::to_owned),
                })
            })
            .collect())
    }

    async fn test_connection(&self, call: &ProviderCall<'_>) -> Result<(), CallError> {
        let key = call.secret("apiKey")?;
        let url = format!("{}/v3/scopes", self.base(call, &call.config_as()?)?);
        call.pipeline
            .send(call.call(Safety::Safe, &Answers), || {
                call.http.get(&url).bearer_auth(key)
            })
            .await
            .map(|_| ())
    }

    fn serves(served: &mut integration_kit::Served<Self>) {
        served.operation::<crate::Send>().config::<SendGridConfig>();
    }
}

#[async_trait]
impl integration_kit::Serves<crate::Send> for SendGrid {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        email: &crate::Email,
    ) -> Result<integration_kit::Step<crate::EmailSent>, CallError> {
        let config: SendGridConfig = call.config_as()?;
        let from = email.from.as_deref().unwrap_or(&config.from);
        let key = call.secret("apiKey")?;
        let addresses = |list: &[crate::Address]| -> Vec<Value> {
            list.iter().map(|a| json!({"email": a})).collect()
        };
        let mut personalization = json!({"to": addresses(&email.to)});
        if !email.cc.is_empty() {
            personalization["cc"] = addresses(&email.cc).into();
        }
        if !email.bcc.is_empty() {
            personalization["bcc"] = addresses(&email.bcc).into();
        }
        if let Some(run) = call.idempotency_key {
            personalization["custom_args"] = json!({"run_id": run});
        }
        let mut content = Vec::new();
        if let Some(text) = &email.text {
            content.push(json!({"type": "text/plain", "value": text}));
        }
        if let Some(html) = &email.html {
            content.push(json!({"type": "text/html", "value": html}));
        }
        let mut body = json!({
            "personalizations": [personalization],
            "from": {"email": from},
            "subject": email.subject,
            "content": content,
        });
        if !email.attachments.is_empty() {
            body["attachments"] = email
                .attachments
                .iter()
                .map(|a| {
                    json!({"content": a.content.text, "filename": a.name, "type": a.content_type, "disposition": "attachment"})
                })
                .collect::<Vec<_>>()
                .into();
        }
        let body = bytes::Bytes::from(body.to_string());
        let url = format!("{}/v3/mail/send", self.base(call, &config)?);
        let answer = call
            .pipeline
            .send(call.call(Safety::Unsafe, &Answers), || {
                call.http
                    .post(&url)
                    .bearer_auth(key)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone())
            })
            .await?;
        let message_id = answer
            .headers
            .get("x-message-id")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|t| vendor_text(t, &[]));
        Ok(super::sent(email, message_id, "accepted", answer.attempts).into())
    }
}

#[cfg(test)]
mod tests;
