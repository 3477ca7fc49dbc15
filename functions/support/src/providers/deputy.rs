//! The `deputy` provider: Deputy's Resource API (`https://{install}.{region}.deputy.com/api/v1`)
//! as a help desk. Deputy has no tickets; its documented unit of assigned work at a location
//! is a **task** (the Resource API's `Task` object), so:
//!
//! | ticket                      | Deputy task                                                      |
//! |-----------------------------|------------------------------------------------------------------|
//! | `createTicket`              | `POST /api/v1/resource/Task`: `Question` = subject, `Comment` = description, requester, priority and the run's reference; `OpUnitId` = the connection's `areaId` (an area of the location); `UserResponsible` = its `responsibleUserId`, if any |
//! | `ticketId`                  | the task's `Id`                                                  |
//! | `status`                    | `solved` once `TsCompleted` is set (a Unix time), else `open`    |
//! | `updateTicket` status       | `solved`/`closed` set `TsCompleted` to now; `open`/`pending`/`hold` clear it (`POST /api/v1/resource/Task/{id}`) |
//! | `updateTicket` comment      | appended to the task's `Comment` (read first)                    |
//! | priority, tags              | kept in the comment when creating; an update of them is refused (`validation`): tasks have neither |
//! | `getTicket`                 | `GET /api/v1/resource/Task/{id}`                                 |
//!
//! Deputy takes no idempotency key: the task's comment carries the run's reference
//! (`[ref:<run id>]`), and a create first looks for a task with it
//! (`POST /api/v1/resource/Task/QUERY`, operator `lk`), so a retried run finds the task an
//! earlier attempt created instead of creating a second one.
//!
//! Credentials: `bearerToken` (a permanent token), or `oauth2RefreshToken` (Deputy's OAuth:
//! `{clientId, clientSecret, refreshToken, tokenUrl: "https://{install}/oauth/access_token"}`).
//! Deputy's refresh tokens rotate on use (a refresh spends the stored one), so apps never
//! refresh them: the registry's rotation does (a rotation policy shorter than the access
//! token's 24 hours, say `maxAgeSeconds: 43200`), keeping the vendor's new refresh token and
//! the access token of that grant; calls use that access token, and an absent or expired one
//! is an `auth` failure saying so. Either is sent as `Authorization: Bearer`. Errors are `{"error": {"code", "message"}}`; Deputy documents no
//! rate-limit headers, so a 429's `Retry-After` is all there is to honour. The connection test
//! is `GET /api/v1/me`.

use async_trait::async_trait;
use domain::{CredentialKind, FailureClassification};
use integration_kit::{
    Answer, Done, InputError, JsonCall, Provider, ProviderCall, Served, Serves, Step,
    VendorAnswers, call_failed, malformed,
};
use reqwest::Method;
use resilience::{CallError, Safety, VendorFailure};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

use crate::{
    CreateTicket, GetTicket, NewTicket, Status, Ticket, TicketCreated, TicketRef, TicketUpdate,
    TicketUpdated, UpdateTicket,
};

pub struct Deputy;

/// The connection's config: the install and where its tasks go.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DeputyConfig {
    /// The install's origin (`https://acme.au.deputy.com`).
    #[serde(rename = "baseUrl")]
    _base_url: String,
    /// The area (`OperationalUnit`) of the location tasks are created in.
    area_id: u64,
    /// Who is responsible for new tasks (a Deputy user id).
    #[serde(default)]
    responsible_user_id: Option<u64>,
}

