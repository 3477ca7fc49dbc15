use std::collections::BTreeMap;
use std::error::Error as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::http::Method;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::time::OffsetDateTime;
use azure_keyvault::{
    CREATED_TAG, CacheOptions, KeyVaultSecretStore, RetryPolicy, StoreOptions, VAULT_URI_SETTING,
};
use ports::conformance::secrets::secret_store_contract;
use ports::{PortError, SecretStore};
use secrecy::{ExposeSecret, SecretString};

use crate::fake::{FakeKeyVault, Reply, TOKEN};

/// The scope the SDK derives from the fake's challenge (`resource="https://vault.azure.net"`).
const SCOPE: &str = "https://vault.azure.net/.default";

/// Hands out one fixed token and counts how often it is asked.
#[derive(Debug, Default)]
struct StaticCredential {
    calls: AtomicUsize,
}

#[async_trait]
impl TokenCredential for StaticCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        assert_eq!(
            scopes,
            [SCOPE],
            "the scope comes from the vault's challenge"
        );
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(AccessToken::new(
            TOKEN.to_owned(),
            OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(5),
        max_wait: Duration::from_secs(2),
    }
}

fn options(fake: &FakeKeyVault, cache: CacheOptions) -> StoreOptions {
    StoreOptions {
        cache,
        retry: quick_retry(),
        http_client: Some(fake.pki.client()),
        ..StoreOptions::default()
    }
}

fn store_with(fake: &FakeKeyVault, cache: CacheOptions) -> KeyVaultSecretStore {
    KeyVaultSecretStore::new(
        &fake.url(),
        Arc::new(StaticCredential::default()),
        options(fake, cache),
    )
    .expect("store")
}

fn secret(value: &str) -> SecretString {
    SecretString::from(value.to_owned())
}

#[tokio::test]
async fn passes_the_conformance_suite_with_its_cache() {
    let fake = FakeKeyVault::start(3).await;
    secret_store_contract(&store_with(&fake, CacheOptions::default())).await;
}

#[tokio::test]
async fn passes_the_conformance_suite_on_the_vault_alone() {
    // No cache: every answer comes from the vault, so the cache cannot hide a wrong one.
    let fake = FakeKeyVault::start(3).await;
    secret_store_contract(&store_with(&fake, CacheOptions::disabled())).await;
}

#[tokio::test]
async fn the_first_call_answers_the_vaults_challenge() {
    let fake = FakeKeyVault::start(25).await;
    let credential = Arc::new(StaticCredential::default());
    let store = KeyVaultSecretStore::new(
        &fake.url(),
        credential.clone(),
        options(&fake, CacheOptions::default()),
    )
    .unwrap();
    let v1 = store.set("api-key", secret("s3cr3t-value")).await.unwrap();
    assert_eq!(
        store.vault_requests(),
        2,
        "the challenge, then the authorized PUT"
    );
    let requests = fake.requests();
    let (challenge, put) = (&requests[0], &requests[1]);
    assert_eq!(
        (
            challenge.method.clone(),
            challenge.path.as_str(),
            challenge.authorized
        ),
        (Method::PUT, "/secrets/api-key", false)
    );
    assert!(
        challenge.body.is_empty(),
        "the SDK sends no secret before it has authenticated"
    );
    assert!(put.authorized);
    assert!(
        put.query.contains("api-version=2025-07-01"),
        "{}",
        put.query
    );
    let body: serde_json::Value = serde_json::from_slice(&put.body).unwrap();
    assert_eq!(body["value"], "s3cr3t-value");
    assert!(body["tags"][CREATED_TAG].is_string(), "{body}");

    store.disable("api-key", &v1.version).await.unwrap();
    assert_eq!(store.vault_requests(), 3, "authorized from then on");
    let patch = &fake.requests()[2];
    assert_eq!(patch.method, Method::PATCH);
    assert_eq!(patch.path, format!("/secrets/api-key/{}", v1.version));
    let body: serde_json::Value = serde_json::from_slice(&patch.body).unwrap();
    assert_eq!(body, serde_json::json!({"attributes": {"enabled": false}}));
    assert_eq!(
        credential.calls.load(Ordering::SeqCst),
        1,
        "the token is reused"
    );
}

