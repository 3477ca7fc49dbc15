//! Credential resolution from the cache: `cargo bench -p custody --bench resolve`.

use std::sync::Arc;

use custody::{Custody, Resolver, SecretMaterial};
use divan::{Bencher, black_box};
use domain::{
    CredentialId, CredentialKind, IntegrationCredential, NewCredential, ProviderKey,
    RotationPolicy, TenantId,
};
use embedded::{Durability, EncryptedSecretStore, SqliteDocumentStore};
use ports::DocumentStoreExt as _;
use registry_data::credential_doc_id;
use serde_json::json;

fn main() {
    divan::main();
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    resolver: Resolver,
    id: CredentialId,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let documents =
        Arc::new(SqliteDocumentStore::open(&dir.path().join("d.db"), Durability::Normal).unwrap());
    let secrets = Arc::new(EncryptedSecretStore::open_in(dir.path()).unwrap());
    let id = CredentialId::new();
    rt.block_on(async {
        let material = SecretMaterial::new(
            CredentialKind::ApiKey,
            json!({"apiKey": "sk-bench"}).as_object().cloned().unwrap(),
        )
        .unwrap();
        let reference = Custody::new(secrets.clone())
            .store(&id, &material)
            .await
            .unwrap();
        let credential = IntegrationCredential::new(
            NewCredential {
                tenant_id: TenantId::parse("bench").unwrap(),
                id,
                provider_key: ProviderKey::parse("twilio").unwrap(),
                connection_id: None,
                kind: CredentialKind::ApiKey,
                secret: reference,
                policy: RotationPolicy::default(),
            },
            chrono::Utc::now(),
        );
        documents
            .create(
                registry_data::CONTAINER,
                "bench",
                &credential_doc_id(&id),
                serde_json::to_value(&credential).unwrap(),
            )
            .await
            .unwrap();
    });
    // Long lifetimes: the benchmark measures hits.
    let resolver = Resolver::with_ttls(
        documents,
        secrets,
        std::time::Duration::from_secs(3600),
        std::time::Duration::from_secs(3600),
    );
    rt.block_on(resolver.resolve("bench", &id)).unwrap();
    Fixture {
        rt,
        resolver,
        id,
        _dir: dir,
    }
}

/// The cache lookup every vendor call makes first, driven by a current-thread runtime
/// (includes `block_on`).
#[divan::bench]
fn cached_hit(bencher: Bencher<'_, '_>) {
    let f = fixture();
    bencher.bench(|| {
        black_box(f.rt.block_on(f.resolver.cached(black_box("bench"), black_box(&f.id))))
    });
}

/// `resolve().await` on a hit, driven by a current-thread runtime (includes `block_on`).
#[divan::bench]
fn resolve_hit(bencher: Bencher<'_, '_>) {
    let f = fixture();
    bencher.bench(|| {
        f.rt.block_on(f.resolver.resolve(black_box("bench"), black_box(&f.id)))
            .unwrap()
    });
}
