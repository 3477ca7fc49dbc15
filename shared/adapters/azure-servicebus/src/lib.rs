//! `ServiceBusSender`: the `ports::BusSender` port on Azure Service Bus, over its REST API.
//!
//! There is no maintained Rust Service Bus SDK, and the platform only ever *sends* (the
//! Functions host consumes through `serviceBusTrigger` bindings), so this crate speaks the
//! REST send API directly: `POST https://{namespace}/{entity}/messages` answered by
//! `201 Created`.
//!
//! - **One message** goes as the body itself, its broker properties (`MessageId`, `SessionId`,
//!   `CorrelationId`, `Label` = subject, `ScheduledEnqueueTimeUtc` in RFC 1123, `TimeToLive` in
//!   seconds) in the JSON `BrokerProperties` header, its content type as `Content-Type`, and
//!   each application property as a header of its own: strings in double quotes, integers
//!   and booleans bare (how the service tells the types apart).
//! - **Several messages** (or one whose properties cannot travel as headers, see below) go as
//!   one batch: `Content-Type: application/vnd.microsoft.servicebus.json` and a JSON array of
//!   `{"Body", "IsBodyBase64"?, "BrokerProperties", "UserProperties"?}`. One request keeps
//!   the port's "all messages or none".
//! - **Auth**: an Entra ID token for `https://servicebus.azure.net/.default` from
//!   `azure_identity` (cached until five minutes before it expires, refreshed by one caller
//!   at a time), or a SAS token signed from a connection string's key (for stand-ins).
//! - **Failures** map onto `PortError`: 400 → `Invalid`, 401 → `Unauthenticated`, 403 →
//!   `Invalid` when the message is too large, otherwise `Backend` (quota or access), 404/410 →
//!   `NotFound`, 413 → `Invalid`, 429/503 → retried with backoff (the server's `Retry-After`
//!   wins), then `Throttled`. Bodies of error answers are scrubbed of anything that looks
//!   like a credential before they reach an error or a log.
//! - **Retries are safe** because every send carries its `MessageId`: if a request reached the
//!   broker but its answer was lost (a timeout, a 503 after the commit), the retried copy is
//!   dropped by the entity's duplicate detection (on for every entity the Bicep creates, with
//!   a ten-minute window). On an entity *without* duplicate detection a retry after a lost
//!   answer can enqueue a message twice, which consumers tolerate anyway (they are idempotent
//!   on the message id).
//!
//! # Where the tests' fake differs from the real service
//!
//! The tests run against an HTTPS fake written in `tests/it`; it checks what the
//! documentation says and no more. What it glosses over:
//!
//! - It accepts any entity name and commits instantly; the real service answers 404/410 for a
//!   missing entity (both map to `NotFound`) and enforces message and batch size limits
//!   (256 KB on Standard) with 413 or 403.
//! - Header case: HTTP/1.1 through hyper and HTTP/2 both send header names in lower case, so
//!   a property sent as a header would arrive with a lower-cased name. The sender therefore
//!   uses a header only for lower-case names (and values that are plain printable ASCII, no
//!   quotes, and integers or booleans); anything else, like the outbox's `tenantId`, goes
//!   through the batch form, whose `UserProperties` keep names and types exactly. The fake
//!   cannot show how the real service parses header values; quoting strings follows the
//!   service's own legacy SDKs.
//! - In the batch form the documented per-message fields have no content type; the sender
//!   puts it in `BrokerProperties.ContentType`, which the fake records but which the real
//!   service may ignore (a message sent in a batch may then arrive without its content type).
//!   Bodies that are not UTF-8 travel base64-encoded with `IsBodyBase64`.
//! - The fake treats a batch as atomic; the REST documentation does not say so explicitly.
//! - SAS: the fake recomputes the signature over the URL-encoded `https://host:port/entity`
//!   it was addressed as and checks expiry and key name; the real service also accepts a
//!   token scoped to a prefix of the entity (the namespace) and checks rights (`Send`).
//! - Entra: the fake accepts one static bearer token; the real service validates the JWT and
//!   the identity's role (Azure Service Bus Data Sender).
//! - The REST send returns no sequence number, so a scheduled message cannot be cancelled.

mod auth;
mod connection;
mod error;
mod settings;
mod wire;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use ports::{BusSender, OutgoingMessage, PortError};
use reqwest::StatusCode;

