use std::time::{Duration, Instant, SystemTime};

use axum::http::header;
use oauth2_client::{Grant, OAuthError, TokenClient};
use secrecy::SecretString;

use crate::fake::{Fake, Reply};
use crate::http;

/// The error the client reports for one answer of the fake.
async fn error_for(reply: Reply) -> OAuthError {
    let fake = Fake::start(move |_, _| reply.clone()).await;
    let config = fake
        .config("app", Grant::ClientCredentials)
        .with_secret(SecretString::from("secret"))
        .with_timeout(Duration::from_millis(500));
    let client = TokenClient::new(http(), config);
    let error = client.access_token().await.unwrap_err();
    assert_eq!(fake.hits(), 1, "one request, no retry");
    error
}

#[tokio::test]
async fn invalid_client_in_a_400_is_invalid_client() {
    assert_eq!(
        error_for(Reply::error(400, "invalid_client", "unknown client")).await,
        OAuthError::InvalidClient {
            status: 400,
            description: Some("unknown client".into())
        }
    );
}

#[tokio::test]
async fn a_401_without_a_body_is_invalid_client() {
    let error = error_for(Reply::raw(401, "").header(header::WWW_AUTHENTICATE, "Basic")).await;
    assert_eq!(
        error,
        OAuthError::InvalidClient {
            status: 401,
            description: None
        }
    );
}

#[tokio::test]
async fn a_429_with_retry_after_seconds_is_throttled() {
    let error = error_for(Reply::raw(429, "slow down").header(header::RETRY_AFTER, "17")).await;
    assert_eq!(
        error,
        OAuthError::Throttled {
            retry_after: Some(Duration::from_secs(17))
        }
    );
    assert!(error.is_retryable());
    assert_eq!(error.retry_after(), Some(Duration::from_secs(17)));
}

#[tokio::test]
async fn a_429_with_an_http_date_is_throttled() {
    let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
    let error = error_for(Reply::raw(429, "").header(header::RETRY_AFTER, at)).await;
    let wait = error.retry_after().unwrap();
    assert!(
        (Duration::from_secs(115)..=Duration::from_secs(120)).contains(&wait),
        "{wait:?}"
    );
}

#[tokio::test]
async fn a_429_without_retry_after_is_throttled() {
    assert_eq!(
        error_for(Reply::error(429, "slow_down", "")).await,
        OAuthError::Throttled { retry_after: None }
    );
}

#[tokio::test]
async fn a_5xx_is_transient() {
    for reply in [
        Reply::raw(500, "Internal Server Error"),
        Reply::raw(502, "<html>bad gateway</html>"),
        Reply::error(503, "server_error", "maintenance"),
        Reply::error(400, "temporarily_unavailable", "busy"),
    ] {
        let error = error_for(reply).await;
        assert!(matches!(error, OAuthError::Transient { .. }), "{error:?}");
        assert!(error.is_retryable());
    }
}

#[tokio::test]
async fn a_slow_endpoint_times_out_as_transient() {
    let started = Instant::now();
    let error = error_for(Reply::token("at", 3600).delayed(Duration::from_secs(3))).await;
    assert_eq!(
        error,
        OAuthError::Transient {
            reason: "no complete answer within 500 ms".into()
        }
    );
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let config = oauth2_client::ClientConfig::new(
        format!("http://{address}/token").parse().unwrap(),
        "app",
        Grant::ClientCredentials,
    );
    let client = TokenClient::new(http(), config);

    let error = client.access_token().await.unwrap_err();

    let OAuthError::Transient { reason } = &error else {
        panic!("{error:?}");
    };
    assert!(reason.starts_with("could not connect"), "{reason}");
    assert!(!reason.contains(&address.port().to_string()), "{reason}");
}

#[tokio::test]
async fn a_success_that_is_not_a_token_response_is_malformed() {
    for (reply, reason) in [
        (Reply::raw(200, "{not json"), "the body is not JSON"),
        (
            Reply::raw(200, "<html>login</html>"),
            "the body is not JSON",
        ),
        (
            Reply::json(
                200,
                serde_json::json!({"token_type": "Bearer", "expires_in": 60}),
            ),
            "access_token is missing",
        ),
        (
            Reply::json(
                200,
                serde_json::json!({"access_token": "at", "token_type": "mac"}),
            ),
            "token_type is not Bearer",
        ),
        (
            Reply::json(
                200,
                serde_json::json!({"access_token": "at", "token_type": "Bearer", "expires_in": "later"}),
            ),
            "expires_in is not a non-negative number of seconds",
        ),
    ] {
        assert_eq!(
            error_for(reply).await,
            OAuthError::Malformed {
                reason: reason.into()
            }
        );
    }
}

#[tokio::test]
async fn other_oauth_errors_keep_their_code() {
    assert_eq!(
        error_for(Reply::error(400, "invalid_scope", "scope x is unknown")).await,
        OAuthError::Other {
            error: "invalid_scope".into(),
            description: Some("scope x is unknown".into())
        }
    );
    assert_eq!(
        error_for(Reply::raw(404, "not found")).await,
        OAuthError::Other {
            error: "http_404".into(),
            description: None
        }
    );
}
