//! A fake token endpoint on 127.0.0.1:0: an axum server that records every request and
//! answers with what the test's responder says. `rfc_server` is a small RFC 6749 token
//! endpoint (client authentication, grants, rotating refresh tokens) built on it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use oauth2_client::{ClientConfig, Grant};
use reqwest::Url;
use serde_json::{Value, json};

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) authorization: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) accept: Option<String>,
    pub(crate) form: Vec<(String, String)>,
}

impl Seen {
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The Basic credentials, decoded as RFC 6749 §2.3.1 says (base64, then form-urlencoded).
    pub(crate) fn basic(&self) -> Option<(String, String)> {
        let encoded = self.authorization.as_deref()?.strip_prefix("Basic ")?;
        let decoded = String::from_utf8(BASE64.decode(encoded).ok()?).ok()?;
        let (user, password) = decoded.split_once(':')?;
        let unescape = |part: &str| -> String {
            form_urlencoded::parse(format!("x={part}").as_bytes())
                .next()
                .map(|(_, value)| value.into_owned())
                .unwrap_or_default()
        };
        Some((unescape(user), unescape(password)))
    }
}

/// What the fake answers.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    status: StatusCode,
    headers: Vec<(HeaderName, String)>,
    body: String,
    delay: Duration,
}

impl Reply {
    pub(crate) fn raw(status: u16, body: impl Into<String>) -> Self {
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    /// A JSON body with the headers RFC 6749 §5.1 requires (no caching).
    pub(crate) fn json(status: u16, body: Value) -> Self {
        Reply::raw(status, body.to_string())
            .header(header::CONTENT_TYPE, "application/json;charset=UTF-8")
            .header(header::CACHE_CONTROL, "no-store")
            .header(header::PRAGMA, "no-cache")
    }

    /// A §5.1 success.
    pub(crate) fn token(access_token: &str, expires_in: u64) -> Self {
        Reply::json(
            200,
            json!({"access_token": access_token, "token_type": "Bearer", "expires_in": expires_in}),
        )
    }

    /// A §5.2 error.
    pub(crate) fn error(status: u16, error: &str, description: &str) -> Self {
        Reply::json(
            status,
            json!({"error": error, "error_description": description}),
        )
    }

    pub(crate) fn header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Responder = dyn Fn(&Seen, usize) -> Reply + Send + Sync;

#[derive(Clone)]
struct FakeState {
    respond: Arc<Responder>,
    hits: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

pub(crate) struct Fake {
    pub(crate) url: Url,
    hits: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    /// Starts a fake whose `respond` gets each request and its 0-based index.
    pub(crate) async fn start(
        respond: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static,
    ) -> Fake {
        let state = FakeState {
            respond: Arc::new(respond),
            hits: Arc::default(),
            seen: Arc::default(),
        };
        let (hits, seen) = (state.hits.clone(), state.seen.clone());
        let app = Router::new()
            .route("/oauth2/token", post(token))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Fake {
            url: format!("http://{address}/oauth2/token").parse().unwrap(),
            hits,
            seen,
        }
    }

    /// How many requests reached the endpoint.
    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub(crate) fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub(crate) fn last(&self) -> Seen {
        self.requests().pop().expect("no request reached the fake")
    }

    pub(crate) fn config(&self, client_id: &str, grant: Grant) -> ClientConfig {
        ClientConfig::new(self.url.clone(), client_id, grant)
    }
}

async fn token(State(state): State<FakeState>, headers: HeaderMap, body: Bytes) -> Response {
    let text = |name: HeaderName| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let seen = Seen {
        authorization: text(header::AUTHORIZATION),
        content_type: text(header::CONTENT_TYPE),
        accept: text(header::ACCEPT),
        form: form_urlencoded::parse(&body).into_owned().collect(),
    };
    let index = state.hits.fetch_add(1, Ordering::SeqCst);
    state.seen.lock().unwrap().push(seen.clone());
    let reply = (state.respond)(&seen, index);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = (reply.status, reply.body).into_response();
    for (name, value) in reply.headers {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_str(&value).unwrap());
    }
    response
}

/// A small RFC 6749 token endpoint for one confidential client.
pub(crate) struct RfcServer {
    pub(crate) client_id: &'static str,
    pub(crate) client_secret: Option<&'static str>,
    /// Refresh tokens currently valid; each use rotates (the used one is revoked).
    pub(crate) refresh_tokens: Mutex<HashSet<String>>,
    pub(crate) rotate: bool,
    pub(crate) expires_in: Option<u64>,
    issued: AtomicUsize,
}

impl RfcServer {
    pub(crate) fn new(client_id: &'static str, client_secret: Option<&'static str>) -> Self {
        RfcServer {
            client_id,
            client_secret,
            refresh_tokens: Mutex::default(),
            rotate: false,
            expires_in: Some(3600),
            issued: AtomicUsize::new(0),
        }
    }

    pub(crate) fn with_refresh_token(self, token: &str) -> Self {
        self.refresh_tokens.lock().unwrap().insert(token.to_owned());
        self
    }

    pub(crate) fn rotating(mut self) -> Self {
        self.rotate = true;
        self
    }

    pub(crate) fn answer(&self, seen: &Seen) -> Reply {
        // Client authentication: Basic, or in the body, not both (§2.3.1); a public client
        // only names itself.
        let (id, secret) = match (seen.basic(), seen.param("client_secret")) {
            (Some(_), Some(_)) => {
                return Reply::error(
                    400,
                    "invalid_request",
                    "more than one authentication method",
                );
            }
            (Some((id, secret)), None) => (Some(id), Some(secret)),
            (None, secret) => (
                seen.param("client_id").map(str::to_owned),
                secret.map(str::to_owned),
            ),
        };
        let authenticated =
            id.as_deref() == Some(self.client_id) && secret.as_deref() == self.client_secret;
        if !authenticated {
            let reply = Reply::error(401, "invalid_client", "client authentication failed");
            return if seen.authorization.is_some() {
                reply.header(header::WWW_AUTHENTICATE, "Basic realm=\"token\"")
            } else {
                reply
            };
        }
        let mut refresh_token = None;
        match seen.param("grant_type") {
            Some("client_credentials") if self.client_secret.is_some() => {}
            Some("refresh_token") => {
                let Some(presented) = seen.param("refresh_token") else {
                    return Reply::error(400, "invalid_request", "refresh_token is required");
                };
                let mut valid = self.refresh_tokens.lock().unwrap();
                if !valid.contains(presented) {
                    return Reply::error(400, "invalid_grant", "the refresh token is invalid");
                }
                if self.rotate {
                    valid.remove(presented);
                    let next = format!("rt-{}", self.issued.load(Ordering::SeqCst) + 2);
                    valid.insert(next.clone());
                    refresh_token = Some(next);
                }
            }
            Some(_) => return Reply::error(400, "unsupported_grant_type", "not supported"),
            None => return Reply::error(400, "invalid_request", "grant_type is required"),
        }
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let mut body = json!({"access_token": format!("at-{n}"), "token_type": "Bearer"});
        if let Some(expires_in) = self.expires_in {
            body["expires_in"] = json!(expires_in);
        }
        if let Some(scope) = seen.param("scope") {
            body["scope"] = json!(scope);
        }
        if let Some(token) = refresh_token {
            body["refresh_token"] = json!(token);
        }
        Reply::json(200, body)
    }

    pub(crate) async fn start(self) -> Fake {
        let server = Arc::new(self);
        Fake::start(move |seen, _| server.answer(seen)).await
    }
}
