//! The adapter against Azurite (started by `standins`) and against a small fake server for
//! what Azurite cannot do (throttling, hanging).

mod azurite;
mod fake;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::time::OffsetDateTime;

/// What Azurite's `--oauth basic` accepts in place of an Entra ID token: an unsigned JWT with
/// the right claims. Counts the tokens it hands out, and checks the scope asked for.
#[derive(Debug)]
pub struct AzuriteToken {
    lifetime: Duration,
    pub issued: AtomicUsize,
}

impl AzuriteToken {
    pub fn new() -> Arc<AzuriteToken> {
        Self::lasting(Duration::from_secs(3600))
    }

    pub fn lasting(lifetime: Duration) -> Arc<AzuriteToken> {
        Arc::new(AzuriteToken {
            lifetime,
            issued: AtomicUsize::new(0),
        })
    }
}

#[async_trait::async_trait]
impl TokenCredential for AzuriteToken {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        if scopes != ["https://storage.azure.com/.default"] {
            return Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                format!("unexpected scopes {scopes:?}"),
            ));
        }
        let (token, expires) = standins::azurite::unsigned_storage_token(self.lifetime);
        let expires_on = OffsetDateTime::from_unix_timestamp(expires as i64).map_err(|e| {
            azure_core::Error::with_message(azure_core::error::ErrorKind::Credential, e.to_string())
        })?;
        self.issued.fetch_add(1, Ordering::Relaxed);
        Ok(AccessToken::new(token, expires_on))
    }
}