#[tokio::test]
async fn reads_within_the_ttl_make_one_vault_call() {
    let fake = FakeKeyVault::start(25).await;
    let store = store_with(
        &fake,
        CacheOptions {
            latest_ttl: Duration::from_millis(400),
            ..CacheOptions::default()
        },
    );
    let v1 = store.set("db-password", secret("one")).await.unwrap();
    let after_set = store.vault_requests();

    for _ in 0..50 {
        let (value, meta) = store.get("db-password", None).await.unwrap();
        assert_eq!(
            (value.expose_secret(), meta.version.as_str()),
            ("one", v1.version.as_str())
        );
    }
    assert_eq!(
        store.vault_requests() - after_set,
        1,
        "50 reads, 1 vault call"
    );

    for _ in 0..50 {
        store.get("DB-Password", Some(&v1.version)).await.unwrap();
    }
    assert_eq!(
        store.vault_requests() - after_set,
        1,
        "a version is known from the set and the latest read; names ignore case"
    );

    // Past the latest's TTL the next read goes to the vault again; the version does not.
    tokio::time::sleep(Duration::from_millis(450)).await;
    store.get("db-password", None).await.unwrap();
    store.get("db-password", Some(&v1.version)).await.unwrap();
    assert_eq!(store.vault_requests() - after_set, 2);

    // Concurrent misses share one call.
    let store = Arc::new(store);
    tokio::time::sleep(Duration::from_millis(450)).await;
    let before = store.vault_requests();
    let reads: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.get("db-password", None).await })
        })
        .collect();
    for r in reads {
        r.await.unwrap().unwrap();
    }
    assert_eq!(
        store.vault_requests() - before,
        1,
        "10 concurrent reads, 1 vault call"
    );
}

#[tokio::test]
async fn this_instances_writes_take_effect_at_once() {
    let fake = FakeKeyVault::start(25).await;
    let store = store_with(&fake, CacheOptions::default());
    let v1 = store.set("token", secret("one")).await.unwrap();
    assert_eq!(
        store.get("token", None).await.unwrap().0.expose_secret(),
        "one"
    );
    let v2 = store.set("token", secret("two")).await.unwrap();
    let (value, meta) = store.get("token", None).await.unwrap();
    assert_eq!((value.expose_secret(), meta), ("two", v2.clone()));
    store.disable("token", &v2.version).await.unwrap();
    let r = store.get("token", Some(&v2.version)).await;
    assert!(matches!(r, Err(PortError::NotFound)), "{r:?}");
    let (value, meta) = store.get("token", None).await.unwrap();
    assert_eq!((value.expose_secret(), meta.version), ("one", v1.version));
}

#[tokio::test]
async fn versions_are_listed_across_pages_in_creation_order() {
    let fake = FakeKeyVault::start(3).await;
    let store = store_with(&fake, CacheOptions::default());
    let mut made = Vec::new();
    for i in 0..7 {
        made.push(
            store
                .set("rotated", secret(&format!("v{i}")))
                .await
                .unwrap(),
        );
    }
    let before = fake.requests().len();
    let listed = store.versions("rotated").await.unwrap();
    assert_eq!(
        listed, made,
        "oldest first, though the vault lists by version id"
    );
    let pages = fake.requests()[before..]
        .iter()
        .filter(|r| r.path == "/secrets/rotated/versions")
        .count();
    assert_eq!(pages, 3, "7 versions, 3 per page");
}

#[tokio::test]
async fn throttled_reads_wait_for_retry_after() {
    let fake = FakeKeyVault::start(25).await;
    let store = store_with(&fake, CacheOptions::disabled());
    store.set("s", secret("v")).await.unwrap();
    let before = fake.requests().len();
    fake.script(Reply::throttled("1"));
    let (value, _) = store.get("s", None).await.expect("the retry succeeds");
    assert_eq!(value.expose_secret(), "v");
    let requests = &fake.requests()[before..];
    assert_eq!(requests.len(), 2);
    let waited = requests[1].at - requests[0].at;
    assert!(
        waited >= Duration::from_secs(1),
        "Retry-After: 1 honoured, waited {waited:?}"
    );
}

