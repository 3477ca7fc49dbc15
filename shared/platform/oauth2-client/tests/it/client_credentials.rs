use chrono::Utc;
use oauth2_client::{AuthMethod, Grant, OAuthError, TokenClient};
use secrecy::{ExposeSecret, SecretString};

use crate::fake::RfcServer;
use crate::http;

#[tokio::test]
async fn basic_authentication_is_the_default_and_the_body_is_a_form() {
    let fake = RfcServer::new("my-client", Some("my-secret")).start().await;
    let config = fake
        .config("my-client", Grant::ClientCredentials)
        .with_secret(SecretString::from("my-secret"))
        .with_scope("read write")
        .with_audience("https://api.example.com");
    let client = TokenClient::new(http(), config);

    let token = client.access_token().await.unwrap();

    assert_eq!(token.secret.expose_secret(), "at-1");
    assert_eq!(token.token_type, "Bearer");
    assert_eq!(token.scope.as_deref(), Some("read write"));
    let expires_in = (token.expires_at.unwrap() - Utc::now()).num_seconds();
    assert!((3590..=3600).contains(&expires_in), "{expires_in}");
    let seen = fake.last();
    assert_eq!(seen.basic(), Some(("my-client".into(), "my-secret".into())));
    assert_eq!(
        seen.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(seen.accept.as_deref(), Some("application/json"));
    assert_eq!(seen.param("grant_type"), Some("client_credentials"));
    assert_eq!(seen.param("scope"), Some("read write"));
    assert_eq!(seen.param("audience"), Some("https://api.example.com"));
    assert_eq!(seen.param("client_secret"), None);
    assert_eq!(seen.param("client_id"), None);
    assert_eq!(seen.param("refresh_token"), None);
}

#[tokio::test]
async fn basic_credentials_are_form_urlencoded_before_base64() {
    let fake = RfcServer::new("my client:1", Some("p@ss:w/rd+ é"))
        .start()
        .await;
    let config = fake
        .config("my client:1", Grant::ClientCredentials)
        .with_secret(SecretString::from("p@ss:w/rd+ é"));
    let client = TokenClient::new(http(), config);

    client.access_token().await.unwrap();

    let authorization = fake.last().authorization.unwrap();
    assert!(authorization.starts_with("Basic "), "{authorization}");
    assert_eq!(
        fake.last().basic(),
        Some(("my client:1".into(), "p@ss:w/rd+ é".into()))
    );
}

#[tokio::test]
async fn client_secret_post_puts_the_credentials_in_the_body() {
    let fake = RfcServer::new("my-client", Some("my-secret")).start().await;
    let config = fake
        .config("my-client", Grant::ClientCredentials)
        .with_secret(SecretString::from("my-secret"))
        .with_auth_method(AuthMethod::ClientSecretPost);
    let client = TokenClient::new(http(), config);

    let token = client.access_token().await.unwrap();

    assert_eq!(token.secret.expose_secret(), "at-1");
    assert_eq!(token.scope, None);
    let seen = fake.last();
    assert_eq!(seen.authorization, None);
    assert_eq!(seen.param("grant_type"), Some("client_credentials"));
    assert_eq!(seen.param("client_id"), Some("my-client"));
    assert_eq!(seen.param("client_secret"), Some("my-secret"));
    assert_eq!(seen.param("scope"), None);
}

#[tokio::test]
async fn a_wrong_secret_is_invalid_client() {
    for method in [AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost] {
        let fake = RfcServer::new("my-client", Some("my-secret")).start().await;
        let config = fake
            .config("my-client", Grant::ClientCredentials)
            .with_secret(SecretString::from("not-my-secret"))
            .with_auth_method(method);
        let client = TokenClient::new(http(), config);

        let error = client.access_token().await.unwrap_err();

        assert_eq!(
            error,
            OAuthError::InvalidClient {
                status: 401,
                description: Some("client authentication failed".into())
            },
            "{method:?}"
        );
        assert!(!error.is_retryable());
        assert_eq!(fake.hits(), 1, "never retried");
    }
}

#[tokio::test]
async fn a_refresh_token_in_a_client_credentials_response_is_ignored() {
    let fake = crate::fake::Fake::start(|_, _| {
        crate::fake::Reply::json(
            200,
            serde_json::json!({"access_token": "at", "token_type": "bearer", "expires_in": 60, "refresh_token": "rt"}),
        )
    })
    .await;
    let config = fake
        .config("c", Grant::ClientCredentials)
        .with_secret(SecretString::from("s"));
    let client = TokenClient::new(http(), config);

    let token = client.access_token().await.unwrap();

    assert_eq!(token.token_type, "bearer");
    assert!(client.current_refresh_token().is_none());
}
