//! An HTTPS fake of the Service Bus REST send endpoint: `POST /{entity}/messages`.
//!
//! It authenticates every request the way the service does (recomputing the SAS signature
//! from the key, or comparing the bearer token), refuses malformed sends with 400 as the
//! service would, records everything it received, and answers `201 Created` unless a test
//! scripted other answers first.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::tls::TestPki;

pub(crate) const KEY_NAME: &str = "RootManageSharedAccessKey";
/// Shaped like a real key (base64 of 32 bytes), so tests can look for it in errors.
pub(crate) const KEY: &str = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0wMTIzNDU=";
pub(crate) const BATCH_CONTENT_TYPE: &str = "application/vnd.microsoft.servicebus.json";

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub(crate) struct Recorded {
    pub(crate) entity: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    /// `Ok` when the credentials were valid, else why not.
    pub(crate) auth: Result<(), String>,
    pub(crate) at: Instant,
}

impl Recorded {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub(crate) fn broker_properties(&self) -> serde_json::Value {
        serde_json::from_str(
            self.header("brokerproperties")
                .expect("BrokerProperties header"),
        )
        .expect("BrokerProperties is JSON")
    }

    pub(crate) fn batch(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a batch body is JSON")
    }
}

/// An answer to give instead of `201`, once.
#[derive(Clone, Debug, Default)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: String,
    /// Wait this long before answering (to outlast a client timeout).
    pub(crate) delay: Duration,
    /// Put the request's `Authorization` header into the body, as a careless proxy might.
    pub(crate) echo_authorization: bool,
}

impl Reply {
    pub(crate) fn status(status: u16) -> Reply {
        Reply {
            status,
            body: format!(
                "<Error><Code>{status}</Code><Detail>scripted {status}. TrackingId:0</Detail></Error>"
            ),
            ..Reply::default()
        }
    }