impl integration_kit::ProviderConfig for DeputyConfig {
    fn check(&self) -> Result<(), InputError> {
        if self.area_id == 0 {
            return Err(InputError::at("areaId", "must be an area's id (1 or more)"));
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for Deputy {
    fn key(&self) -> &'static str {
        "deputy"
    }

    fn credential_kinds(&self) -> &'static [CredentialKind] {
        &[
            CredentialKind::BearerToken,
            CredentialKind::Oauth2RefreshToken,
        ]
    }

    /// `GET /api/v1/me`: who the token is.
    async fn test_connection(&self, call: &ProviderCall<'_>) -> Result<(), CallError> {
        let me = request(call, Method::GET, "/api/v1/me", None, Safety::Safe).await?;
        if me["UserId"].is_null() {
            return Err(malformed("the user lacks a UserId"));
        }
        Ok(())
    }

    fn serves(served: &mut Served<Self>) {
        served
            .operation::<CreateTicket>()
            .operation::<UpdateTicket>()
            .operation::<GetTicket>()
            .config::<DeputyConfig>();
    }
}

/// The reference a run's task carries in its comment.
fn reference(run: &str) -> String {
    format!("[ref:{run}]")
}

#[async_trait]
impl Serves<CreateTicket> for Deputy {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &NewTicket,
    ) -> Result<Step<TicketCreated>, CallError> {
        let config: DeputyConfig = call.config_as()?;
        if let Some(run) = call.idempotency_key
            && let Some(task) = find_by_reference(call, &reference(run)).await?
        {
            let ticket = read_task(call, &task)?;
            return Ok(created(ticket));
        }
        let mut comment = input.description.to_string();
        let requester = match &input.requester.name {
            Some(name) => format!("{name} <{}>", input.requester.email),
            None => input.requester.email.to_string(),
        };
        comment.push_str(&format!("\n\nRequested by {requester}"));
        if let Some(p) = input.priority {
            comment.push_str(&format!("\nPriority: {}", p.as_str()));
        }
        if !input.tags.is_empty() {
            let tags: Vec<&str> = input.tags.iter().map(|t| t.as_str()).collect();
            comment.push_str(&format!("\nTags: {}", tags.join(", ")));
        }
        if let Some(id) = &input.external_id {
            comment.push_str(&format!("\nExternal id: {id}"));
        }
        if let Some(run) = call.idempotency_key {
            comment.push_str(&format!("\n{}", reference(run)));
        }
        let mut task = json!({
            "Question": input.subject.as_str(),
            "Comment": comment,
            "OpUnitId": config.area_id,
        });
        if let Some(user) = config.responsible_user_id {
            task["UserResponsible"] = json!(user);
        }
        // Deputy takes no idempotency key: a create is sent again only when it certainly
        // did not arrive; a later attempt of the run looks for the reference first.
        let answer = request(
            call,
            Method::POST,
            "/api/v1/resource/Task",
            Some(&task),
            Safety::Unsafe,
        )
        .await?;
        Ok(created(read_task(call, &answer)?))
    }
}

fn created(ticket: Ticket) -> Step<TicketCreated> {
    let id = ticket.ticket_id.clone();
    Done::new(TicketCreated {
        ticket_id: ticket.ticket_id,
        url: ticket.url,
        status: ticket.status,
    })
    .vendor_message_id(id)
    .into()
}

/// The task whose comment carries `reference`, if any.
async fn find_by_reference(
    call: &ProviderCall<'_>,
    reference: &str,
) -> Result<Option<Value>, CallError> {
    let query = json!({
        "search": {"s1": {"field": "Comment", "data": format!("%{reference}%"), "type": "lk"}},
        "sort": {"Id": "asc"},
        "start": 0,
        "max": 1,
    });
    let found = request(
        call,
        Method::POST,
        "/api/v1/resource/Task/QUERY",
        Some(&query),
        Safety::Safe,
    )
    .await?;
    let tasks = found
        .as_array()
        .ok_or_else(|| malformed("a query answered no list"))?;
    Ok(tasks.first().cloned())
}

