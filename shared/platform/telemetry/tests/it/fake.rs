//! A fake Application Insights ingestion endpoint: HTTPS, `POST /v2/track` with a gzip JSON
//! array of telemetry envelopes, answered as the real one answers a fully accepted batch.

use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use crate::tls::TestPki;

#[derive(Default)]
struct Shared {
    /// Every telemetry item received, in order.
    items: Mutex<Vec<Value>>,
    /// Every request that was not a well-formed upload (path, reason).
    rejected: Mutex<Vec<String>>,
}

pub(crate) struct FakeIngestion {
    pub(crate) addr: SocketAddr,
    pub(crate) pki: TestPki,
    shared: Arc<Shared>,
    handle: axum_server::Handle<SocketAddr>,
}

impl FakeIngestion {
    pub(crate) async fn start() -> FakeIngestion {
        let pki = crate::tls::pki();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/v2/track", post(track))
            .fallback(unexpected)
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
        FakeIngestion {
            addr,
            pki,
            shared,
            handle,
        }
    }

    /// `http://` on purpose: the exporter upgrades it to `https://`, as it does for real.
    pub(crate) fn connection_string(&self, key: &str) -> String {
        format!(
            "InstrumentationKey={key};IngestionEndpoint=http://127.0.0.1:{}/",
            self.addr.port()
        )
    }

    pub(crate) fn items(&self) -> Vec<Value> {
        self.shared.items.lock().unwrap().clone()
    }

    pub(crate) fn rejected(&self) -> Vec<String> {
        self.shared.rejected.lock().unwrap().clone()
    }
}

impl Drop for FakeIngestion {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

async fn track(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let reject = |reason: String| {
        shared
            .rejected
            .lock()
            .unwrap()
            .push(format!("/v2/track: {reason}"));
        (StatusCode::BAD_REQUEST, reason).into_response()
    };
    if headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        != Some("gzip")
    {
        return reject("not gzip".to_owned());
    }
    let mut json = Vec::new();
    if let Err(e) = flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut json) {
        return reject(format!("bad gzip: {e}"));
    }
    let items: Vec<Value> = match serde_json::from_slice(&json) {
        Ok(items) => items,
        Err(e) => return reject(format!("not a JSON array: {e}")),
    };
    let n = items.len();
    shared.items.lock().unwrap().extend(items);
    axum::Json(json!({ "itemsReceived": n, "itemsAccepted": n, "errors": [] })).into_response()
}

async fn unexpected(State(shared): State<Arc<Shared>>, uri: Uri) -> StatusCode {
    shared
        .rejected
        .lock()
        .unwrap()
        .push(format!("{uri}: unexpected path"));
    StatusCode::NOT_FOUND
}