    pub(crate) fn detail(status: u16, detail: &str) -> Reply {
        Reply {
            status,
            body: format!("<Error><Code>{status}</Code><Detail>{detail}</Detail></Error>"),
            ..Reply::default()
        }
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

struct Shared {
    /// `127.0.0.1:port`, what SAS resource URIs must name.
    host: String,
    bearer: Option<String>,
    requests: Mutex<Vec<Recorded>>,
    script: Mutex<VecDeque<Reply>>,
}

pub(crate) struct FakeServiceBus {
    pub(crate) addr: SocketAddr,
    pub(crate) pki: TestPki,
    shared: Arc<Shared>,
    handle: axum_server::Handle<SocketAddr>,
}

impl Drop for FakeServiceBus {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

impl FakeServiceBus {
    /// A fake that accepts SAS tokens signed with [`KEY`] and, when `bearer` is given, that
    /// bearer token.
    pub(crate) async fn start(bearer: Option<&str>) -> FakeServiceBus {
        let pki = crate::tls::pki();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(Shared {
            host: addr.to_string(),
            bearer: bearer.map(str::to_owned),
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
        });
        let app = Router::new()
            .route("/{*path}", post(messages))
            .with_state(shared.clone());
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
        FakeServiceBus {
            addr,
            pki,
            shared,
            handle,
        }
    }

    /// `Endpoint=sb://127.0.0.1:port/;SharedAccessKeyName=…;SharedAccessKey=…`.
    pub(crate) fn connection_string(&self) -> String {
        format!(
            "Endpoint=sb://{}/;SharedAccessKeyName={KEY_NAME};SharedAccessKey={KEY}",
            self.addr
        )
    }

    pub(crate) fn namespace(&self) -> String {
        self.addr.to_string()
    }

    pub(crate) fn script(&self, reply: Reply) {
        self.shared.script.lock().unwrap().push_back(reply);
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }
}

async fn messages(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(entity) = path.strip_suffix("/messages") else {
        return (StatusCode::NOT_FOUND, "not a send endpoint").into_response();
    };
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let auth = check_authorization(&shared, &authorization, entity);
    shared.requests.lock().unwrap().push(Recorded {
        entity: entity.to_owned(),
        headers: headers.clone(),
        body: body.clone(),
        auth: auth.clone(),
        at: Instant::now(),
    });
    if let Err(why) = auth {
        return error(401, &format!("40100: Unauthorized: {why}. TrackingId:1"));
    }
    let scripted = shared.script.lock().unwrap().pop_front();
    if let Some(reply) = scripted {
        tokio::time::sleep(reply.delay).await;
        let body = if reply.echo_authorization {
            format!(
                "<Error><Code>{}</Code><Detail>rejected Authorization: {authorization} for SharedAccessKey={KEY}</Detail></Error>",
                reply.status
            )
        } else {
            reply.body
        };
        let mut response =
            (StatusCode::from_u16(reply.status).expect("status"), body).into_response();
        for (name, value) in reply.headers {
            response
                .headers_mut()
                .insert(name, value.parse().expect("header value"));
        }
        return response;
    }
    if let Err(why) = check_shape(&headers, &body) {
        return error(400, &why);
    }
    StatusCode::CREATED.into_response()
}

fn error(status: u16, detail: &str) -> Response {
    (
        StatusCode::from_u16(status).expect("status"),
        [("content-type", "application/xml; charset=utf-8")],
        format!("<Error><Code>{status}</Code><Detail>{detail}</Detail></Error>"),
    )
        .into_response()
}

/// What the service checks of a send's shape: a batch is a JSON array of objects with a
/// string `Body` and a `BrokerProperties` object; a single message has a JSON object in
/// `BrokerProperties` (when given).
fn check_shape(headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type == BATCH_CONTENT_TYPE {
        let items: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| format!("the batch is not JSON: {e}"))?;
        let items = items.as_array().ok_or("the batch is not an array")?;
        for item in items {
            if !item["Body"].is_string() || !item["BrokerProperties"].is_object() {
                return Err(format!("a batch item is malformed: {item}"));
            }
        }
        return Ok(());
    }
    if content_type.starts_with("application/vnd.microsoft.servicebus") {
        return Err("a batch content type with parameters".to_owned());
    }
    if let Some(v) = headers.get("brokerproperties") {
        let v = v.to_str().map_err(|_| "BrokerProperties is not ASCII")?;
        let parsed: serde_json::Value =
            serde_json::from_str(v).map_err(|e| format!("BrokerProperties is not JSON: {e}"))?;
        if !parsed.is_object() {
            return Err("BrokerProperties is not an object".to_owned());
        }
    }
    Ok(())
}

fn check_authorization(shared: &Shared, value: &str, entity: &str) -> Result<(), String> {
    if let Some(token) = value.strip_prefix("Bearer ") {
        return match &shared.bearer {
            Some(expected) if expected == token => Ok(()),
            _ => Err("unknown bearer token".to_owned()),
        };
    }
    let token = value
        .strip_prefix("SharedAccessSignature ")
        .ok_or("no SharedAccessSignature or Bearer authorization")?;
    // The string-to-sign uses `sr` exactly as it appears in the token (URL-encoded).
    let raw: HashMap<&str, &str> = token.split('&').filter_map(|p| p.split_once('=')).collect();
    let decoded: HashMap<String, String> = form_urlencoded::parse(token.as_bytes())
        .into_owned()
        .collect();
    let (Some(raw_sr), Some(sr), Some(sig), Some(se), Some(skn)) = (
        raw.get("sr"),
        decoded.get("sr"),
        decoded.get("sig"),
        decoded.get("se"),
        decoded.get("skn"),
    ) else {
        return Err("the token lacks sr, sig, se or skn".to_owned());
    };
    let resource = format!("https://{}/{entity}", shared.host);
    if !resource.starts_with(sr.as_str()) {
        return Err(format!("the token is for {sr}, not {resource}"));
    }
    if skn != KEY_NAME {
        return Err(format!("unknown key name {skn}"));
    }
    let expiry: u64 = se.parse().map_err(|_| "se is not a number")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if expiry <= now {
        return Err("the token has expired".to_owned());
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
    mac.update(format!("{raw_sr}\n{se}").as_bytes());
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    if sig != &expected {
        return Err("the signature does not match".to_owned());
    }
    Ok(())
}
