//! The `zendesk` provider: Zendesk Support's Ticketing API v2
//! (`https://{subdomain}.zendesk.com/api/v2`).
//!
//! What each call relies on, from Zendesk's API reference:
//! - `POST /api/v2/tickets` answers 201 `{"ticket": {...}}`; with an `Idempotency-Key`
//!   header (the run id here) a repeat of the same request within two hours answers the
//!   first ticket again (`x-idempotency-lookup: hit`) instead of opening a second, and the
//!   same key with a different body is 400 `IdempotentRequestError`. So a create is retried
//!   like any idempotent call.
//! - `PUT /api/v2/tickets/{id}` answers 200 `{"ticket": {...}, "audit": {...}}`; `tags`
//!   replaces the ticket's tags; a `comment` with `public: false` is an internal note. A PUT
//!   with a comment is not retried after the request may have arrived (a second comment
//!   would be added); without one it is.
//! - `GET /api/v2/tickets/{id}` answers 200 `{"ticket": {...}}`.
//! - The connection test is `GET /api/v2/users/me` (`{"user": {"id": ...}}`).
//! - Errors are `{"error": "RecordInvalid", "description": "...", "details": {field:
//!   [{"description": ...}]}}` (401 has only `error`; some answers have `error` as an object
//!   `{title, message}`; 429 bodies are often plain text). The words go into the failure,
//!   redacted.
//! - Limits: 429 with `Retry-After` (seconds); `X-Rate-Limit-Remaining: 0` on a success
//!   means the account's per-minute budget is spent, and the pipeline waits for the next
//!   minute before calling again (`resilience::hints`).
//!
//! Credentials: `basic` with `username` the agent's email (`/token` is appended unless
//! present) and `password` an API token (`{email}/token:{api_token}`), or `bearerToken`
//! with an OAuth access token. Config: `subdomain` (`acme` for `acme.zendesk.com`), or
//! `baseUrl` for a host of its own.
//!
//! Webhooks (`zendesk` sources of the connection): `zen:event-type:ticket.status_changed`
//! events set the ticket's new status (lowercased) on the output of the last run that
//! touched the ticket and publish `support.ticket.changed`; other ticket events publish it
//! without a change to any run.

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use domain::CredentialKind;
use integration_kit::{
    Answer, Done, JsonCall, Provider, ProviderCall, RecordChange, RecordKind, Served, Serves, Step,
    VendorAnswers, VendorWebhook, WebhookEffect, malformed,
};
use reqwest::Method;
use resilience::{CallError, Safety, VendorFailure};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Map, Value, json};

use crate::{
    CreateTicket, GetTicket, NewTicket, Ticket, TicketCreated, TicketRef, TicketUpdate,
    TicketUpdated, UpdateTicket,
};

pub struct Zendesk;

/// The connection's config: the account's subdomain, or its own host.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ZendeskConfig {
    #[serde(default)]
    subdomain: Option<String>,
    #[serde(default)]
    base_url: Option<String>,
}

impl integration_kit::ProviderConfig for ZendeskConfig {
    fn check(&self) -> Result<(), integration_kit::InputError> {
        match (&self.subdomain, &self.base_url) {
            (None, None) => Err(integration_kit::InputError::at(
                "subdomain",
                "is required (acme for acme.zendesk.com), or give baseUrl",
            )),
            (Some(_), Some(_)) => Err(integration_kit::InputError::at(
                "baseUrl",
                "give subdomain or baseUrl, not both",
            )),
            (Some(s), None)
                if !(1..=63).contains(&s.len())
                    || !s
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    || s.starts_with('-')
                    || s.ends_with('-') =>
            {
                Err(integration_kit::InputError::at(
                    "subdomain",
                    "must be 1 to 63 lowercase letters, digits or - (acme for acme.zendesk.com)",
                ))
            }
            _ => Ok(()),
        }
    }
}

/// The account's origin.
fn origin(call: &ProviderCall<'_>) -> Result<String, CallError> {
    let config: ZendeskConfig = call.config_as()?;
    let default = config
        .subdomain
        .map(|s| format!("https://{s}.zendesk.com"))
        .unwrap_or_default();
    Ok(call.base_url(&default))
}

