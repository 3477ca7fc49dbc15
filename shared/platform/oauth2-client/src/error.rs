//! The classified failures of a token request. No variant carries a secret: messages are
//! the client's own, and text from the server is scrubbed of the client's secrets and
//! truncated before it is kept.

use std::fmt;
use std::time::Duration;

/// Why the client could not get an access token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthError {
    /// RFC 6749 `invalid_grant`: the refresh token (or the grant) is revoked, expired or
    /// was issued to another client. Retrying cannot help; the credential needs a new
    /// grant (re-consent).
    #[error("the token endpoint rejected the grant (invalid_grant){}", Detail(.description))]
    InvalidGrant { description: Option<String> },

    /// `invalid_client` or HTTP 401: the client id or secret is wrong or not allowed this
    /// authentication method.
    #[error("the token endpoint rejected the client authentication (HTTP {status}){}", Detail(.description))]
    InvalidClient {
        status: u16,
        description: Option<String>,
    },

    /// HTTP 429. `retry_after` comes from `Retry-After` (seconds or an HTTP-date).
    #[error("the token endpoint is throttling requests{}", RetryAfter(.retry_after))]
    Throttled { retry_after: Option<Duration> },

    /// 5xx, `temporarily_unavailable`/`server_error`, a timeout or a connection failure.
    #[error("the token endpoint is unavailable: {reason}")]
    Transient { reason: String },

    /// A success status with a body that is not a usable token response.
    #[error("the token endpoint returned a malformed token response: {reason}")]
    Malformed { reason: String },

    /// Any other OAuth error (`invalid_request`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`, ...) or a 4xx without an OAuth error
    /// body (`error` is then `http_<status>`).
    #[error("the token endpoint returned error {error}{}", Detail(.description))]
    Other {
        error: String,
        description: Option<String>,
    },
}

impl OAuthError {
    /// Whether the same request may succeed later (throttling or an unavailable endpoint).
    /// The client itself never retries.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            OAuthError::Throttled { .. } | OAuthError::Transient { .. }
        )
    }

    /// The server's requested wait, when it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            OAuthError::Throttled { retry_after } => *retry_after,
            _ => None,
        }
    }
}

struct Detail<'a>(&'a Option<String>);

impl fmt::Display for Detail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(description) => write!(f, ": {description}"),
            None => Ok(()),
        }
    }
}

struct RetryAfter<'a>(&'a Option<Duration>);

impl fmt::Display for RetryAfter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(wait) => write!(f, " (retry after {} s)", wait.as_secs()),
            None => Ok(()),
        }
    }
}
