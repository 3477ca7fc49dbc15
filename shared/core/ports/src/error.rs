use std::time::Duration;

/// One error type for every port, so callers handle semantics (not backends).
///
/// Adapters map their own failures onto these variants; the message of `Backend`
/// never carries secret material (adapters redact before wrapping). Cloning is cheap (the
/// backend's error is shared), so a cache fill's error reaches every caller that waited on it.
#[derive(Clone, Debug, thiserror::Error)]
pub enum PortError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    #[error("precondition failed: the etag no longer matches")]
    PreconditionFailed,
    #[error("throttled by the backend")]
    Throttled { retry_after: Option<Duration> },
    #[error("unauthenticated")]
    Unauthenticated,
    #[error("timed out")]
    Timeout,
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("{backend} backend error")]
    Backend {
        backend: &'static str,
        #[source]
        source: std::sync::Arc<dyn std::error::Error + Send + Sync>,
    },
}

impl PortError {
    pub fn backend(
        backend: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        PortError::Backend {
            backend,
            source: std::sync::Arc::from(source.into()),
        }
    }

    /// Whether the same call may succeed if tried again later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            PortError::Throttled { .. } | PortError::Timeout | PortError::Backend { .. }
        )
    }
}

pub type Result<T, E = PortError> = std::result::Result<T, E>;
