//! The token client: a cache of one access token, a single-flight fetch, and the current
//! (possibly rotated) refresh token.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::Utc;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::UNKNOWN_EXPIRY_LIFETIME;
use crate::response::{Scrubber, classify_error, parse_token_response};
use crate::{AccessToken, AuthMethod, ClientConfig, Grant, OAuthError};

/// A token response body larger than this is refused (a token response is a few KiB).
const MAX_BODY: usize = 64 * 1024;

/// The longest a token is reused, whatever its lifetime (keeps `Instant` arithmetic far
/// from overflow, and a very long-lived token is still re-fetched daily).
const MAX_REUSE: Duration = Duration::from_secs(24 * 60 * 60);

/// What every caller waiting on one fetch receives.
type Outcome = Option<Result<AccessToken, OAuthError>>;

/// Gets access tokens from one token endpoint for one client and grant, caching the
/// current token. Cheap to clone; clones share the cache and the refresh token.
#[derive(Clone)]
pub struct TokenClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    config: ClientConfig,
    state: Mutex<State>,
    /// The source of truth for the refresh token in use: starts with the grant's token and
    /// is replaced when the server rotates it. `None` for client credentials.
    refresh_token: watch::Sender<Option<SecretString>>,
}

#[derive(Default)]
struct State {
    cached: Option<Cached>,
    flight: Option<Flight>,
    flights: u64,
}

struct Cached {
    token: AccessToken,
    /// When the token stops being handed out (expiry minus the margin).
    refresh_at: Instant,
}

/// A fetched token and the lifetime the server gave it.
struct Fetched {
    token: AccessToken,
    lifetime: Option<Duration>,
}

/// The fetch in progress: every caller that misses the cache waits on `done`.
struct Flight {
    id: u64,
    done: watch::Receiver<Outcome>,
}

impl fmt::Debug for TokenClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = &self.inner.config;
        f.debug_struct("TokenClient")
            .field("token_url", &config.token_url.as_str())
            .field("client_id", &config.client_id)
            .field(
                "grant",
                &match config.grant {
                    Grant::ClientCredentials => "client_credentials",
                    Grant::RefreshToken(_) => "refresh_token",
                },
            )
            .finish_non_exhaustive()
    }
}

impl TokenClient {
    /// A client using `http` for its requests (the client's own timeout is set per
    /// request from `config.timeout`). Must be used inside a Tokio runtime.
    pub fn new(http: reqwest::Client, config: ClientConfig) -> Self {
        let refresh_token = match &config.grant {
            Grant::ClientCredentials => None,
            Grant::RefreshToken(token) => Some(token.clone()),
        };
        let (refresh_token, _) = watch::channel(refresh_token);
        TokenClient {
            inner: Arc::new(Inner {
                http,
                config,
                state: Mutex::new(State::default()),
                refresh_token,
            }),
        }
    }

    /// The cached token while it is valid for longer than the refresh margin, otherwise a
    /// new one from the token endpoint.
    ///
    /// Single-flight: however many callers miss the cache at once, one request is made and
    /// all of them get its result, error included. An error is not cached: the next call
    /// makes a new request. The request runs in its own task, so a caller that gives up
    /// (a dropped future) does not lose a rotated refresh token.
    pub async fn access_token(&self) -> Result<AccessToken, OAuthError> {
        let mut done = {
            let mut state = self.inner.lock();
            if let Some(cached) = &state.cached
                && cached.refresh_at > Instant::now()
            {
                return Ok(cached.token.clone());
            }
            match &state.flight {
                Some(flight) => flight.done.clone(),
                None => self.start_flight(&mut state),
            }
        };
        let outcome = done
            .wait_for(Option::is_some)
            .await
            .map(|outcome| outcome.clone());
        match outcome {
            Ok(Some(result)) => result,
            // The fetch task ended without an answer (it panicked or the runtime is
            // shutting down).
            Ok(None) | Err(_) => Err(OAuthError::Transient {
                reason: "the token request was abandoned".to_owned(),
            }),
        }
    }