#[tokio::test]
async fn throttling_that_outlasts_the_policy_is_reported() {
    let fake = FakeKeyVault::start(25).await;
    let store = store_with(&fake, CacheOptions::disabled());
    store.set("s", secret("v")).await.unwrap();

    let before = store.vault_requests();
    for _ in 0..4 {
        fake.script(Reply::throttled("0").header("retry-after-ms", "15"));
    }
    let r = store.get("s", None).await;
    assert!(
        matches!(r, Err(PortError::Throttled { retry_after: Some(d) }) if d == Duration::from_millis(15)),
        "{r:?}"
    );
    assert_eq!(store.vault_requests() - before, 4, "bounded attempts");

    // A hint longer than the policy's longest wait goes to the caller at once.
    let before = store.vault_requests();
    fake.script(Reply::throttled("90"));
    let started = std::time::Instant::now();
    let r = store.set("s", secret("w")).await;
    assert!(
        matches!(r, Err(PortError::Throttled { retry_after: Some(d) }) if d == Duration::from_secs(90)),
        "{r:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(store.vault_requests() - before, 1);
}

#[tokio::test]
async fn a_busy_vault_is_retried_for_reads_but_not_for_writes() {
    let fake = FakeKeyVault::start(25).await;
    let store = store_with(&fake, CacheOptions::disabled());
    let v = store.set("s", secret("v")).await.unwrap();

    fake.script(Reply::error(503, "ServiceUnavailable", "busy"));
    store
        .get("s", Some(&v.version))
        .await
        .expect("a read is retried");
    fake.script(Reply::error(503, "ServiceUnavailable", "busy"));
    store
        .disable("s", &v.version)
        .await
        .expect("a disable is retried");

    let before = store.vault_requests();
    fake.script(Reply::error(503, "ServiceUnavailable", "busy"));
    let r = store.set("s", secret("w")).await;
    assert!(matches!(r, Err(PortError::Backend { .. })), "{r:?}");
    assert_eq!(
        store.vault_requests() - before,
        1,
        "a PUT that may have stored a version is not repeated"
    );
}

#[tokio::test]
async fn vault_refusals_map_to_port_errors_with_context() {
    let fake = FakeKeyVault::start(25).await;
    let store = store_with(&fake, CacheOptions::disabled());
    store.set("s", secret("v")).await.unwrap();

    let mut rbac = Reply::error(
        403,
        "Forbidden",
        "Caller is not authorized to perform action",
    );
    rbac.body["error"]["innererror"] = serde_json::json!({"code": "ForbiddenByRbac"});
    fake.script(rbac);
    let err = store.get("s", None).await.unwrap_err();
    assert!(
        matches!(
            err,
            PortError::Backend {
                backend: "key-vault",
                ..
            }
        ),
        "{err:?}"
    );
    let why = err.source().unwrap().to_string();
    assert!(
        why.contains("read the latest secret version")
            && why.contains("HTTP 403 Forbidden (ForbiddenByRbac)"),
        "{why}"
    );

    fake.script(Reply::error(
        400,
        "BadParameter",
        "The request is malformed",
    ));
    let err = store.set("s", secret("x")).await.unwrap_err();
    assert!(
        matches!(&err, PortError::Invalid(m) if m.contains("BadParameter")),
        "{err:?}"
    );

    fake.script(Reply::error(401, "Unauthorized", "token expired"));
    let err = store.versions("s").await.unwrap_err();
    assert!(matches!(err, PortError::Unauthenticated), "{err:?}");
}

#[tokio::test]
async fn bad_input_never_reaches_the_vault() {
    let fake = FakeKeyVault::start(25).await;
    let store = store_with(&fake, CacheOptions::default());
    for version in ["", "../other", "a/b", "v?x=1", "ü", &"a".repeat(65)] {
        let r = store.get("s", Some(version)).await;
        assert!(
            matches!(r, Err(PortError::Invalid(_))),
            "{version:?}: {r:?}"
        );
        let r = store.disable("s", version).await;
        assert!(
            matches!(r, Err(PortError::Invalid(_))),
            "{version:?}: {r:?}"
        );
    }
    let r = store.set("no/slash", secret("v")).await;
    assert!(matches!(r, Err(PortError::Invalid(_))));
    assert_eq!(store.vault_requests(), 0);
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn secret_values_and_tokens_never_reach_errors_or_logs() {
    const VALUE: &str = "correct-horse-battery-staple-9f3a";
    let (_guard, captured) = standins::logs::capture();
    let fake = FakeKeyVault::start(25).await;
    let store = store_with(&fake, CacheOptions::default());
    let v = store.set("leaky", secret(VALUE)).await.unwrap();
    store.get("leaky", None).await.unwrap();
    store.get("leaky", Some(&v.version)).await.unwrap();
    store.versions("leaky").await.unwrap();

    let mut errors = Vec::new();
    // A careless proxy echoing the request's authorization into an error message.
    let echo = format!("rejected Authorization: Bearer {TOKEN} for value {VALUE}");
    for status in [400, 403, 500] {
        fake.script(Reply::error(status, "Echo", &echo));
        let err = store.set("leaky", secret(VALUE)).await.unwrap_err();
        let mut text = format!("{err} {err:?}");
        let mut source = err.source();
        while let Some(s) = source {
            text.push_str(&format!(" {s} {s:?}"));
            source = s.source();
        }
        errors.push(text);
    }
    errors.push(format!("{store:?}"));
    let logged = captured.text();
    assert!(!logged.is_empty(), "the capture works");
    for text in errors.iter().chain([&logged]) {
        assert!(!text.contains(TOKEN), "the token leaked: {text}");
        assert!(!text.contains(VALUE), "the secret value leaked: {text}");
    }
}

#[tokio::test]
async fn the_challenge_check_is_why_stand_ins_turn_it_off() {
    // Against a non-Azure host the challenge's resource (vault.azure.net) does not match the
    // host, so the SDK's default check refuses to authenticate.
    let fake = FakeKeyVault::start(25).await;
    let store = KeyVaultSecretStore::new(
        &fake.url(),
        Arc::new(StaticCredential::default()),
        StoreOptions {
            verify_challenge_resource: Some(true),
            ..options(&fake, CacheOptions::default())
        },
    )
    .unwrap();
    let err = store.set("s", secret("v")).await.unwrap_err();
    let why = err.source().map(|s| s.to_string()).unwrap_or_default();
    assert!(
        why.contains("doesn't match the requested domain"),
        "{err:?}"
    );
    assert!(
        fake.requests().iter().all(|r| !r.authorized),
        "no token was sent"
    );
}

#[tokio::test]
async fn an_untrusted_certificate_fails_fast_with_context() {
    let fake = FakeKeyVault::start(25).await;
    let store = KeyVaultSecretStore::new(
        &fake.url(),
        Arc::new(StaticCredential::default()),
        StoreOptions {
            retry: quick_retry(),
            // The platform's roots only: the fake's test CA is not among them.
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let err = store.get("s", None).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    let why = err.source().unwrap().to_string();
    assert!(why.contains("vault"), "{why}");
    assert!(fake.requests().is_empty(), "TLS failed before any request");
}

#[tokio::test]
async fn from_settings_builds_the_store_the_settings_choose() {
    let fake = FakeKeyVault::start(25).await;
    let settings: BTreeMap<String, String> = [(VAULT_URI_SETTING.to_owned(), fake.url())].into();
    let store = KeyVaultSecretStore::from_settings_with(
        &settings,
        StoreOptions {
            credential: Some(Arc::new(StaticCredential::default())),
            ..options(&fake, CacheOptions::default())
        },
    )
    .unwrap()
    .expect("the vault URI chooses Key Vault");
    assert_eq!(store.vault_url(), fake.url());
    let v = store.set("from-settings", secret("x")).await.unwrap();
    assert_eq!(
        store.get("from-settings", None).await.unwrap().1.version,
        v.version
    );
    assert!(
        KeyVaultSecretStore::from_settings(&BTreeMap::new())
            .unwrap()
            .is_none()
    );
}
