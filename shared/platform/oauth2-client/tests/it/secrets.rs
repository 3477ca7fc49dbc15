//! No secret in any error's `Display` or `Debug`, nor in the `Debug` of the public types,
//! even when the server echoes the request back.

use std::time::Duration;

use oauth2_client::{AuthMethod, Grant, OAuthError, TokenClient};
use secrecy::SecretString;
use serde_json::json;

use crate::fake::{Fake, Reply};
use crate::http;

const CLIENT_SECRET: &str = "cs-Zq8/vP+3=k";
const REFRESH_TOKEN: &str = "rt-Xy7&u9 w";
const ACCESS_TOKEN: &str = "at-Mn4Kp2Lq";

fn leaked(text: &str) -> Option<&'static str> {
    let encoded = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    [CLIENT_SECRET, REFRESH_TOKEN, ACCESS_TOKEN]
        .into_iter()
        .find(|secret| text.contains(secret) || text.contains(&encoded(secret)))
}

fn assert_clean(what: &str, text: &str) {
    assert!(leaked(text).is_none(), "{what} leaks a secret: {text}");
}

/// Replies that echo what the client sent, or carry the access token, in every place a
/// server could put text.
fn replies() -> Vec<Reply> {
    let echo = format!("client_secret={CLIENT_SECRET} refresh_token={REFRESH_TOKEN}");
    let encoded = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let echo_encoded = format!(
        "client_secret={}&refresh_token={}",
        encoded(CLIENT_SECRET),
        encoded(REFRESH_TOKEN)
    );
    vec![
        Reply::error(400, "invalid_grant", &echo),
        Reply::error(400, "invalid_grant", &echo_encoded),
        Reply::error(401, "invalid_client", &echo),
        Reply::error(400, &format!("bad_{REFRESH_TOKEN}"), &echo),
        Reply::error(400, "invalid_request", &echo_encoded),
        Reply::raw(400, echo.clone()),
        Reply::raw(429, echo.clone()),
        Reply::raw(500, echo.clone()),
        Reply::error(503, "server_error", &echo),
        Reply::raw(200, format!("{{\"access_token\":\"{ACCESS_TOKEN}\"")),
        Reply::json(
            200,
            json!({"access_token": ACCESS_TOKEN, "token_type": "mac"}),
        ),
        Reply::json(
            200,
            json!({"access_token": ACCESS_TOKEN, "token_type": "Bearer", "expires_in": ACCESS_TOKEN}),
        ),
        Reply::json(
            200,
            json!({"access_token": [ACCESS_TOKEN], "token_type": "Bearer"}),
        ),
        Reply::json(200, json!([ACCESS_TOKEN])),
        Reply::token(ACCESS_TOKEN, 60).delayed(Duration::from_secs(2)),
    ]
}

#[tokio::test]
async fn no_error_display_or_debug_contains_a_secret() {
    let mut errors: Vec<OAuthError> = Vec::new();
    for method in [AuthMethod::ClientSecretPost, AuthMethod::ClientSecretBasic] {
        for reply in replies() {
            let fake = Fake::start(move |_, _| reply.clone()).await;
            let config = fake
                .config(
                    "app",
                    Grant::RefreshToken(SecretString::from(REFRESH_TOKEN)),
                )
                .with_secret(SecretString::from(CLIENT_SECRET))
                .with_auth_method(method)
                .with_timeout(Duration::from_millis(300));
            let client = TokenClient::new(http(), config);
            errors.push(client.access_token().await.unwrap_err());
            assert_clean("the client's Debug", &format!("{client:?}"));
        }
    }
    assert!(
        errors
            .iter()
            .any(|e| matches!(e, OAuthError::InvalidGrant { .. }))
    );
    assert!(
        errors
            .iter()
            .any(|e| matches!(e, OAuthError::InvalidClient { .. }))
    );
    assert!(
        errors
            .iter()
            .any(|e| matches!(e, OAuthError::Throttled { .. }))
    );
    assert!(
        errors
            .iter()
            .any(|e| matches!(e, OAuthError::Transient { .. }))
    );
    assert!(
        errors
            .iter()
            .any(|e| matches!(e, OAuthError::Malformed { .. }))
    );
    assert!(errors.iter().any(|e| matches!(e, OAuthError::Other { .. })));
    for error in &errors {
        assert_clean("an error's Display", &error.to_string());
        assert_clean("an error's Debug", &format!("{error:?}"));
    }
    // The echoed descriptions are kept, redacted.
    assert!(errors.iter().any(|e| {
        e.to_string()
            .contains("client_secret=[redacted] refresh_token=[redacted]")
    }));
}

#[tokio::test]
async fn the_debug_of_configs_grants_and_tokens_is_redacted() {
    let fake = Fake::start(|_, _| {
        Reply::json(
            200,
            json!({"access_token": ACCESS_TOKEN, "token_type": "Bearer", "expires_in": 60, "refresh_token": "rt-new-0xdead"}),
        )
    })
    .await;
    let config = fake
        .config(
            "app",
            Grant::RefreshToken(SecretString::from(REFRESH_TOKEN)),
        )
        .with_secret(SecretString::from(CLIENT_SECRET));
    assert_clean("the config's Debug", &format!("{config:?}"));
    let client = TokenClient::new(http(), config);

    let token = client.access_token().await.unwrap();

    assert_clean("the token's Debug", &format!("{token:?}"));
    assert!(format!("{token:?}").contains("[redacted]"));
    assert_clean("the client's Debug", &format!("{client:?}"));
    let rotated = format!("{:?}", client.current_refresh_token());
    assert!(!rotated.contains("rt-new-0xdead"), "{rotated}");
}
