//! Custody and resolution against the embedded secret store and document store.

use std::sync::Arc;
use std::time::Duration;

use custody::{Custody, ResolveError, Resolver, SecretMaterial};
use domain::{
    CredentialId, CredentialKind, IntegrationCredential, NewCredential, ProviderKey, RotationId,
    RotationPolicy, TenantId,
};
use embedded::{Durability, EncryptedSecretStore, SqliteDocumentStore};
use ports::{DocumentStore, DocumentStoreExt as _};
use registry_data::{CONTAINER as CREDENTIALS_CONTAINER, credential_doc_id};
use secrecy::ExposeSecret as _;
use serde_json::json;

struct World {
    documents: Arc<SqliteDocumentStore>,
    secrets: Arc<EncryptedSecretStore>,
    custody: Custody,
    _dir: tempfile::TempDir,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let documents =
        Arc::new(SqliteDocumentStore::open(&dir.path().join("d.db"), Durability::Normal).unwrap());
    let secrets = Arc::new(EncryptedSecretStore::open_in(dir.path()).unwrap());
    World {
        custody: Custody::new(secrets.clone()),
        documents,
        secrets,
        _dir: dir,
    }
}

fn api_key(value: &str) -> SecretMaterial {
    SecretMaterial::new(
        CredentialKind::ApiKey,
        json!({"apiKey": value}).as_object().cloned().unwrap(),
    )
    .unwrap()
}

async fn credential(w: &World, tenant: &str, value: &str) -> IntegrationCredential {
    let id = CredentialId::new();
    let reference = w.custody.store(&id, &api_key(value)).await.unwrap();
    let c = IntegrationCredential::new(
        NewCredential {
            tenant_id: TenantId::parse(tenant).unwrap(),
            id,
            provider_key: ProviderKey::parse("twilio").unwrap(),
            connection_id: None,
            kind: CredentialKind::ApiKey,
            secret: reference,
            policy: RotationPolicy::default(),
        },
        chrono::Utc::now(),
    );
    save(w, &c).await;
    c
}

async fn save(w: &World, c: &IntegrationCredential) {
    w.documents
        .upsert(
            CREDENTIALS_CONTAINER,
            c.tenant_id().as_str(),
            &credential_doc_id(&c.id()),
            serde_json::to_value(c).unwrap(),
        )
        .await
        .unwrap();
}

fn resolver(w: &World, reference_ttl_ms: u64) -> Resolver {
    Resolver::with_ttls(
        w.documents.clone(),
        w.secrets.clone(),
        Duration::from_millis(reference_ttl_ms),
        Duration::from_secs(60),
    )
}

#[tokio::test]
async fn resolves_through_the_cache_and_isolates_tenants() {
    let w = world();
    let c = credential(&w, "tenant-a", "sk-first").await;
    let r = resolver(&w, 60_000);
    let got = r.resolve("tenant-a", &c.id()).await.unwrap();
    assert_eq!(
        got.material.get("apiKey").unwrap().expose_secret(),
        "sk-first"
    );
    assert_eq!(&got.reference, c.current());
    for _ in 0..10 {
        r.resolve("tenant-a", &c.id()).await.unwrap();
    }
    let s = r.stats();
    assert_eq!(
        (s.hits, s.misses, s.secret_store_reads),
        (10, 1, 1),
        "one store read, then hits"
    );
    assert!(
        matches!(
            r.resolve("tenant-b", &c.id()).await,
            Err(ResolveError::NotFound)
        ),
        "another tenant sees nothing"
    );
}

#[tokio::test]
async fn a_rotation_is_seen_without_a_restart() {
    let w = world();
    let mut c = credential(&w, "t", "sk-old").await;
    let r = resolver(&w, 150);
    assert_eq!(
        r.resolve("t", &c.id())
            .await
            .unwrap()
            .material
            .get("apiKey")
            .unwrap()
            .expose_secret(),
        "sk-old"
    );
    let pending = w.custody.store(&c.id(), &api_key("sk-new")).await.unwrap();
    let rot = RotationId::new();
    c.start_rotation(rot, pending, None, chrono::Utc::now())
        .unwrap();
    c.promote(rot, chrono::Utc::now()).unwrap();
    save(&w, &c).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        r.resolve("t", &c.id())
            .await
            .unwrap()
            .material
            .get("apiKey")
            .unwrap()
            .expose_secret(),
        "sk-new",
        "the promoted version is used once the reference lifetime has passed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_on_a_cold_credential_reads_the_store_once() {
    let w = world();
    let c = credential(&w, "t", "sk-burst").await;
    let r = Arc::new(resolver(&w, 60_000));
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (r, id) = (r.clone(), c.id());
        tasks.push(tokio::spawn(async move {
            r.resolve("t", &id).await.map(|x| x.reference.clone())
        }));
    }
    for t in tasks {
        assert_eq!(&t.await.unwrap().unwrap(), c.current());
    }
    assert_eq!(r.stats().secret_store_reads, 1, "single flight");
    assert_eq!(r.stats().misses, 1);
}