    /// Drops the cached token, so the next [`access_token`](Self::access_token) fetches
    /// one. Call it when an API rejects the token (401) before its expiry.
    pub fn invalidate(&self) {
        self.inner.lock().cached = None;
    }

    /// The refresh token in use: the grant's, or the latest one the server rotated to.
    /// `None` for the client-credentials grant.
    pub fn current_refresh_token(&self) -> Option<SecretString> {
        self.inner.refresh_token.borrow().clone()
    }

    /// A receiver that is notified each time the server rotates the refresh token
    /// (`changed()` resolves; the value is the new token). Custody stores the new token as
    /// a new secret version: with rotation the old one stops working.
    pub fn subscribe_refresh_token(&self) -> watch::Receiver<Option<SecretString>> {
        self.inner.refresh_token.subscribe()
    }

    fn start_flight(&self, state: &mut State) -> watch::Receiver<Outcome> {
        state.flights += 1;
        let id = state.flights;
        let (tx, rx) = watch::channel(None);
        state.flight = Some(Flight {
            id,
            done: rx.clone(),
        });
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            // Clears the flight even if the fetch panics, so later callers start a new one.
            let _guard = FlightGuard {
                inner: Arc::clone(&inner),
                id,
            };
            let started = Instant::now();
            let result = inner.fetch().await;
            if let Err(error) = &result {
                // The error carries no secret (see `OAuthError`).
                tracing::warn!(token_url = %inner.config.token_url, client_id = %inner.config.client_id, %error, "token request failed");
            }
            inner.finish(id, started, &result);
            tx.send_replace(Some(result.map(|fetched| fetched.token)));
        });
        rx
    }
}