use crate::auth::Auth;
pub use crate::connection::ConnectionString;
pub use crate::error::Error;
use crate::error::{BACKEND, HttpFailure, scrub};
pub use crate::settings::{
    CLIENT_ID_SETTING, CREDENTIAL_SETTING, NAMESPACE_SETTING, REST_CONNECTION_SETTING,
};
use crate::wire::Payload;
pub use azure_credential::retry::RetryPolicy;

/// The OAuth scope of Service Bus data-plane tokens.
pub const SCOPE: &str = "https://servicebus.azure.net/.default";

/// How a sender is built; `Default` is what production uses.
#[derive(Clone)]
pub struct SenderOptions {
    /// Retries of throttled (429) and busy (503) answers and of failed connections.
    pub retry: RetryPolicy,
    /// The whole of one HTTP request, from connect to the last byte of the answer.
    pub request_timeout: Duration,
    /// The HTTP client to use (tests pass one that trusts their CA). By default a client
    /// with the platform's trusted roots and `request_timeout`.
    pub http_client: Option<reqwest::Client>,
    /// The credential to use when the settings choose Entra ID (tests pass a static one).
    /// By default `from_settings` picks managed identity in Azure, developer tools elsewhere.
    pub credential: Option<Arc<dyn TokenCredential>>,
}

impl Default for SenderOptions {
    fn default() -> Self {
        SenderOptions {
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(30),
            http_client: None,
            credential: None,
        }
    }
}

impl fmt::Debug for SenderOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SenderOptions")
            .field("retry", &self.retry)
            .field("request_timeout", &self.request_timeout)
            .field("http_client", &self.http_client.is_some())
            .field("credential", &self.credential.is_some())
            .finish()
    }
}

/// Sends to Service Bus queues and topics over REST. Cheap to share (`Arc`), safe to use
/// from many tasks.
pub struct ServiceBusSender {
    http: reqwest::Client,
    /// `https://host[:port]`, no trailing slash.
    endpoint: String,
    auth: Auth,
    retry: RetryPolicy,
    requests: AtomicU64,
}

/// Hand-written so neither the key nor a token can reach a log.
impl fmt::Debug for ServiceBusSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceBusSender")
            .field("endpoint", &self.endpoint)
            .field("auth", &self.auth.kind())
            .finish_non_exhaustive()
    }
}

impl ServiceBusSender {
    /// A sender to `namespace` (`<ns>.servicebus.windows.net`, optionally with a port or an
    /// `sb://`/`https://` prefix) authenticated with Entra ID tokens from `credential`.
    pub fn with_credential(
        namespace: &str,
        credential: Arc<dyn TokenCredential>,
        options: SenderOptions,
    ) -> Result<Self, Error> {
        let endpoint = connection::namespace_endpoint(namespace)
            .map_err(|reason| Error::Namespace { reason })?;
        Self::build(endpoint, Auth::entra(credential), options)
    }

    /// A sender authenticated with SAS tokens signed with a connection string's key
    /// (`Endpoint=sb://…;SharedAccessKeyName=…;SharedAccessKey=…`), for stand-ins.
    pub fn with_connection_string(
        connection_string: &str,
        options: SenderOptions,
    ) -> Result<Self, Error> {
        let parsed = ConnectionString::parse(connection_string)?;
        let endpoint = parsed.endpoint.clone();
        Self::build(endpoint, Auth::sas(parsed), options)
    }

    /// The sender the settings choose, or `None` when they choose none (the embedded broker
    /// is used then). See [`NAMESPACE_SETTING`] and [`REST_CONNECTION_SETTING`].
    pub fn from_settings(
        settings: &std::collections::BTreeMap<String, String>,
    ) -> Result<Option<Self>, Error> {
        Self::from_settings_with(settings, SenderOptions::default())
    }

    /// [`from_settings`](Self::from_settings) with options (a client, a credential).
    pub fn from_settings_with(
        settings: &std::collections::BTreeMap<String, String>,
        options: SenderOptions,
    ) -> Result<Option<Self>, Error> {
        settings::from_settings(settings, options)
    }

