//! An HTTPS fake Key Vault serving what `SecretClient` calls, with the REST shapes of the
//! Key Vault secrets API:
//!
//! - every request without `Authorization: Bearer <token>` gets `401` and the
//!   `WWW-Authenticate: Bearer authorization="…", resource="https://vault.azure.net"`
//!   challenge the SDK learns its scope from;
//! - `PUT /secrets/{name}` makes a version (32 hex characters), `GET /secrets/{name}[/]`
//!   reads the newest, `GET /secrets/{name}/{version}` one version,
//!   `GET /secrets/{name}/versions` lists them (no values) in pages linked by `nextLink`,
//!   `PATCH /secrets/{name}/{version}` updates attributes;
//! - a disabled version reads as `403 Forbidden` / `SecretDisabled`, an unknown one as
//!   `404 SecretNotFound`, bad names as `400 BadParameter`;
//! - tests can script answers (429 with `Retry-After`, 503, …) that come before the next
//!   real one.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::tls::TestPki;

pub(crate) const TOKEN: &str =
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.eyJhdWQiOiJodHRwczovL3ZhdWx0LmF6dXJlLm5ldCJ9.kv-test";
pub(crate) const API_VERSION: &str = "2025-07-01";
const CHALLENGE: &str = "Bearer authorization=\"https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000\", resource=\"https://vault.azure.net\"";

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub(crate) struct Recorded {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: String,
    pub(crate) authorized: bool,
    pub(crate) body: Bytes,
    pub(crate) at: Instant,
}

/// An answer to give instead of the real one, once.
#[derive(Clone, Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Value,
}

