//! The contract's reads against the embedded document store, with documents written as the
//! registry writes them (the domain aggregates' serde shapes under the contract's ids).

use std::sync::Arc;

use domain::{
    AuthScheme, CredentialId, CredentialKind, DisplayName, HttpUrl, IntegrationCredential,
    IntegrationProvider, NewCredential, NewProvider, ProviderCategory, ProviderKey, RateLimitHints,
    RotationPolicy, SecretRef, TenantId,
};
use embedded::{Durability, SqliteDocumentStore};
use ports::DocumentStoreExt as _;

use super::*;

fn store() -> (Arc<SqliteDocumentStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let documents =
        Arc::new(SqliteDocumentStore::open(&dir.path().join("d.db"), Durability::Normal).unwrap());
    (documents, dir)
}

fn provider(key: &str, hints: Option<RateLimitHints>) -> IntegrationProvider {
    IntegrationProvider::register(
        NewProvider {
            key: ProviderKey::parse(key).unwrap(),
            display_name: DisplayName::parse("Acme").unwrap(),
            category: ProviderCategory::Crm,
            auth_scheme: AuthScheme::ApiKey,
            base_url: HttpUrl::parse("https://api.acme.example").unwrap(),
            rate_limit_hints: hints,
        },
        chrono::Utc::now(),
    )
    .0
}

#[tokio::test]
async fn providers_and_their_hints_are_read_from_the_catalogue_partition() {
    let (docs, _dir) = store();
    let hints = RateLimitHints {
        requests_per_second: Some(7),
        ..RateLimitHints::default()
    };
    for (key, hints) in [("acme-crm", Some(hints.clone())), ("plain", None)] {
        let p = provider(key, hints);
        docs.upsert(
            CONTAINER,
            catalogue_partition(),
            &provider_doc_id(p.key()),
            serde_json::to_value(&p).unwrap(),
        )
        .await
        .unwrap();
    }
    let read = read_provider(docs.as_ref(), "acme-crm")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.key().as_str(), "acme-crm");
    assert_eq!(
        rate_limit_hints(docs.as_ref(), "acme-crm").await.unwrap(),
        Some(hints)
    );
    // Registered without hints, unknown, and not a key at all: no hints, no error.
    assert_eq!(
        rate_limit_hints(docs.as_ref(), "plain").await.unwrap(),
        None
    );
    assert!(
        read_provider(docs.as_ref(), "nope")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        read_provider(docs.as_ref(), "../x")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_credential_is_read_in_its_tenant_only_and_a_bad_document_is_an_error() {
    let (docs, _dir) = store();
    let id = CredentialId::new();
    let c = IntegrationCredential::new(
        NewCredential {
            tenant_id: TenantId::parse("t-1").unwrap(),
            id,
            provider_key: ProviderKey::parse("twilio").unwrap(),
            connection_id: None,
            kind: CredentialKind::ApiKey,
            secret: SecretRef::new("cred-x", "v1").unwrap(),
            policy: RotationPolicy::default(),
        },
        chrono::Utc::now(),
    );
    docs.upsert(
        CONTAINER,
        "t-1",
        &credential_doc_id(&id),
        serde_json::to_value(&c).unwrap(),
    )
    .await
    .unwrap();
    let read = read_credential(docs.as_ref(), "t-1", &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.current().version(), "v1");
    assert!(
        read_credential(docs.as_ref(), "t-2", &id)
            .await
            .unwrap()
            .is_none()
    );

    // A document of the wrong shape under a credential's id is reported, not skipped.
    let broken = CredentialId::new();
    docs.upsert(
        CONTAINER,
        "t-1",
        &credential_doc_id(&broken),
        serde_json::json!({"id": "x"}),
    )
    .await
    .unwrap();
    assert!(matches!(
        read_credential(docs.as_ref(), "t-1", &broken).await,
        Err(PortError::Invalid(_))
    ));
}

#[test]
fn document_ids_are_the_registrys() {
    let key = ProviderKey::parse("github").unwrap();
    assert_eq!(provider_doc_id(&key), "provider-github");
    assert_eq!(
        client_doc_id(&key, "rest", &"1.2.0"),
        "client-github-rest-1.2.0"
    );
    let id = CredentialId::new();
    assert_eq!(credential_doc_id(&id), format!("credential-{id}"));
}
