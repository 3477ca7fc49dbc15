//! Resolver under load: `cargo bench -p custody --bench load`.
//!
//! 8 tasks resolve 50 credentials of 5 tenants at random for 3 s, with the default
//! 5-second reference lifetime shortened to 1 s so that expiries happen during the run, and
//! one credential rotated half-way. Prints the cache hit ratio, secret-store reads and the
//! latency distribution of `resolve`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use custody::{Custody, Resolver, SecretMaterial};
use domain::{
    CredentialId, CredentialKind, IntegrationCredential, NewCredential, ProviderKey, RotationId,
    RotationPolicy, TenantId,
};
use embedded::{Durability, EncryptedSecretStore, SqliteDocumentStore};
use ports::DocumentStoreExt as _;
use registry_data::{CONTAINER as CREDENTIALS_CONTAINER, credential_doc_id};
use serde_json::json;

fn material(v: &str) -> SecretMaterial {
    SecretMaterial::new(
        CredentialKind::ApiKey,
        json!({"apiKey": v}).as_object().cloned().unwrap(),
    )
    .unwrap()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let documents = Arc::new(
            SqliteDocumentStore::open(&dir.path().join("d.db"), Durability::Normal).unwrap(),
        );
        let secrets = Arc::new(EncryptedSecretStore::open_in(dir.path()).unwrap());
        let custody = Custody::new(secrets.clone());
        let mut creds = Vec::new();
        for i in 0..50 {
            let tenant = format!("tenant-{}", i % 5);
            let id = CredentialId::new();
            let reference = custody
                .store(&id, &material(&format!("sk-{i}")))
                .await
                .unwrap();
            let c = IntegrationCredential::new(
                NewCredential {
                    tenant_id: TenantId::parse(&tenant).unwrap(),
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
                .upsert(
                    CREDENTIALS_CONTAINER,
                    &tenant,
                    &credential_doc_id(&id),
                    serde_json::to_value(&c).unwrap(),
                )
                .await
                .unwrap();
            creds.push((tenant, c));
        }
        let resolver = Arc::new(Resolver::with_ttls(
            documents.clone(),
            secrets.clone(),
            Duration::from_secs(1),
            Duration::from_secs(60),
        ));
        let keys: Arc<Vec<(String, CredentialId)>> =
            Arc::new(creds.iter().map(|(t, c)| (t.clone(), c.id())).collect());
        let run_for = Duration::from_secs(3);
        let mut tasks = Vec::new();
        for seed in 0..8u64 {
            let (resolver, keys) = (resolver.clone(), keys.clone());
            tasks.push(tokio::spawn(async move {
                let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                let mut lat = Vec::new();
                let start = Instant::now();
                while start.elapsed() < run_for {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let (t, id) = &keys[(x % keys.len() as u64) as usize];
                    let t0 = Instant::now();
                    resolver.resolve(t, id).await.unwrap();
                    lat.push(t0.elapsed());
                    if lat.len() % 256 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                lat
            }));
        }
        // Rotate one credential half-way through.
        tokio::time::sleep(run_for / 2).await;
        let (tenant, mut c) = creds[0].clone();
        let pending = custody
            .store(&c.id(), &material("sk-rotated"))
            .await
            .unwrap();
        let rot = RotationId::new();
        c.start_rotation(rot, pending, None, chrono::Utc::now())
            .unwrap();
        c.promote(rot, chrono::Utc::now()).unwrap();
        documents
            .upsert(
                CREDENTIALS_CONTAINER,
                &tenant,
                &credential_doc_id(&c.id()),
                serde_json::to_value(&c).unwrap(),
            )
            .await
            .unwrap();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort();
        let pct = |p: f64| all[((all.len() as f64 - 1.0) * p) as usize];
        let s = resolver.stats();
        let ratio = s.hits as f64 / (s.hits + s.misses) as f64;
        let rotated = resolver.resolve(&tenant, &c.id()).await.unwrap();
        assert_eq!(
            &rotated.reference,
            c.current(),
            "the rotation was picked up"
        );
        #[allow(clippy::print_stdout)]
        {
            println!("resolves: {} in {run_for:?} by 8 tasks", all.len());
            println!(
                "hit ratio: {:.4}% ({} hits, {} misses, {} secret-store reads)",
                ratio * 100.0,
                s.hits,
                s.misses,
                s.secret_store_reads
            );
            println!(
                "latency p50 {:?}  p99 {:?}  p99.9 {:?}  max {:?}",
                pct(0.5),
                pct(0.99),
                pct(0.999),
                all[all.len() - 1]
            );
        }
    });
}