#[async_trait]
impl Serves<UpdateTicket> for Deputy {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &TicketUpdate,
    ) -> Result<Step<TicketUpdated>, CallError> {
        if input.priority.is_some() || input.tags.is_some() {
            return Err(call_failed(
                FailureClassification::Validation,
                "Deputy tasks have no priority or tags: update status or comment",
            ));
        }
        let path = format!("/api/v1/resource/Task/{}", input.ticket_id);
        let mut change = serde_json::Map::new();
        if let Some(status) = input.status {
            let done = matches!(status, Status::Solved | Status::Closed);
            let completed = if done {
                chrono::Utc::now().timestamp()
            } else {
                0
            };
            change.insert("TsCompleted".into(), json!(completed));
        }
        if let Some(comment) = &input.comment {
            let task = request(call, Method::GET, &path, None, Safety::Safe).await?;
            let before = task["Comment"].as_str().unwrap_or_default();
            change.insert(
                "Comment".into(),
                json!(format!("{before}\n\n{}", comment.body)),
            );
        }
        // Setting fields to values: the same update again changes nothing more.
        let answer = request(
            call,
            Method::POST,
            &path,
            Some(&Value::Object(change)),
            Safety::Safe,
        )
        .await?;
        let ticket = read_task(call, &answer)?;
        let id = ticket.ticket_id.clone();
        Ok(Done::new(TicketUpdated {
            ticket_id: ticket.ticket_id,
            status: ticket.status,
        })
        .vendor_message_id(id)
        .into())
    }
}

#[async_trait]
impl Serves<GetTicket> for Deputy {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &TicketRef,
    ) -> Result<Step<Ticket>, CallError> {
        let path = format!("/api/v1/resource/Task/{}", input.ticket_id);
        let task = request(call, Method::GET, &path, None, Safety::Safe).await?;
        let ticket = read_task(call, &task)?;
        let id = ticket.ticket_id.clone();
        Ok(Done::new(ticket).vendor_message_id(id).into())
    }
}

/// A Deputy task as a ticket.
fn read_task(call: &ProviderCall<'_>, task: &Value) -> Result<Ticket, CallError> {
    let id = task["Id"]
        .as_u64()
        .ok_or_else(|| malformed("the task lacks an Id"))?
        .to_string();
    let completed = task["TsCompleted"].as_i64().unwrap_or(0) > 0;
    let text = |field: &str| task[field].as_str().map(str::to_owned);
    Ok(Ticket {
        url: format!("{}/api/v1/resource/Task/{id}", call.base_url("")),
        ticket_id: id,
        subject: text("Question"),
        status: if completed { "solved" } else { "open" }.to_owned(),
        priority: None,
        tags: Vec::new(),
        external_id: None,
        created_at: text("Created"),
        updated_at: text("Modified"),
    })
}

/// The bearer: the permanent token, or the access token the registry's last refresh kept.
fn token<'c>(call: &'c ProviderCall<'_>) -> Result<&'c str, CallError> {
    if call.credential.kind() != CredentialKind::Oauth2RefreshToken {
        return call.secret("token");
    }
    let stale = || {
        call_failed(
            FailureClassification::Auth,
            "the credential holds no live access token: Deputy's refresh tokens rotate, so the \
             registry's rotation renews it (rotate the credential; give it a rotation policy \
             shorter than a day)",
        )
    };
    let expired = call
        .credential
        .get("accessTokenExpiresAt")
        .map(|at| {
            chrono::DateTime::parse_from_rfc3339(at.expose_secret())
                .map_or(true, |at| at.to_utc() <= chrono::Utc::now())
        })
        .unwrap_or(false);
    if expired {
        return Err(stale());
    }
    call.secret("accessToken").map_err(|_| stale())
}

/// One call to Deputy, its JSON answer.
async fn request(
    call: &ProviderCall<'_>,
    method: Method,
    path: &str,
    body: Option<&Value>,
    safety: Safety,
) -> Result<Value, CallError> {
    let url = format!("{}{path}", call.base_url(""));
    let token = token(call)?;
    let answers = answers(call);
    let authorization = format!("Bearer {token}");
    call.json(
        JsonCall {
            method,
            url: &url,
            authorization: Some(&authorization),
            headers: &[],
            body,
            safety,
        },
        &answers,
    )
    .await
}

/// Deputy's answers: the status decides; `error.message`, redacted, explains.
fn answers<'s>(
    call: &'s ProviderCall<'_>,
) -> VendorAnswers<'s, impl Fn(&mut VendorFailure, &Answer<'_>) -> String + Send + Sync> {
    VendorAnswers::new("deputy", call.credential.values().collect(), |_, answer| {
        answer.error["error"]["message"]
            .as_str()
            .or_else(|| answer.error["error"].as_str())
            .unwrap_or_default()
            .to_owned()
    })
}

#[cfg(test)]
mod tests;