#[async_trait]
impl Provider for Zendesk {
    fn key(&self) -> &'static str {
        "zendesk"
    }

    fn credential_kinds(&self) -> &'static [CredentialKind] {
        &[CredentialKind::Basic, CredentialKind::BearerToken]
    }

    /// `GET /api/v2/users/me`: who the credential is.
    async fn test_connection(&self, call: &ProviderCall<'_>) -> Result<(), CallError> {
        let me = request(call, Method::GET, "/api/v2/users/me", None, Safety::Safe).await?;
        if me["user"]["id"].is_null() {
            return Err(malformed("the user lacks an id"));
        }
        Ok(())
    }

    fn webhook(&self, webhook: &VendorWebhook<'_>) -> Result<Vec<WebhookEffect>, String> {
        let body: Value =
            serde_json::from_slice(webhook.body).map_err(|e| format!("not JSON: {e}"))?;
        ticket_event(&body).map(|c| c.into_iter().map(WebhookEffect::Changed).collect())
    }

    fn serves(served: &mut Served<Self>) {
        served
            .operation::<CreateTicket>()
            .operation::<UpdateTicket>()
            .operation::<GetTicket>()
            .config::<ZendeskConfig>();
    }
}

/// A ticket event of Zendesk's event-based webhooks (`zen:event-type:ticket.*`, the
/// ticket's id in `detail.id`). Other events mean nothing here.
pub(crate) fn ticket_event(body: &Value) -> Result<Option<RecordChange>, String> {
    let Some(kind) = body["type"].as_str() else {
        return Err("an event without a type".into());
    };
    if !kind.starts_with("zen:event-type:ticket.") {
        return Ok(None);
    }
    let id = match &body["detail"]["id"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Err("a ticket event without detail.id".into()),
    };
    let status_changed = kind == "zen:event-type:ticket.status_changed";
    let status = status_changed
        .then(|| body["event"]["current"].as_str())
        .flatten()
        .map(str::to_ascii_lowercase);
    let patch = status.as_ref().map(|s| {
        let mut m = Map::new();
        m.insert("status".into(), json!(s));
        m
    });
    Ok(Some(RecordChange {
        kind: RecordKind::SupportTicket,
        record_id: id,
        change: kind.to_owned(),
        property: status.as_ref().map(|_| "status".to_owned()),
        value: status,
        occurred_at: body["time"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.to_utc()),
        vendor_event_id: body["id"].as_str().map(str::to_owned),
        patch,
    }))
}

#[async_trait]
impl Serves<CreateTicket> for Zendesk {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &NewTicket,
    ) -> Result<Step<TicketCreated>, CallError> {
        let mut ticket = json!({
            "subject": input.subject.as_str(),
            "comment": {"body": input.description.as_str()},
            "requester": {"email": input.requester.email.as_str()},
        });
        if let Some(name) = &input.requester.name {
            ticket["requester"]["name"] = json!(name.as_str());
        }
        if let Some(p) = input.priority {
            ticket["priority"] = json!(p.as_str());
        }
        if !input.tags.is_empty() {
            ticket["tags"] = json!(input.tags);
        }
        if let Some(id) = &input.external_id {
            ticket["external_id"] = json!(id.as_str());
        }
        // Zendesk de-duplicates on the key: a retried create answers the first ticket.
        let safety = if call.idempotency_key.is_some() {
            Safety::Idempotent
        } else {
            Safety::Unsafe
        };
        let answer = request(
            call,
            Method::POST,
            "/api/v2/tickets",
            Some(&json!({"ticket": ticket})),
            safety,
        )
        .await?;
        let ticket = read_ticket(call, &answer["ticket"])?;
        let created = TicketCreated {
            ticket_id: ticket.ticket_id.clone(),
            url: ticket.url,
            status: ticket.status,
        };
        Ok(Done::new(created)
            .vendor_message_id(ticket.ticket_id)
            .into())
    }
}

#[async_trait]
impl Serves<UpdateTicket> for Zendesk {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &TicketUpdate,
    ) -> Result<Step<TicketUpdated>, CallError> {
        let mut ticket = Map::new();
        if let Some(s) = input.status {
            ticket.insert("status".into(), json!(s.as_str()));
        }
        if let Some(p) = input.priority {
            ticket.insert("priority".into(), json!(p.as_str()));
        }
        if let Some(c) = &input.comment {
            ticket.insert(
                "comment".into(),
                json!({"body": c.body.as_str(), "public": c.public}),
            );
        }
        if let Some(tags) = &input.tags {
            ticket.insert("tags".into(), json!(tags));
        }
        // A repeated comment would be a second comment; everything else sets a value.
        let safety = if input.comment.is_some() {
            Safety::Unsafe
        } else {
            Safety::Safe
        };
        let path = format!("/api/v2/tickets/{}", input.ticket_id);
        let answer = request(
            call,
            Method::PUT,
            &path,
            Some(&json!({"ticket": ticket})),
            safety,
        )
        .await?;
        let ticket = read_ticket(call, &answer["ticket"])?;
        let updated = TicketUpdated {
            ticket_id: ticket.ticket_id.clone(),
            status: ticket.status,
        };
        Ok(Done::new(updated)
            .vendor_message_id(ticket.ticket_id)
            .into())
    }
}