#[tokio::test]
async fn revoked_and_discarded_secrets_stop_resolving() {
    let w = world();
    let mut c = credential(&w, "t", "sk-x").await;
    c.revoke(chrono::Utc::now()).unwrap();
    save(&w, &c).await;
    assert!(matches!(
        resolver(&w, 10).resolve("t", &c.id()).await,
        Err(ResolveError::Revoked)
    ));

    let c = credential(&w, "t", "sk-y").await;
    w.custody.discard(c.current()).await.unwrap();
    assert!(
        matches!(
            resolver(&w, 10).resolve("t", &c.id()).await,
            Err(ResolveError::NotFound)
        ),
        "a disabled version is gone"
    );
    assert!(
        w.documents
            .read(CREDENTIALS_CONTAINER, "t", &credential_doc_id(&c.id()))
            .await
            .unwrap()
            .is_some()
    );
}

/// A secret store whose reads of one secret hang until released: a slow Key Vault read.
struct Stalling {
    inner: Arc<EncryptedSecretStore>,
    stalled: String,
    release: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl ports::SecretStore for Stalling {
    async fn set(
        &self,
        name: &str,
        value: secrecy::SecretString,
    ) -> ports::Result<ports::SecretVersion> {
        self.inner.set(name, value).await
    }

    async fn get(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> ports::Result<(secrecy::SecretString, ports::SecretVersion)> {
        if name == self.stalled {
            self.release.notified().await;
        }
        self.inner.get(name, version).await
    }

    async fn versions(&self, name: &str) -> ports::Result<Vec<ports::SecretVersion>> {
        self.inner.versions(name).await
    }

    async fn disable(&self, name: &str, version: &str) -> ports::Result<()> {
        self.inner.disable(name, version).await
    }
}

#[tokio::test]
async fn a_cold_miss_never_holds_up_another_credential() {
    let w = world();
    let slow = credential(&w, "tenant-a", "sk-slow").await;
    let fast = credential(&w, "tenant-a", "sk-fast").await;
    let secrets = Arc::new(Stalling {
        inner: w.secrets.clone(),
        stalled: slow.current().name().to_owned(),
        release: tokio::sync::Notify::new(),
    });
    let r = Arc::new(Resolver::with_ttls(
        w.documents.clone(),
        secrets.clone(),
        Duration::from_secs(60),
        Duration::from_secs(60),
    ));
    // Two callers of the slow credential: one fill, both waiting on it.
    let waiting: Vec<_> = (0..2)
        .map(|_| {
            let r = r.clone();
            let id = slow.id();
            tokio::spawn(async move { r.resolve("tenant-a", &id).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Meanwhile another credential resolves at once.
    let other = tokio::time::timeout(Duration::from_secs(2), r.resolve("tenant-a", &fast.id()))
        .await
        .expect("the other credential is not held up by the slow one's fill")
        .unwrap();
    assert_eq!(
        other.material.get("apiKey").unwrap().expose_secret(),
        "sk-fast"
    );
    assert!(waiting.iter().all(|t| !t.is_finished()), "still waiting");
    secrets.release.notify_waiters();
    for t in waiting {
        let got = t.await.unwrap().unwrap();
        assert_eq!(
            got.material.get("apiKey").unwrap().expose_secret(),
            "sk-slow"
        );
    }
    // One fill for the two callers of the slow credential, one for the other.
    assert_eq!(r.stats().secret_store_reads, 2);
    assert_eq!(r.stats().misses, 2);
    assert_eq!(r.stats().hits, 1);
}