struct FlightGuard {
    inner: Arc<Inner>,
    id: u64,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        let mut state = self.inner.lock();
        if state
            .flight
            .as_ref()
            .is_some_and(|flight| flight.id == self.id)
        {
            state.flight = None;
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a cache: a panic while holding the lock leaves nothing half-written
        // that matters.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a fetch's result (before the waiters see it, so a caller arriving between
    /// the two finds the cache rather than starting another request).
    fn finish(&self, id: u64, started: Instant, result: &Result<Fetched, OAuthError>) {
        let mut state = self.lock();
        if let Ok(fetched) = result {
            state.cached = Some(Cached {
                token: fetched.token.clone(),
                refresh_at: started + self.reuse_for(fetched.lifetime),
            });
        }
        if state.flight.as_ref().is_some_and(|flight| flight.id == id) {
            state.flight = None;
        }
    }

    /// How long a token is handed out: its lifetime minus the margin, the margin capped at
    /// half the lifetime so that a short-lived token is still reused; a token of unknown
    /// lifetime for [`UNKNOWN_EXPIRY_LIFETIME`].
    fn reuse_for(&self, lifetime: Option<Duration>) -> Duration {
        match lifetime {
            Some(lifetime) => {
                (lifetime - self.config.refresh_margin.min(lifetime / 2)).min(MAX_REUSE)
            }
            None => UNKNOWN_EXPIRY_LIFETIME,
        }
    }

    /// The form body and, for Basic authentication, the `Authorization` header.
    fn request_body(
        &self,
        grant_type: &str,
        refresh_token: Option<&SecretString>,
    ) -> (String, Option<HeaderValue>) {
        let config = &self.config;
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", grant_type);
        if let Some(token) = refresh_token {
            form.append_pair("refresh_token", token.expose_secret());
        }
        if let Some(scope) = &config.scope {
            form.append_pair("scope", scope);
        }
        if let Some(audience) = &config.audience {
            form.append_pair("audience", audience);
        }
        let mut authorization = None;
        match (&config.client_secret, config.auth_method) {
            // A public client identifies itself in the body (RFC 6749 §3.2.1).
            (None, _) => {
                form.append_pair("client_id", &config.client_id);
            }
            (Some(secret), AuthMethod::ClientSecretPost) => {
                form.append_pair("client_id", &config.client_id);
                form.append_pair("client_secret", secret.expose_secret());
            }
            (Some(secret), AuthMethod::ClientSecretBasic) => {
                authorization = Some(basic(&config.client_id, secret));
            }
        }
        (form.finish(), authorization)
    }

    async fn fetch(&self) -> Result<Fetched, OAuthError> {
        let config = &self.config;
        let refresh_token = self.refresh_token.borrow().clone();
        let scrub = Scrubber::new([config.client_secret.as_ref(), refresh_token.as_ref()]);
        let grant_type = match config.grant {
            Grant::ClientCredentials => "client_credentials",
            Grant::RefreshToken(_) => "refresh_token",
        };
        tracing::debug!(token_url = %config.token_url, client_id = %config.client_id, grant_type, "requesting an access token");

        let (body, authorization) = self.request_body(grant_type, refresh_token.as_ref());
        let mut request = self
            .http
            .post(config.token_url.clone())
            .timeout(config.timeout)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json");
        if let Some(authorization) = authorization {
            request = request.header(AUTHORIZATION, authorization);
        }

        let expires_from = Utc::now();
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error(&e, config.timeout, &scrub))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = read_body(response, config.timeout, &scrub).await?;

        if !status.is_success() {
            return Err(classify_error(status, &headers, &body, &scrub));
        }
        let parsed = parse_token_response(&body)?;

        if let (Grant::RefreshToken(_), Some(new)) = (&config.grant, parsed.refresh_token) {
            let rotated = self.refresh_token.send_if_modified(|current| {
                let same = current
                    .as_ref()
                    .is_some_and(|old| old.expose_secret() == new.expose_secret());
                if !same {
                    *current = Some(new);
                }
                !same
            });
            if rotated {
                tracing::info!(client_id = %config.client_id, "the refresh token was rotated");
            }
        }
        let expires_at = parsed
            .expires_in
            .and_then(|lifetime| chrono::Duration::from_std(lifetime).ok())
            .and_then(|lifetime| expires_from.checked_add_signed(lifetime));
        Ok(Fetched {
            token: AccessToken {
                secret: parsed.access_token,
                expires_at,
                token_type: parsed.token_type,
                scope: parsed.scope.or_else(|| config.scope.clone()),
            },
            lifetime: parsed.expires_in,
        })
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`, RFC 6749 §2.3.1.
fn basic(client_id: &str, secret: &SecretString) -> HeaderValue {
    let user: String = form_urlencoded::byte_serialize(client_id.as_bytes()).collect();
    let password: String =
        form_urlencoded::byte_serialize(secret.expose_secret().as_bytes()).collect();
    let encoded = BASE64.encode(format!("{user}:{password}"));
    let mut value = HeaderValue::try_from(format!("Basic {encoded}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Basic"));
    value.set_sensitive(true);
    value
}

async fn read_body(
    mut response: reqwest::Response,
    timeout: Duration,
    scrub: &Scrubber,
) -> Result<Vec<u8>, OAuthError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(&e, timeout, scrub))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(OAuthError::Malformed {
                reason: format!("the body is larger than {MAX_BODY} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn transport_error(error: &reqwest::Error, timeout: Duration, scrub: &Scrubber) -> OAuthError {
    let reason = if error.is_timeout() {
        format!("no complete answer within {} ms", timeout.as_millis())
    } else {
        // The chain says what failed (connection refused, reset, ...); the URL is left out.
        let mut reason = if error.is_connect() {
            "could not connect".to_owned()
        } else {
            "the request failed".to_owned()
        };
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            reason.push_str(": ");
            reason.push_str(&cause.to_string());
            source = cause.source();
        }
        scrub.clean(&reason)
    };
    OAuthError::Transient { reason }
}