impl Reply {
    pub(crate) fn error(status: u16, code: &str, message: &str) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: json!({"error": {"code": code, "message": message}}),
        }
    }

    pub(crate) fn throttled(retry_after: &str) -> Reply {
        Reply::error(
            429,
            "Throttled",
            "Request was not processed because too many requests were received.",
        )
        .header("retry-after", retry_after)
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

#[derive(Clone)]
struct Version {
    id: String,
    value: String,
    created: i64,
    updated: i64,
    enabled: bool,
    tags: Option<Value>,
    content_type: Option<Value>,
}

struct Secret {
    /// The spelling of the first `set`; lookups ignore case, as Key Vault's do.
    name: String,
    /// In creation order.
    versions: Vec<Version>,
}

struct Vault {
    host: String,
    page_size: usize,
    secrets: Mutex<HashMap<String, Secret>>,
    requests: Mutex<Vec<Recorded>>,
    script: Mutex<VecDeque<Reply>>,
}

pub(crate) struct FakeKeyVault {
    pub(crate) addr: SocketAddr,
    pub(crate) pki: TestPki,
    vault: Arc<Vault>,
    handle: axum_server::Handle<SocketAddr>,
}

impl Drop for FakeKeyVault {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

impl FakeKeyVault {
    /// A vault that lists versions `page_size` at a time (the real one: up to 25).
    pub(crate) async fn start(page_size: usize) -> FakeKeyVault {
        let pki = crate::tls::pki();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let vault = Arc::new(Vault {
            host: addr.to_string(),
            page_size,
            secrets: Mutex::new(HashMap::new()),
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
        });
        let app = Router::new().fallback(handle).with_state(vault.clone());
        let config = axum_server::tls_rustls::RustlsConfig::from_pem(
            pki.chain_pem().expect("chain").into_bytes(),
            pki.key_pem().expect("key").into_bytes(),
        )
        .await
        .expect("TLS config");
        let handle = axum_server::Handle::new();
        let server = axum_server::from_tcp_rustls(listener, config)
            .expect("server")
            .handle(handle.clone());
        tokio::spawn(async move {
            let _ = server.serve(app.into_make_service()).await;
        });
        FakeKeyVault {
            addr,
            pki,
            vault,
            handle,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("https://{}/", self.addr)
    }

    pub(crate) fn script(&self, reply: Reply) {
        self.vault.script.lock().unwrap().push_back(reply);
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.vault.requests.lock().unwrap().clone()
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

fn error(status: u16, code: &str, message: &str) -> Response {
    reply(Reply::error(status, code, message))
}

fn reply(r: Reply) -> Response {
    let mut response = (
        StatusCode::from_u16(r.status).expect("status"),
        [("content-type", "application/json; charset=utf-8")],
        r.body.to_string(),
    )
        .into_response();
    for (name, value) in r.headers {
        response
            .headers_mut()
            .insert(name, value.parse().expect("header value"));
    }
    response
}

fn ok(body: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn valid_name(name: &str) -> bool {
    (1..=127).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

impl Vault {
    fn id(&self, name: &str, version: &str) -> String {
        format!("https://{}/secrets/{name}/{version}", self.host)
    }

    fn attributes(v: &Version) -> Value {
        json!({
            "enabled": v.enabled,
            "created": v.created,
            "updated": v.updated,
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90
        })
    }

    /// A `SecretBundle`; `with_value` is false for updates and listings.
    fn bundle(&self, name: &str, v: &Version, with_value: bool) -> Value {
        let mut b = json!({"id": self.id(name, &v.id), "attributes": Vault::attributes(v)});
        if with_value {
            b["value"] = json!(v.value);
        }
        if let Some(tags) = &v.tags {
            b["tags"] = tags.clone();
        }
        if let Some(ct) = &v.content_type {
            b["contentType"] = ct.clone();
        }
        b
    }
}

fn not_found(name: &str) -> Response {
    error(
        404,
        "SecretNotFound",
        &format!("A secret with (name/id) {name} was not found in this key vault."),
    )
}

fn disabled() -> Response {
    reply(Reply {
        status: 403,
        headers: Vec::new(),
        body: json!({"error": {
            "code": "Forbidden",
            "message": "Operation get is not allowed on a disabled secret.",
            "innererror": {"code": "SecretDisabled"}
        }}),
    })
}

async fn handle(
    State(vault): State<Arc<Vault>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"));
    let query = uri.query().unwrap_or_default().to_owned();
    vault.requests.lock().unwrap().push(Recorded {
        method: method.clone(),
        path: uri.path().to_owned(),
        query: query.clone(),
        authorized,
        body: body.clone(),
        at: Instant::now(),
    });
    if !authorized {
        let mut r = error(
            401,
            "Unauthorized",
            "AKV10000: Request is missing a Bearer or PoP token.",
        );
        r.headers_mut()
            .insert("www-authenticate", CHALLENGE.parse().expect("challenge"));
        return r;
    }
    if query_param(&query, "api-version").as_deref() != Some(API_VERSION) {
        return error(
            400,
            "BadParameter",
            "The api-version is missing or unknown.",
        );
    }
    let scripted = vault.script.lock().unwrap().pop_front();
    if let Some(r) = scripted {
        return reply(r);
    }
    let segments: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (Method::PUT, ["secrets", name]) => set(&vault, name, &body),
        (Method::GET, ["secrets", name, "versions"]) => list(&vault, name, &query),
        (Method::GET, ["secrets", name] | ["secrets", name, ""]) => get(&vault, name, None),
        (Method::GET, ["secrets", name, version]) => get(&vault, name, Some(version)),
        (Method::PATCH, ["secrets", name, version]) if !version.is_empty() => {
            update(&vault, name, version, &body)
        }
        _ => error(
            405,
            "BadParameter",
            "The request method or path is not supported.",
        ),
    }
}

fn set(vault: &Vault, name: &str, body: &[u8]) -> Response {
    if !valid_name(name) {
        return error(
            400,
            "BadParameter",
            "The request URI contains an invalid name.",
        );
    }
    let Ok(params) = serde_json::from_slice::<Value>(body) else {
        return error(400, "BadParameter", "The request body is not JSON.");
    };
    let Some(value) = params["value"].as_str() else {
        return error(
            400,
            "BadParameter",
            "Property 'value' is required but is missing.",
        );
    };
    let t = now();
    let version = Version {
        id: uuid::Uuid::new_v4().simple().to_string(),
        value: value.to_owned(),
        created: t,
        updated: t,
        enabled: params["attributes"]["enabled"].as_bool().unwrap_or(true),
        tags: params.get("tags").cloned().filter(|t| !t.is_null()),
        content_type: params.get("contentType").cloned().filter(|t| !t.is_null()),
    };
    let mut secrets = vault.secrets.lock().unwrap();
    let secret = secrets
        .entry(name.to_ascii_lowercase())
        .or_insert_with(|| Secret {
            name: name.to_owned(),
            versions: Vec::new(),
        });
    secret.versions.push(version.clone());
    ok(vault.bundle(&secret.name, &version, true))
}

fn get(vault: &Vault, name: &str, version: Option<&str>) -> Response {
    let secrets = vault.secrets.lock().unwrap();
    let Some(secret) = secrets.get(&name.to_ascii_lowercase()) else {
        return not_found(name);
    };
    let found = match version {
        // Key Vault's latest is the newest version, enabled or not.
        None => secret.versions.last(),
        Some(v) => secret.versions.iter().find(|x| x.id == v),
    };
    match found {
        None => not_found(name),
        Some(v) if !v.enabled => disabled(),
        Some(v) => ok(vault.bundle(&secret.name, v, true)),
    }
}

fn list(vault: &Vault, name: &str, query: &str) -> Response {
    let secrets = vault.secrets.lock().unwrap();
    let mut versions: Vec<&Version> = secrets
        .get(&name.to_ascii_lowercase())
        .map(|s| s.versions.iter().collect())
        .unwrap_or_default();
    // The real vault lists in no documented order (by version id, it seems), not creation.
    versions.sort_by(|a, b| a.id.cmp(&b.id));
    let max = query_param(query, "maxresults")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(25)
        .clamp(1, 25)
        .min(vault.page_size);
    let skip = query_param(query, "$skiptoken")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(0);
    let display_name = secrets
        .get(&name.to_ascii_lowercase())
        .map(|s| s.name.clone())
        .unwrap_or_else(|| name.to_owned());
    let page: Vec<Value> = versions
        .iter()
        .skip(skip)
        .take(max)
        .map(|v| vault.bundle(&display_name, v, false))
        .collect();
    let next = (skip + max < versions.len()).then(|| {
        format!(
            "https://{}/secrets/{name}/versions?api-version={API_VERSION}&$skiptoken={}&maxresults={max}",
            vault.host,
            skip + max
        )
    });
    ok(json!({"value": page, "nextLink": next}))
}

fn update(vault: &Vault, name: &str, version: &str, body: &[u8]) -> Response {
    let Ok(params) = serde_json::from_slice::<Value>(body) else {
        return error(400, "BadParameter", "The request body is not JSON.");
    };
    let mut secrets = vault.secrets.lock().unwrap();
    let Some(secret) = secrets.get_mut(&name.to_ascii_lowercase()) else {
        return not_found(name);
    };
    let secret_name = secret.name.clone();
    let Some(v) = secret.versions.iter_mut().find(|x| x.id == version) else {
        return not_found(name);
    };
    if let Some(enabled) = params["attributes"]["enabled"].as_bool() {
        v.enabled = enabled;
    }
    if let Some(tags) = params.get("tags").filter(|t| !t.is_null()) {
        v.tags = Some(tags.clone());
    }
    v.updated = now();
    let v = v.clone();
    drop(secrets);
    // An update answers with the bundle but no value.
    ok(vault.bundle(&secret_name, &v, false))
}
