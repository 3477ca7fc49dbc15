//! The runner authenticating Entra ID tokens when the settings name an issuer (as in
//! Azure), against a local JWKS endpoint serving the test key of `shared/platform/auth`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

const KEY_PEM: &str = include_str!("../../../../shared/platform/auth/tests/fixtures/key1.pem");
const KEY_JWK: &str = include_str!("../../../../shared/platform/auth/tests/fixtures/key1.jwk.json");
const ISSUER: &str = "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000001/v2.0";
const AUDIENCE: &str = "api://integration-platform";

fn sign(claims: &Value) -> String {
    let jwk: Value = serde_json::from_str(KEY_JWK).unwrap();
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": jwk["kid"]});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = EncodingKey::from_rsa_pem(KEY_PEM.as_bytes()).unwrap();
    let signer = (DEFAULT_PROVIDER.signer_factory)(&Algorithm::RS256, &key).unwrap();
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(signer.try_sign(input.as_bytes()).unwrap())
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_tokens_are_accepted_and_local_ones_refused() {
    let jwks = json!({ "keys": [serde_json::from_str::<Value>(KEY_JWK).unwrap()] });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/keys",
        axum::routing::get(move || async move { axum::Json(jwks) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let values = json!({
        "PROBE_SCHEDULE": "0 0 0 1 1 *",
        "AUTH_ISSUER": ISSUER,
        "AUTH_AUDIENCE": AUDIENCE,
        "AUTH_JWKS_URI": format!("http://{addr}/keys"),
    });
    let p = testkit::TestPlatform::start(&[e2e::registration()], values).await;
    let now = chrono::Utc::now().timestamp();
    let claims = |tid: &str| json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "tid": tid, "iat": now, "nbf": now, "exp": now + 600});
    let entra = sign(&claims("contoso"));
    let r = p
        .post("/probe/api/messages", &entra, json!({"id": "via-entra"}))
        .await;
    assert_eq!(
        r.status(),
        202,
        "an Entra token of tenant contoso is accepted"
    );
    let record = p.eventually("/probe/api/messages/via-entra", &entra).await;
    assert_eq!(record["messageId"], "via-entra");
    // The tenant is the token's: another tenant's Entra token sees nothing.
    let other = sign(&claims("fabrikam"));
    assert_eq!(
        p.get("/probe/api/messages/via-entra", &other)
            .await
            .status(),
        404
    );
    // Local tokens are not accepted when Entra is configured.
    let local = p.token("contoso", &[]);
    testkit::assert_problem(
        p.get("/probe/api/messages/via-entra", &local).await,
        401,
        "unauthenticated",
    )
    .await;
    p.shutdown().await;
}
