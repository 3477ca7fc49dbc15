//! Per-request authentication overhead: an Entra RS256 token with its key cached (the
//! steady state in Azure) against a local HS256 `DevTokens` token.

use auth::DevTokens;
use auth::entra::{EntraAuthenticator, EntraConfig};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;

const ISSUER: &str = "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0";
const AUDIENCE: &str = "api://integration-platform";
const KEY1_PEM: &str = include_str!("../tests/fixtures/key1.pem");
const KEY1_JWK: &str = include_str!("../tests/fixtures/key1.jwk.json");

fn main() {
    divan::main();
}

struct Entra {
    runtime: tokio::runtime::Runtime,
    auth: EntraAuthenticator,
    token: String,
}

/// A JWKS endpoint on 127.0.0.1 and an authenticator whose cache is already warm.
fn entra() -> Entra {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let jwks: serde_json::Value =
        json!({ "keys": [serde_json::from_str::<serde_json::Value>(KEY1_JWK).unwrap()] });
    let uri = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route(
            "/keys",
            axum::routing::get(move || {
                let jwks = jwks.clone();
                async move { axum::Json(jwks) }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/keys")
    });
    let auth =
        EntraAuthenticator::new(EntraConfig::new(ISSUER, vec![AUDIENCE.into()], uri)).unwrap();
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "bench-subject",
        "tid": "9188040d-6c67-4c5b-b112-36a304b66dad", "roles": ["operator"],
        "iat": now, "nbf": now, "exp": now + 24 * 3600,
    });
    let header = json!({ "alg": "RS256", "typ": "JWT", "kid": "test-key1" });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = EncodingKey::from_rsa_pem(KEY1_PEM.as_bytes()).unwrap();
    let signer = (DEFAULT_PROVIDER.signer_factory)(&Algorithm::RS256, &key).unwrap();
    let token = format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(signer.try_sign(input.as_bytes()).unwrap())
    );
    let at = chrono::Utc::now();
    runtime
        .block_on(auth.validate(&token, at))
        .expect("warm-up validates");
    Entra {
        runtime,
        auth,
        token,
    }
}

#[divan::bench]
fn entra_rs256_cached_key(bencher: divan::Bencher<'_, '_>) {
    let e = entra();
    let now = chrono::Utc::now();
    bencher.bench_local(|| {
        e.runtime
            .block_on(e.auth.validate(divan::black_box(&e.token), now))
            .unwrap()
    });
}

#[divan::bench]
fn dev_tokens_hs256(bencher: divan::Bencher<'_, '_>) {
    let dev = DevTokens::from_key(vec![7u8; 32]).unwrap();
    let now = chrono::Utc::now();
    let token = dev
        .issue(
            "acme",
            &["operator".into()],
            chrono::Duration::hours(1),
            now,
        )
        .unwrap();
    bencher.bench_local(|| dev.verify(divan::black_box(&token), now).unwrap());
}
