use oauth2_client::{Grant, OAuthError, TokenClient};
use secrecy::{ExposeSecret, SecretString};

use crate::fake::{Fake, Reply, RfcServer};
use crate::http;

fn refresh(token: &str) -> Grant {
    Grant::RefreshToken(SecretString::from(token))
}

#[tokio::test]
async fn a_public_client_sends_its_id_and_the_refresh_token_in_the_body() {
    let fake = RfcServer::new("public-app", None)
        .with_refresh_token("rt-1")
        .start()
        .await;
    let config = fake
        .config("public-app", refresh("rt-1"))
        .with_scope("offline");
    let client = TokenClient::new(http(), config);

    let token = client.access_token().await.unwrap();

    assert_eq!(token.secret.expose_secret(), "at-1");
    let seen = fake.last();
    assert_eq!(seen.authorization, None);
    assert_eq!(seen.param("grant_type"), Some("refresh_token"));
    assert_eq!(seen.param("refresh_token"), Some("rt-1"));
    assert_eq!(seen.param("client_id"), Some("public-app"));
    assert_eq!(seen.param("client_secret"), None);
    assert_eq!(seen.param("scope"), Some("offline"));
    assert_eq!(
        client.current_refresh_token().unwrap().expose_secret(),
        "rt-1"
    );
}

#[tokio::test]
async fn a_confidential_client_authenticates_its_refresh() {
    let fake = RfcServer::new("app", Some("secret"))
        .with_refresh_token("rt-1")
        .start()
        .await;
    let config = fake
        .config("app", refresh("rt-1"))
        .with_secret(SecretString::from("secret"));
    let client = TokenClient::new(http(), config);

    client.access_token().await.unwrap();

    let seen = fake.last();
    assert_eq!(seen.basic(), Some(("app".into(), "secret".into())));
    assert_eq!(seen.param("refresh_token"), Some("rt-1"));
    assert_eq!(seen.param("client_id"), None);
}

#[tokio::test]
async fn rotated_refresh_tokens_are_kept_used_and_reported() {
    // The server revokes each refresh token when it is used, so a client that kept the old
    // one would get invalid_grant on the second refresh.
    let fake = RfcServer::new("app", Some("secret"))
        .with_refresh_token("rt-1")
        .rotating()
        .start()
        .await;
    let config = fake
        .config("app", refresh("rt-1"))
        .with_secret(SecretString::from("secret"));
    let client = TokenClient::new(http(), config);
    let mut rotations = client.subscribe_refresh_token();
    assert!(!rotations.has_changed().unwrap());

    let first = client.access_token().await.unwrap();
    assert_eq!(first.secret.expose_secret(), "at-1");
    assert!(rotations.has_changed().unwrap());
    let reported = rotations.borrow_and_update().clone().unwrap();
    assert_eq!(reported.expose_secret(), "rt-2");
    assert_eq!(
        client.current_refresh_token().unwrap().expose_secret(),
        "rt-2"
    );

    client.invalidate();
    let second = client.access_token().await.unwrap();
    assert_eq!(second.secret.expose_secret(), "at-2");
    assert_eq!(fake.last().param("refresh_token"), Some("rt-2"));
    rotations.changed().await.unwrap();
    assert_eq!(rotations.borrow().as_ref().unwrap().expose_secret(), "rt-3");
    assert_eq!(fake.hits(), 2);
}

#[tokio::test]
async fn the_same_refresh_token_back_is_not_a_rotation() {
    let fake = Fake::start(|_, _| {
        Reply::json(
            200,
            serde_json::json!({"access_token": "at", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "rt-1"}),
        )
    })
    .await;
    let client = TokenClient::new(http(), fake.config("app", refresh("rt-1")));
    let rotations = client.subscribe_refresh_token();

    client.access_token().await.unwrap();

    assert!(!rotations.has_changed().unwrap());
    assert_eq!(
        client.current_refresh_token().unwrap().expose_secret(),
        "rt-1"
    );
}

#[tokio::test]
async fn a_revoked_refresh_token_is_invalid_grant_and_not_retried() {
    let fake = RfcServer::new("app", None)
        .with_refresh_token("rt-other")
        .start()
        .await;
    let client = TokenClient::new(http(), fake.config("app", refresh("rt-revoked")));

    let error = client.access_token().await.unwrap_err();

    assert_eq!(
        error,
        OAuthError::InvalidGrant {
            description: Some("the refresh token is invalid".into())
        }
    );
    assert!(!error.is_retryable());
    assert_eq!(fake.hits(), 1);
    // The refresh token is kept: only custody decides that a credential needs re-consent.
    assert_eq!(
        client.current_refresh_token().unwrap().expose_secret(),
        "rt-revoked"
    );
}

#[tokio::test]
async fn a_rotation_survives_a_caller_that_gives_up() {
    let fake = Fake::start(|_, _| {
        Reply::json(
            200,
            serde_json::json!({"access_token": "at", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "rt-2"}),
        )
        .delayed(std::time::Duration::from_millis(300))
    })
    .await;
    let client = TokenClient::new(http(), fake.config("app", refresh("rt-1")));
    let mut rotations = client.subscribe_refresh_token();

    let gave_up =
        tokio::time::timeout(std::time::Duration::from_millis(50), client.access_token()).await;
    assert!(gave_up.is_err());

    tokio::time::timeout(std::time::Duration::from_secs(5), rotations.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        client.current_refresh_token().unwrap().expose_secret(),
        "rt-2"
    );
    // The token it fetched is cached for the next caller.
    client.access_token().await.unwrap();
    assert_eq!(fake.hits(), 1);
}
