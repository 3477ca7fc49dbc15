//! A fake JWKS endpoint on 127.0.0.1 and a token builder signing with the fixture keys.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth::entra::{EntraAuthenticator, EntraConfig, JwksPolicy};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

pub(crate) const ISSUER: &str =
    "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0";
pub(crate) const AUDIENCE: &str = "api://integration-platform";
pub(crate) const TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";
pub(crate) const KID1: &str = "test-key1";
pub(crate) const KID2: &str = "test-key2";

pub(crate) const KEY1_PEM: &str = include_str!("../fixtures/key1.pem");
pub(crate) const KEY2_PEM: &str = include_str!("../fixtures/key2.pem");
pub(crate) const KEY1_PUB_PEM: &str = include_str!("../fixtures/key1.pub.pem");
const KEY1_JWK: &str = include_str!("../fixtures/key1.jwk.json");
const KEY2_JWK: &str = include_str!("../fixtures/key2.jwk.json");

pub(crate) fn jwk1() -> Value {
    serde_json::from_str(KEY1_JWK).unwrap()
}

pub(crate) fn jwk2() -> Value {
    serde_json::from_str(KEY2_JWK).unwrap()
}

pub(crate) fn jwks(keys: &[Value]) -> Value {
    json!({ "keys": keys })
}

/// The fake endpoint: serves `jwks` (or 503 while down), counts requests.
pub(crate) struct FakeJwks {
    pub(crate) uri: String,
    jwks: Mutex<Value>,
    up: AtomicBool,
    hits: AtomicUsize,
    delay: Mutex<Duration>,
}

impl FakeJwks {
    pub(crate) async fn start(initial: Value) -> Arc<FakeJwks> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = Arc::new(FakeJwks {
            uri: format!("http://{addr}/common/discovery/v2.0/keys"),
            jwks: Mutex::new(initial),
            up: AtomicBool::new(true),
            hits: AtomicUsize::new(0),
            delay: Mutex::new(Duration::ZERO),
        });
        let app = axum::Router::new()
            .route("/common/discovery/v2.0/keys", axum::routing::get(serve))
            .with_state(Arc::clone(&fake));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Waits (up to 5 s) for the endpoint to have been hit `n` times: background refreshes
    /// finish on their own schedule.
    pub(crate) async fn wait_for_hits(&self, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while self.hits() < n && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub(crate) fn set_jwks(&self, jwks: Value) {
        *self.jwks.lock().unwrap() = jwks;
    }

    pub(crate) fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }

    pub(crate) fn set_delay(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }
}

async fn serve(State(fake): State<Arc<FakeJwks>>) -> Response {
    fake.hits.fetch_add(1, Ordering::SeqCst);
    let delay = *fake.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if !fake.up.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let body = fake.jwks.lock().unwrap().clone();
    axum::Json(body).into_response()
}

pub(crate) fn config(uri: &str) -> EntraConfig {
    EntraConfig::new(ISSUER, vec![AUDIENCE.to_owned()], uri)
}

pub(crate) fn authenticator(uri: &str, policy: JwksPolicy) -> EntraAuthenticator {
    EntraAuthenticator::with_policy(config(uri), policy).unwrap()
}

/// A policy with a short refetch interval, for tests that need it to pass.
pub(crate) fn quick(min_refetch: Duration) -> JwksPolicy {
    JwksPolicy {
        min_refetch_interval: min_refetch,
        fetch_timeout: Duration::from_secs(5),
        ..JwksPolicy::default()
    }
}

pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims of a good token, valid for an hour from now.
pub(crate) fn claims() -> Value {
    let now = now();
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
        "oid": "00000000-0000-0000-66f3-3332eca7ea81",
        "tid": TENANT,
        "roles": ["operator", "reader"],
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
    })
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `header.payload.signature` with `sign` over the signing input.
pub(crate) fn jwt(header: &Value, claims: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = sign(input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

pub(crate) fn rs256(pem: &str) -> impl FnOnce(&[u8]) -> Vec<u8> {
    let key = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    move |input| {
        let signer = (DEFAULT_PROVIDER.signer_factory)(&Algorithm::RS256, &key).unwrap();
        signer.try_sign(input).unwrap()
    }
}

/// An RS256 token with `kid`, signed with `pem`.
pub(crate) fn token(pem: &str, kid: &str, claims: &Value) -> String {
    jwt(
        &json!({ "alg": "RS256", "typ": "JWT", "kid": kid }),
        claims,
        rs256(pem),
    )
}

pub(crate) fn token1(claims: &Value) -> String {
    token(KEY1_PEM, KID1, claims)
}
