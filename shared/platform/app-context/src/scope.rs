//! An app's view of the document store: it writes only its own containers and reads only
//! those and the ones it declares ([`crate::AppRegistration::reads`]). Hosts give every app
//! this view, so the local runner and every test hold the apps to the same least privilege
//! as Bicep's per-container Cosmos DB roles in Azure, and a read or write outside it fails
//! there first.

use std::sync::Arc;

use async_trait::async_trait;
use ports::{DocumentStore, ETag, Page, PortError, Query, WriteOp};

pub(crate) struct ScopedDocuments {
    pub(crate) inner: Arc<dyn DocumentStore>,
    pub(crate) app: &'static str,
    pub(crate) writes: &'static [&'static str],
    pub(crate) reads: &'static [&'static str],
}

impl ScopedDocuments {
    fn may_read(&self, container: &str) -> Result<(), PortError> {
        if self.writes.contains(&container) || self.reads.contains(&container) {
            Ok(())
        } else {
            Err(self.refused("read", container))
        }
    }

    fn refused(&self, what: &str, container: &str) -> PortError {
        PortError::Invalid(format!(
            "app {} may not {what} container {container} (see its registration's containers and reads)",
            self.app
        ))
    }
}

#[async_trait]
impl DocumentStore for ScopedDocuments {
    async fn read(
        &self,
        container: &str,
        partition: &str,
        id: &str,
    ) -> Result<Option<ports::Document>, PortError> {
        self.may_read(container)?;
        self.inner.read(container, partition, id).await
    }

    async fn batch(
        &self,
        container: &str,
        partition: &str,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<Option<ETag>>, PortError> {
        if !self.writes.contains(&container) {
            return Err(self.refused("write", container));
        }
        self.inner.batch(container, partition, ops).await
    }

    async fn query(&self, container: &str, query: &Query) -> Result<Page, PortError> {
        self.may_read(container)?;
        self.inner.query(container, query).await
    }

    fn routes_outbox(&self) -> bool {
        self.inner.routes_outbox()
    }
}

#[cfg(test)]
mod tests {
    use ports::DocumentStoreExt as _;
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn an_app_writes_its_own_containers_and_reads_only_what_it_declares() {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn DocumentStore> = Arc::new(
            embedded::SqliteDocumentStore::open(
                &dir.path().join("d.db"),
                embedded::Durability::Normal,
            )
            .unwrap(),
        );
        for c in ["sms", "registry", "webhooks"] {
            inner.upsert(c, "t", "doc", json!({"v": c})).await.unwrap();
        }
        let scoped = ScopedDocuments {
            inner,
            app: "sms",
            writes: &["sms"],
            reads: &["registry"],
        };
        scoped.upsert("sms", "t", "new", json!({})).await.unwrap();
        assert!(scoped.read("sms", "t", "new").await.unwrap().is_some());
        let registry = scoped.read("registry", "t", "doc").await.unwrap().unwrap();
        assert_eq!(registry.body["v"], "registry");
        assert!(
            scoped
                .query("registry", &Query::partition("t"))
                .await
                .is_ok()
        );

        // Read-only where declared; nothing at all elsewhere.
        let write = scoped.upsert("registry", "t", "x", json!({})).await;
        assert!(
            matches!(&write, Err(PortError::Invalid(m)) if m.contains("may not write container registry")),
            "{write:?}"
        );
        assert!(scoped.read("webhooks", "t", "doc").await.is_err());
        assert!(
            scoped
                .query("webhooks", &Query::partition("t"))
                .await
                .is_err()
        );
        assert!(
            scoped
                .batch("webhooks", "t", vec![WriteOp::upsert("y", json!({}))])
                .await
                .is_err()
        );
    }
}
