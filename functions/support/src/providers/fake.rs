//! The Fake provider (`fake-support`): an in-process help desk for tests and demos, on the
//! kit's shared Fake ([`integration_kit::fake`]: credential `{"apiKey": …}`, the key
//! `rejected` refused; config `mode`, `latencyMs`, `retryAfterMs`). Tickets live in this
//! process: `createTicket` derives the ticket's id from the run, so a repeated run finds the
//! ticket it opened (as Zendesk's idempotency keys do); `updateTicket` and `getTicket` of
//! an id it never opened are 404.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use domain::{CredentialKind, FailureClassification};
use integration_kit::fake::{self, CallCounter};
use integration_kit::{Done, Provider, ProviderCall, Served, Serves, Step};
use resilience::{CallError, HttpStatus, Outcome, Safety, VendorFailure};
use sha2::{Digest as _, Sha256};

use crate::{
    CreateTicket, GetTicket, NewTicket, Ticket, TicketCreated, TicketRef, TicketUpdate,
    TicketUpdated, UpdateTicket,
};

/// Tickets by (tenant, id).
static TICKETS: Mutex<BTreeMap<(String, String), Ticket>> = Mutex::new(BTreeMap::new());
static CALLS: CallCounter = CallCounter::new();

/// Calls that reached the Fake for one run (its idempotency key).
pub fn calls(idempotency_key: &str) -> u32 {
    CALLS.calls(idempotency_key)
}

/// The tickets the Fake holds for `tenant`.
pub fn tickets(tenant: &str) -> Vec<Ticket> {
    TICKETS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|((t, _), _)| t == tenant)
        .map(|(_, ticket)| ticket.clone())
        .collect()
}

pub struct Fake;

const URL: &str = "https://fake-support.invalid/tickets";

/// One call to the "vendor", through the pipeline.
async fn go(call: &ProviderCall<'_>, safety: Safety) -> Result<(), CallError> {
    let steer: fake::Steer = call.config_as()?;
    fake::call_through(&CALLS, call, &steer, safety, true).await
}

fn not_found(id: &str) -> CallError {
    CallError {
        failure: VendorFailure::new(
            FailureClassification::Validation,
            format!("fake-support answered 404: no ticket {id}"),
        )
        .status(404),
        retryable: false,
        attempts: 1,
    }
}

fn key(call: &ProviderCall<'_>, id: &str) -> (String, String) {
    (call.key.tenant.to_string(), id.to_owned())
}

#[async_trait]
impl Provider for Fake {
    fn key(&self) -> &'static str {
        "fake-support"
    }

    fn credential_kinds(&self) -> &'static [CredentialKind] {
        &[CredentialKind::ApiKey]
    }

    async fn test_connection(&self, call: &ProviderCall<'_>) -> Result<(), CallError> {
        let steer: fake::Steer = call.config_as()?;
        call.pipeline
            .execute(call.call(Safety::Safe, &HttpStatus), |_| async {
                fake::answer(&CALLS, call, &steer, false)
                    .await
                    .unwrap_or(Outcome::Done(()))
            })
            .await
            .map(|_| ())
    }

    fn serves(served: &mut Served<Self>) {
        served
            .operation::<CreateTicket>()
            .operation::<UpdateTicket>()
            .operation::<GetTicket>()
            .config::<fake::Steer>();
    }
}

#[async_trait]
impl Serves<CreateTicket> for Fake {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &NewTicket,
    ) -> Result<Step<TicketCreated>, CallError> {
        go(call, Safety::Idempotent).await?;
        let seed = call
            .idempotency_key
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{}/{}", input.requester.email, input.subject));
        let digest = Sha256::digest(format!("fake-support/{seed}").as_bytes());
        // A number, as help desks' ticket ids are.
        let id = (u64::from_be_bytes(digest[..8].try_into().unwrap_or_default()) % 1_000_000_000)
            .to_string();
        let ticket = TICKETS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key(call, &id))
            .or_insert_with(|| Ticket {
                ticket_id: id.clone(),
                url: format!("{URL}/{id}"),
                subject: Some(input.subject.to_string()),
                status: "new".into(),
                priority: input.priority.map(|p| p.as_str().to_owned()),
                tags: input.tags.iter().map(|t| t.to_string()).collect(),
                external_id: input.external_id.as_ref().map(|e| e.to_string()),
                created_at: Some(chrono::Utc::now().to_rfc3339()),
                updated_at: None,
            })
            .clone();
        Ok(Done::new(TicketCreated {
            ticket_id: ticket.ticket_id,
            url: ticket.url,
            status: ticket.status,
        })
        .vendor_message_id(id)
        .into())
    }
}

#[async_trait]
impl Serves<UpdateTicket> for Fake {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &TicketUpdate,
    ) -> Result<Step<TicketUpdated>, CallError> {
        go(call, Safety::Safe).await?;
        let mut tickets = TICKETS.lock().unwrap_or_else(|p| p.into_inner());
        let ticket = tickets
            .get_mut(&key(call, &input.ticket_id))
            .ok_or_else(|| not_found(&input.ticket_id))?;
        if let Some(s) = input.status {
            ticket.status = s.as_str().to_owned();
        } else if ticket.status == "new" {
            ticket.status = "open".into();
        }
        if let Some(p) = input.priority {
            ticket.priority = Some(p.as_str().to_owned());
        }
        if let Some(tags) = &input.tags {
            ticket.tags = tags.iter().map(|t| t.to_string()).collect();
        }
        ticket.updated_at = Some(chrono::Utc::now().to_rfc3339());
        Ok(Done::new(TicketUpdated {
            ticket_id: ticket.ticket_id.clone(),
            status: ticket.status.clone(),
        })
        .vendor_message_id(ticket.ticket_id.clone())
        .into())
    }
}

#[async_trait]
impl Serves<GetTicket> for Fake {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &TicketRef,
    ) -> Result<Step<Ticket>, CallError> {
        go(call, Safety::Safe).await?;
        let ticket = TICKETS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key(call, &input.ticket_id))
            .cloned()
            .ok_or_else(|| not_found(&input.ticket_id))?;
        let id = ticket.ticket_id.clone();
        Ok(Done::new(ticket).vendor_message_id(id).into())
    }
}
