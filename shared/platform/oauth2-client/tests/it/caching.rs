use std::sync::Arc;
use std::time::Duration;

use oauth2_client::{Grant, OAuthError, TokenClient};
use secrecy::{ExposeSecret, SecretString};

use crate::fake::{Fake, Reply, RfcServer};
use crate::http;

/// Moves the runtime's clock forward (the cache uses Tokio's clock). The clock runs
/// normally again afterwards, so the HTTP requests that follow see real time.
async fn skip(duration: Duration) {
    tokio::time::pause();
    tokio::time::advance(duration).await;
    tokio::time::resume();
}

async fn client_with(server: RfcServer, margin: Duration) -> (Fake, TokenClient) {
    let fake = server.start().await;
    let config = fake
        .config("app", Grant::ClientCredentials)
        .with_secret(SecretString::from("secret"))
        .with_refresh_margin(margin);
    let client = TokenClient::new(http(), config);
    (fake, client)
}

async fn secret(client: &TokenClient) -> String {
    client
        .access_token()
        .await
        .unwrap()
        .secret
        .expose_secret()
        .to_owned()
}

#[tokio::test]
async fn a_token_is_reused_until_the_margin_then_refreshed_before_expiry() {
    let mut server = RfcServer::new("app", Some("secret"));
    server.expires_in = Some(120);
    let (fake, client) = client_with(server, Duration::from_secs(30)).await;

    assert_eq!(secret(&client).await, "at-1");
    assert_eq!(secret(&client).await, "at-1");
    skip(Duration::from_secs(88)).await;
    assert_eq!(secret(&client).await, "at-1");
    assert_eq!(fake.hits(), 1);

    // 90 s in, the token still has 30 s to live: it is replaced now.
    skip(Duration::from_secs(3)).await;
    assert_eq!(secret(&client).await, "at-2");
    assert_eq!(secret(&client).await, "at-2");
    assert_eq!(fake.hits(), 2);
}

#[tokio::test]
async fn the_margin_is_capped_at_half_a_short_lifetime() {
    let mut server = RfcServer::new("app", Some("secret"));
    server.expires_in = Some(10);
    let (fake, client) = client_with(server, Duration::from_secs(60)).await;

    assert_eq!(secret(&client).await, "at-1");
    skip(Duration::from_secs(4)).await;
    assert_eq!(secret(&client).await, "at-1");
    skip(Duration::from_secs(2)).await;
    assert_eq!(secret(&client).await, "at-2");
    assert_eq!(fake.hits(), 2);
}

#[tokio::test]
async fn a_token_without_expires_in_is_reused_for_five_minutes() {
    let mut server = RfcServer::new("app", Some("secret"));
    server.expires_in = None;
    let (fake, client) = client_with(server, Duration::from_secs(60)).await;

    let token = client.access_token().await.unwrap();
    assert_eq!(token.expires_at, None);
    skip(Duration::from_secs(299)).await;
    assert_eq!(secret(&client).await, "at-1");
    skip(Duration::from_secs(2)).await;
    assert_eq!(secret(&client).await, "at-2");
    assert_eq!(fake.hits(), 2);
}

#[tokio::test]
async fn expires_in_as_a_string_is_understood() {
    let fake = Fake::start(|_, _| {
        Reply::json(
            200,
            serde_json::json!({"access_token": "at", "token_type": "Bearer", "expires_in": "3599"}),
        )
    })
    .await;
    let client = TokenClient::new(http(), fake.config("app", Grant::ClientCredentials));

    let token = client.access_token().await.unwrap();

    let expires_in = (token.expires_at.unwrap() - chrono::Utc::now()).num_seconds();
    assert!((3590..=3599).contains(&expires_in), "{expires_in}");
    client.access_token().await.unwrap();
    assert_eq!(fake.hits(), 1);
}

#[tokio::test]
async fn invalidate_drops_the_cached_token() {
    let (fake, client) = client_with(
        RfcServer::new("app", Some("secret")),
        Duration::from_secs(60),
    )
    .await;

    assert_eq!(secret(&client).await, "at-1");
    client.invalidate();
    assert_eq!(secret(&client).await, "at-2");
    assert_eq!(secret(&client).await, "at-2");
    assert_eq!(fake.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_callers_make_one_request() {
    let fake = Fake::start(|_, index| {
        Reply::token(&format!("at-{index}"), 3600).delayed(Duration::from_millis(200))
    })
    .await;
    let config = fake
        .config("app", Grant::ClientCredentials)
        .with_secret(SecretString::from("secret"));
    let client = TokenClient::new(http(), config);
    let start = Arc::new(tokio::sync::Barrier::new(100));

    let callers: Vec<_> = (0..100)
        .map(|_| {
            let (client, start) = (client.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                client.access_token().await
            })
        })
        .collect();
    for caller in callers {
        let token = caller.await.unwrap().unwrap();
        assert_eq!(token.secret.expose_secret(), "at-0");
    }

    assert_eq!(fake.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_an_error_which_is_not_cached() {
    let fake = Fake::start(|_, index| match index {
        0 => Reply::error(503, "temporarily_unavailable", "try later")
            .delayed(Duration::from_millis(200)),
        _ => Reply::token("at", 3600),
    })
    .await;
    let config = fake
        .config("app", Grant::ClientCredentials)
        .with_secret(SecretString::from("secret"));
    let client = TokenClient::new(http(), config);
    let start = Arc::new(tokio::sync::Barrier::new(100));

    let callers: Vec<_> = (0..100)
        .map(|_| {
            let (client, start) = (client.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                client.access_token().await
            })
        })
        .collect();
    for caller in callers {
        let error = caller.await.unwrap().unwrap_err();
        assert!(matches!(error, OAuthError::Transient { .. }), "{error:?}");
    }
    assert_eq!(fake.hits(), 1);

    client.access_token().await.unwrap();
    assert_eq!(fake.hits(), 2);
}
