//! `support`: tickets at a help desk, on the integration kit. Operations, typed:
//! `createTicket` (opened once per run: Zendesk de-duplicates on the run id as its
//! `Idempotency-Key`), `updateTicket` (status, priority, a public or internal comment,
//! tags) and `getTicket` (the ticket, normalised; answered inline with `Prefer: wait`).
//! Providers ([`providers`]): `zendesk` (Zendesk Support's Ticketing API), `deputy` (a
//! ticket as a Deputy task at a location; the mapping is in [`providers::deputy`]) and
//! `fake-support` (in process, for tests and demos). Zendesk's webhooks, routed here by a `zendesk` source
//! of the connection, set a ticket's new status on the output of the last run that touched
//! it and publish `support.ticket.changed`.

pub mod providers;

use app_context::{AppContext, AppRegistration, CatalogueEntry, InvalidSetting};
use domain::AuthScheme;
use functions_runtime::FunctionApp;
use integration_kit::{InputError, Operation, VendorApp};
use serde::{Deserialize, Serialize};

pub const SLUG: &str = "support";
pub const SOURCE: &str = "/integration/support";

/// The providers this app has adapters for, as the registry's catalogue lists them.
pub const CATALOGUE: &[CatalogueEntry] = &[
    CatalogueEntry::retested(
        "fake-support",
        "Fake help desk (tests and demos)",
        domain::ProviderCategory::Support,
        AuthScheme::ApiKey,
        "https://fake-support.invalid",
    ),
    // Each account has its own host: the connection names it (`subdomain` or `baseUrl`).
    CatalogueEntry::retested(
        "zendesk",
        "Zendesk Support (Ticketing API v2)",
        domain::ProviderCategory::Support,
        AuthScheme::Basic,
        "https://zendesk.invalid",
    ),
    // Each install has its own host (`https://{install}.{region}.deputy.com`).
    CatalogueEntry::retested(
        "deputy",
        "Deputy (tasks as tickets, Resource API v1)",
        domain::ProviderCategory::Support,
        AuthScheme::Bearer,
        "https://deputy.invalid",
    ),
];

pub fn registration() -> AppRegistration {
    integration_kit::registration(SLUG, build, CATALOGUE)
}

pub fn build(ctx: &AppContext) -> Result<FunctionApp, InvalidSetting> {
    VendorApp::new(SLUG, SOURCE)
        // A ticket lives at one help desk: another connection is not a failover.
        .failover(false)
        .provider(providers::zendesk::Zendesk)
        .provider(providers::deputy::Deputy)
        .provider(providers::fake::Fake)
        .build(ctx)
}

integration_kit::checked_string!(
    /// A ticket's subject: 1 to 255 characters on one line.
    Subject,
    |s| {
        let n = s.chars().count();
        if (1..=255).contains(&n) && !s.chars().any(char::is_control) {
            Ok(())
        } else {
            Err("must be 1 to 255 characters on one line".into())
        }
    }
);

integration_kit::checked_string!(
    /// A description or comment: 1 to 65,535 characters.
    Text,
    |s| {
        let n = s.chars().count();
        if (1..=65_535).contains(&n) && !s.trim().is_empty() {
            Ok(())
        } else {
            Err("must be 1 to 65535 characters, not only spaces".into())
        }
    }
);

pub use integration_kit::EmailAddress;

integration_kit::checked_string!(
    /// A ticket's id at the help desk: 1 to 64 letters, digits, `-` or `_`.
    TicketId,
    |s| {
        if (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        {
            Ok(())
        } else {
            Err("must be a ticket id (1 to 64 letters, digits, - or _)".into())
        }
    }
);

integration_kit::checked_string!(
    /// A tag: 1 to 80 characters without spaces (Zendesk turns spaces into separate tags).
    Tag,
    |s| {
        if (1..=80).contains(&s.chars().count())
            && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            Ok(())
        } else {
            Err("must be 1 to 80 characters without spaces".into())
        }
    }
);

/// How urgent a ticket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
            Self::Urgent => "urgent",
        }
    }
}

/// Where a ticket stands (the states a caller may set; `new` is the help desk's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Open,
    Pending,
    Hold,
    Solved,
    Closed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Pending => "pending",
            Self::Hold => "hold",
            Self::Solved => "solved",
            Self::Closed => "closed",
        }
    }
}

/// At most this many tags on a ticket from one call.
pub const MAX_TAGS: usize = 50;

fn check_tags(tags: &[Tag]) -> Result<(), InputError> {
    if tags.len() > MAX_TAGS {
        return Err(InputError::at(
            "tags",
            format!("at most {MAX_TAGS} tags (got {})", tags.len()),
        ));
    }
    Ok(())
}

/// Who asked for help.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Requester {
    pub email: EmailAddress,
    #[serde(default)]
    pub name: Option<Subject>,
}

/// `createTicket`: a ticket, opened once per run.
pub struct CreateTicket;

impl Operation for CreateTicket {
    const NAME: &'static str = "createTicket";
    type Input = NewTicket;
    type Output = TicketCreated;

    fn check(input: &NewTicket) -> Result<(), InputError> {
        check_tags(&input.tags)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewTicket {
    pub subject: Subject,
    /// The first comment: what the requester needs.
    pub description: Text,
    pub requester: Requester,
    #[serde(default)]
    pub priority: Option<Priority>,
    #[serde(default, deserialize_with = "integration_kit::null_as_default")]
    pub tags: Vec<Tag>,
    /// The caller's own id for the ticket (kept by the help desk, searchable there).
    #[serde(default)]
    pub external_id: Option<TicketId>,
}

/// What `createTicket` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketCreated {
    pub ticket_id: String,
    /// Where an agent opens it.
    pub url: String,
    pub status: String,
}

/// `updateTicket`: a ticket's status, priority, tags, or a comment on it.
pub struct UpdateTicket;

impl Operation for UpdateTicket {
    const NAME: &'static str = "updateTicket";
    type Input = TicketUpdate;
    type Output = TicketUpdated;

    fn check(input: &TicketUpdate) -> Result<(), InputError> {
        if input.status.is_none()
            && input.priority.is_none()
            && input.comment.is_none()
            && input.tags.is_none()
        {
            return Err(InputError::at(
                "",
                "nothing to change: give status, priority, comment or tags",
            ));
        }
        check_tags(input.tags.as_deref().unwrap_or_default())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TicketUpdate {
    pub ticket_id: TicketId,
    #[serde(default)]
    pub status: Option<Status>,
    #[serde(default)]
    pub priority: Option<Priority>,
    #[serde(default)]
    pub comment: Option<Comment>,
    /// The ticket's tags after the update (replacing the ones it had).
    #[serde(default)]
    pub tags: Option<Vec<Tag>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Comment {
    pub body: Text,
    /// Whether the requester sees it (default); `false` is an internal note.
    #[serde(default = "yes")]
    pub public: bool,
}

fn yes() -> bool {
    true
}

/// What `updateTicket` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketUpdated {
    pub ticket_id: String,
    pub status: String,
}

/// `getTicket`: a ticket, normalised.
pub struct GetTicket;

impl Operation for GetTicket {
    const NAME: &'static str = "getTicket";
    type Input = TicketRef;
    type Output = Ticket;
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TicketRef {
    pub ticket_id: TicketId,
}

/// A ticket as every provider answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ticket {
    pub ticket_id: String,
    pub url: String,
    pub subject: Option<String>,
    /// `new`, `open`, `pending`, `hold`, `solved`, `closed`.
    pub status: String,
    pub priority: Option<String>,
    pub tags: Vec<String>,
    pub external_id: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}