    fn build(endpoint: String, auth: Auth, options: SenderOptions) -> Result<Self, Error> {
        let http = match options.http_client {
            Some(client) => client,
            None => reqwest::Client::builder()
                .timeout(options.request_timeout)
                .connect_timeout(Duration::from_secs(10))
                // Service Bus never redirects a send; following one could hand the token
                // to another host.
                .redirect(reqwest::redirect::Policy::none())
                .https_only(true)
                .build()
                .map_err(|e| Error::Http(e.to_string()))?,
        };
        Ok(ServiceBusSender {
            http,
            endpoint,
            auth,
            retry: options.retry,
            requests: AtomicU64::new(0),
        })
    }

    /// `https://host[:port]` of the namespace.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// HTTP requests made so far, retries included (a send is normally exactly one).
    pub fn http_requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    async fn attempt(&self, entity: &str, payload: &Payload) -> Attempt {
        let url = format!("{}/{entity}/messages", self.endpoint);
        let authorization = match self.auth.authorization(&self.endpoint, entity).await {
            Ok(value) => value,
            Err(e) => return Attempt::Fail(e),
        };
        let mut request = self
            .http
            .post(&url)
            .header(http::header::AUTHORIZATION, authorization.header.clone())
            .headers(payload.headers.clone())
            .body(payload.body.clone());
        if let Some(content_type) = &payload.content_type {
            request = request.header(http::header::CONTENT_TYPE, content_type.clone());
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) if e.is_connect() => {
                // Nothing reached the broker, so trying again is safe for any request.
                let e = e.without_url();
                tracing::debug!(entity, error = %e, "service bus: cannot connect");
                return Attempt::Retry {
                    after: None,
                    error: PortError::backend(
                        BACKEND,
                        format!("cannot connect to {}: {e}", self.endpoint),
                    ),
                };
            }
            Err(e) if e.is_timeout() => {
                // The send may have been committed: the retry carries the same MessageIds,
                // which duplicate detection drops.
                tracing::debug!(entity, "service bus: request timed out");
                return Attempt::Retry {
                    after: None,
                    error: PortError::Timeout,
                };
            }
            Err(e) => {
                return Attempt::Fail(PortError::backend(
                    BACKEND,
                    format!("request to {} failed: {}", self.endpoint, e.without_url()),
                ));
            }
        };
        let status = response.status();
        if status.is_success() {
            return Attempt::Done;
        }
        let headers = response.headers();
        let retry_after = azure_credential::retry::retry_after(|name| {
            headers.get(name).and_then(|v| v.to_str().ok())
        });
        // The body of an error is short XML (`<Error><Code>…</Code><Detail>…</Detail>`); it
        // is read only to give the error context, scrubbed of anything credential-like.
        let text = response.text().await.unwrap_or_default();
        let detail = scrub(&error::detail(&text), &authorization.secrets());
        tracing::debug!(entity, status = status.as_u16(), %detail, "service bus: send refused");
        let failure = HttpFailure {
            status: status.as_u16(),
            detail,
        };
        match status {
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => Attempt::Retry {
                after: retry_after,
                error: PortError::Throttled { retry_after },
            },
            StatusCode::UNAUTHORIZED => {
                // A cached token the service no longer accepts (revoked, clock skew) must not
                // be reused by the next send.
                self.auth.invalidate().await;
                tracing::warn!(entity, %failure, "service bus refused the credentials");
                Attempt::Fail(PortError::Unauthenticated)
            }
            _ => Attempt::Fail(failure.into_port_error(entity)),
        }
    }
}

/// What one HTTP attempt came to.
enum Attempt {
    Done,
    /// Worth trying again (after `after`, when the server said so); `error` is what the
    /// caller gets if no attempt is left.
    Retry {
        after: Option<Duration>,
        error: PortError,
    },
    Fail(PortError),
}

#[async_trait]
impl BusSender for ServiceBusSender {
    async fn send(&self, entity: &str, messages: Vec<OutgoingMessage>) -> ports::Result<()> {
        wire::validate_entity(entity)?;
        if messages.is_empty() {
            return Ok(());
        }
        let payload = Payload::build(&messages)?;
        let mut attempt = 1;
        loop {
            match self.attempt(entity, &payload).await {
                Attempt::Done => return Ok(()),
                Attempt::Fail(error) => return Err(error),
                Attempt::Retry { after, error } => {
                    let Some(wait) = self.retry.wait_before(attempt, after) else {
                        return Err(error);
                    };
                    tracing::debug!(
                        entity,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "service bus: retrying the send"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }
}
