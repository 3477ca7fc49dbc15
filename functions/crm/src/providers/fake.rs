//! The Fake provider (`fake-crm`): an in-process CRM and analytics sink for tests and demos,
//! on the kit's shared Fake ([`integration_kit::fake`]: credential `{"apiKey": …}`, the key
//! `rejected` refused; config `mode`, `latencyMs`, `retryAfterMs`). Contacts are keyed by
//! email (or the caller's id), deals by the caller's key (the run's id by default), so a
//! repeated run updates what it created; events are kept in order.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use domain::CredentialKind;
use integration_kit::fake::{self, CallCounter};
use integration_kit::{Done, Provider, ProviderCall, Served, Serves, Step};
use resilience::{CallError, Safety};
use sha2::{Digest as _, Sha256};

use crate::{
    Contact, ContactUpserted, Deal, DealUpserted, Event, EventTracked, TrackEvent, UpsertContact,
    UpsertDeal,
};

/// What the Fake holds, per tenant.
#[derive(Debug, Default, Clone)]
pub struct Book {
    /// Contact id by its key (email or the caller's id).
    pub contacts: BTreeMap<String, String>,
    /// Deal id and name by the caller's key.
    pub deals: BTreeMap<String, (String, String)>,
    /// Event names, in order.
    pub events: Vec<String>,
}

static BOOKS: Mutex<BTreeMap<String, Book>> = Mutex::new(BTreeMap::new());
static CALLS: CallCounter = CallCounter::new();

/// What the Fake holds for `tenant`.
pub fn book(tenant: &str) -> Book {
    BOOKS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(tenant)
        .cloned()
        .unwrap_or_default()
}

/// Calls that reached the Fake for one run.
pub fn calls(idempotency_key: &str) -> u32 {
    CALLS.calls(idempotency_key)
}

pub struct Fake;

async fn go(call: &ProviderCall<'_>, operation: bool) -> Result<(), CallError> {
    let steer: fake::Steer = call.config_as()?;
    fake::call_through(&CALLS, call, &steer, Safety::Safe, operation).await
}

/// A vendor-looking id derived from `seed`.
fn id_of(prefix: &str, seed: &str) -> String {
    let digest = Sha256::digest(format!("fake-crm/{seed}").as_bytes());
    let n = u64::from_be_bytes(digest[..8].try_into().unwrap_or_default()) % 1_000_000_000;
    format!("{prefix}{n}")
}

fn with_book<T>(call: &ProviderCall<'_>, f: impl FnOnce(&mut Book) -> T) -> T {
    let mut books = BOOKS.lock().unwrap_or_else(|p| p.into_inner());
    f(books.entry(call.key.tenant.to_string()).or_default())
}

#[async_trait]
impl Provider for Fake {
    fn key(&self) -> &'static str {
        "fake-crm"
    }

    fn credential_kinds(&self) -> &'static [CredentialKind] {
        &[CredentialKind::ApiKey]
    }

    async fn test_connection(&self, call: &ProviderCall<'_>) -> Result<(), CallError> {
        go(call, false).await
    }

    fn serves(served: &mut Served<Self>) {
        served
            .operation::<UpsertContact>()
            .operation::<UpsertDeal>()
            .operation::<TrackEvent>()
            .config::<fake::Steer>();
    }
}

#[async_trait]
impl Serves<UpsertContact> for Fake {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &Contact,
    ) -> Result<Step<ContactUpserted>, CallError> {
        go(call, true).await?;
        let key = input
            .external_id
            .as_ref()
            .map_or_else(|| input.email.to_ascii_lowercase(), |i| i.to_string());
        let (id, created) = with_book(call, |book| match book.contacts.get(&key) {
            Some(id) => (id.clone(), false),
            None => {
                let id = id_of("", &key);
                book.contacts.insert(key.clone(), id.clone());
                (id, true)
            }
        });
        Ok(Done::new(ContactUpserted {
            contact_id: id.clone(),
            created: Some(created),
        })
        .vendor_message_id(id)
        .into())
    }
}

#[async_trait]
impl Serves<UpsertDeal> for Fake {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &Deal,
    ) -> Result<Step<DealUpserted>, CallError> {
        go(call, true).await?;
        let key = input
            .key
            .as_ref()
            .map(|k| k.to_string())
            .or_else(|| call.idempotency_key.map(str::to_owned))
            .unwrap_or_else(|| input.name.to_string());
        let (id, created) = with_book(call, |book| {
            let created = !book.deals.contains_key(&key);
            let id = book
                .deals
                .get(&key)
                .map_or_else(|| id_of("", &key), |(id, _)| id.clone());
            book.deals
                .insert(key.clone(), (id.clone(), input.name.to_string()));
            (id, created)
        });
        Ok(Done::new(DealUpserted {
            deal_id: id.clone(),
            created: Some(created),
        })
        .vendor_message_id(id)
        .into())
    }
}

#[async_trait]
impl Serves<TrackEvent> for Fake {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &Event,
    ) -> Result<Step<EventTracked>, CallError> {
        go(call, true).await?;
        with_book(call, |book| book.events.push(input.name.to_string()));
        Ok(Done::new(EventTracked { accepted: true }).into())
    }
}