#[async_trait]
impl Serves<GetTicket> for Zendesk {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &TicketRef,
    ) -> Result<Step<Ticket>, CallError> {
        let path = format!("/api/v2/tickets/{}", input.ticket_id);
        let answer = request(call, Method::GET, &path, None, Safety::Safe).await?;
        let ticket = read_ticket(call, &answer["ticket"])?;
        let id = ticket.ticket_id.clone();
        Ok(Done::new(ticket).vendor_message_id(id).into())
    }
}

/// Zendesk's ticket object, normalised; the URL is the agent's view of it.
fn read_ticket(call: &ProviderCall<'_>, t: &Value) -> Result<Ticket, CallError> {
    let id = t["id"]
        .as_u64()
        .map(|n| n.to_string())
        .or_else(|| t["id"].as_str().map(str::to_owned))
        .ok_or_else(|| malformed("the ticket lacks an id"))?;
    let status = t["status"]
        .as_str()
        .ok_or_else(|| malformed("the ticket lacks a status"))?;
    let text = |field: &str| t[field].as_str().map(str::to_owned);
    Ok(Ticket {
        url: format!("{}/agent/tickets/{id}", origin(call)?),
        ticket_id: id,
        subject: text("subject"),
        status: status.to_owned(),
        priority: text("priority"),
        tags: t["tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        external_id: text("external_id"),
        created_at: text("created_at"),
        updated_at: text("updated_at"),
    })
}

/// One call to Zendesk, its JSON answer.
async fn request(
    call: &ProviderCall<'_>,
    method: Method,
    path: &str,
    body: Option<&Value>,
    safety: Safety,
) -> Result<Value, CallError> {
    let url = format!("{}{path}", origin(call)?);
    let authorization = authorization(call)?;
    let answers = answers(call, &authorization);
    // Zendesk de-duplicates creations on the run's key.
    let key = [("idempotency-key", call.idempotency_key.unwrap_or_default())];
    let keyed = method == Method::POST && call.idempotency_key.is_some();
    call.json(
        JsonCall {
            method,
            url: &url,
            authorization: Some(authorization.expose_secret()),
            headers: if keyed { &key[..] } else { &[] },
            body,
            safety,
        },
        &answers,
    )
    .await
}

/// `Basic base64("{email}/token:{api_token}")`, or the OAuth bearer.
fn authorization(call: &ProviderCall<'_>) -> Result<SecretString, CallError> {
    if call.credential.kind() == CredentialKind::BearerToken {
        return Ok(SecretString::from(format!(
            "Bearer {}",
            call.secret("token")?
        )));
    }
    let user = call.secret("username")?;
    let user = if user.ends_with("/token") {
        user.to_owned()
    } else {
        format!("{user}/token")
    };
    let pair = format!("{user}:{}", call.secret("password")?);
    Ok(SecretString::from(format!(
        "Basic {}",
        STANDARD.encode(pair.as_bytes())
    )))
}

/// Zendesk's answers: the status decides; the error body's words, redacted, explain; its
/// `error` code is the failure's vendor code.
fn answers<'s>(
    call: &'s ProviderCall<'_>,
    authorization: &'s SecretString,
) -> VendorAnswers<'s, impl Fn(&mut VendorFailure, &Answer<'_>) -> String + Send + Sync> {
    let mut secrets: Vec<&str> = call.credential.values().collect();
    secrets.push(authorization.expose_secret());
    VendorAnswers::new("zendesk", secrets, |failure, answer| {
        if let Some(code) = answer.error["error"].as_str() {
            failure.vendor_code = Some(code.to_owned());
        }
        error_words(answer.error, answer.body)
    })
}

/// The words of a Zendesk error body: `error` (a code, or `{title, message}`),
/// `description`, and the first field details.
pub(crate) fn error_words(error: &Value, raw: &[u8]) -> String {
    let mut words = Vec::new();
    match &error["error"] {
        Value::String(s) => words.push(s.clone()),
        Value::Object(o) => {
            for k in ["title", "message"] {
                if let Some(s) = o.get(k).and_then(Value::as_str) {
                    words.push(s.to_owned());
                }
            }
        }
        _ => {}
    }
    if let Some(d) = error["description"].as_str() {
        words.push(d.to_owned());
    }
    if let Some(details) = error["details"].as_object() {
        for (field, items) in details.iter().take(3) {
            if let Some(d) = items
                .as_array()
                .and_then(|a| a.first())
                .and_then(|i| i["description"].as_str())
            {
                words.push(format!("{field}: {d}"));
            }
        }
    }
    if words.is_empty() && error.is_null() {
        // Plain-text answers (429s often are).
        words.push(String::from_utf8_lossy(raw).into_owned());
    }
    words.join("; ")
}

#[cfg(test)]
mod tests;
