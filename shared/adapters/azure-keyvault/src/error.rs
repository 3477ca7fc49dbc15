//! Errors of building a store, and what a failed vault call means for the port.

use std::fmt;
use std::time::Duration;

use azure_core::error::ErrorKind;
use ports::PortError;

pub(crate) const BACKEND: &str = "key-vault";

/// Why a store could not be built. Never carries a token or a secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("setting {setting} is invalid: {reason}")]
    Setting {
        setting: &'static str,
        reason: String,
    },
    #[error("the vault URL is invalid: {reason}")]
    VaultUrl { reason: String },
    #[error("cannot create the {kind} credential: {reason}")]
    Credential { kind: &'static str, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    #[error("cannot create the Key Vault client: {0}")]
    Client(String),
}

/// A vault answer that is not success, for error context: status, the service's error code
/// (and inner code) and message. Key Vault error bodies name secrets, never their values.
#[derive(Debug)]
pub(crate) struct VaultFailure {
    pub(crate) status: u16,
    pub(crate) code: String,
    pub(crate) inner_code: Option<String>,
    pub(crate) message: String,
    pub(crate) retry_after: Option<Duration>,
}

impl fmt::Display for VaultFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {} {}", self.status, self.code)?;
        if let Some(inner) = &self.inner_code {
            write!(f, " ({inner})")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for VaultFailure {}

impl VaultFailure {
    /// The failure inside an SDK error, when the vault answered. The message is scrubbed of
    /// `secrets` and of anything shaped like a bearer token, in case a proxy echoes a request.
    pub(crate) fn of(e: &azure_core::Error) -> Option<VaultFailure> {
        Self::scrubbed(e, &[])
    }

    fn scrubbed(e: &azure_core::Error, secrets: &[&str]) -> Option<VaultFailure> {
        let ErrorKind::HttpResponse {
            status,
            error_code,
            raw_response,
        } = e.kind()
        else {
            return None;
        };
        let body: serde_json::Value = raw_response
            .as_ref()
            .and_then(|r| serde_json::from_slice(r.body()).ok())
            .unwrap_or_default();
        let error = &body["error"];
        let text = |v: &serde_json::Value| v.as_str().map(|s| truncate(s, 300));
        Some(VaultFailure {
            status: u16::from(*status),
            code: text(&error["code"])
                .or_else(|| error_code.clone())
                .unwrap_or_default(),
            inner_code: text(&error["innererror"]["code"]),
            message: scrub(&text(&error["message"]).unwrap_or_default(), secrets),
            retry_after: raw_response
                .as_ref()
                .and_then(|r| azure_credential::retry::sdk_retry_after(r.headers())),
        })
    }

    /// Key Vault answers 403 `Forbidden` with inner code `SecretDisabled` for a disabled
    /// version: the port reads that as "not found".
    pub(crate) fn is_disabled(&self) -> bool {
        self.status == 403 && self.inner_code.as_deref() == Some("SecretDisabled")
    }
}

/// Replaces each of `secrets` (of four characters or more) and every `Bearer <token>`.
fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(secret, "[redacted]");
    }
    let lower = out.to_ascii_lowercase();
    let mut scrubbed = String::with_capacity(out.len());
    let mut pos = 0;
    while let Some(found) = lower[pos..].find("bearer ") {
        let start = pos + found + "bearer ".len();
        scrubbed.push_str(&out[pos..start]);
        let rest = &out[start..];
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '"' || c == ',')
            .unwrap_or(rest.len());
        if end > 0 {
            scrubbed.push_str("[redacted]");
        }
        pos = start + end;
    }
    scrubbed.push_str(&out[pos..]);
    scrubbed
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// The port's meaning of a failed call; `what` says which call, for context.
pub(crate) fn port_error(e: azure_core::Error, what: &'static str) -> PortError {
    port_error_scrubbed(e, what, &[])
}

/// [`port_error`] for a call that carried `secrets` (a value being stored), which are
/// removed from whatever the vault's answer says.
pub(crate) fn port_error_scrubbed(
    e: azure_core::Error,
    what: &'static str,
    secrets: &[&str],
) -> PortError {
    if let Some(failure) = VaultFailure::scrubbed(&e, secrets) {
        return match failure.status {
            404 => PortError::NotFound,
            403 if failure.is_disabled() => PortError::NotFound,
            400 => PortError::Invalid(format!("Key Vault refused to {what}: {failure}")),
            401 => {
                tracing::warn!(%failure, "Key Vault refused the credentials: {what}");
                PortError::Unauthenticated
            }
            429 => PortError::Throttled {
                retry_after: failure.retry_after,
            },
            _ => PortError::backend(BACKEND, Context { what, failure }),
        };
    }
    let why = match e.kind() {
        ErrorKind::Credential => format!("cannot get an Entra ID token to {what}: {e}"),
        ErrorKind::Connection => format!("cannot reach the vault to {what}: {e}"),
        ErrorKind::Io => format!("the vault connection failed to {what}: {e}"),
        _ => format!("cannot {what}: {e}"),
    };
    PortError::backend(BACKEND, why)
}

/// A failure with the operation it happened in.
#[derive(Debug)]
struct Context {
    what: &'static str,
    failure: VaultFailure,
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot {}: {}", self.what, self.failure)
    }
}

impl std::error::Error for Context {}

#[cfg(test)]
mod tests {
    use azure_core::http::headers::Headers;
    use azure_core::http::{RawResponse, StatusCode};

    use super::*;

    fn http_error(status: StatusCode, body: &str, headers: Headers) -> azure_core::Error {
        azure_core::Error::new(
            ErrorKind::HttpResponse {
                status,
                error_code: None,
                raw_response: Some(Box::new(RawResponse::from_bytes(
                    status,
                    headers,
                    body.as_bytes().to_vec(),
                ))),
            },
            "failed",
        )
    }

    #[test]
    fn vault_answers_map_to_port_errors() {
        let e = |status, body: &str| port_error(http_error(status, body, Headers::new()), "read x");
        let disabled = r#"{"error":{"code":"Forbidden","message":"Operation get is not allowed on a disabled secret.","innererror":{"code":"SecretDisabled"}}}"#;
        assert!(matches!(
            e(StatusCode::Forbidden, disabled),
            PortError::NotFound
        ));
        let rbac = r#"{"error":{"code":"Forbidden","message":"Caller is not authorized","innererror":{"code":"ForbiddenByRbac"}}}"#;
        let denied = e(StatusCode::Forbidden, rbac);
        assert!(matches!(denied, PortError::Backend { .. }));
        let source = std::error::Error::source(&denied).unwrap().to_string();
        assert!(
            source.contains(
                "cannot read x: HTTP 403 Forbidden (ForbiddenByRbac): Caller is not authorized"
            ),
            "{source}"
        );
        assert!(matches!(
            e(
                StatusCode::NotFound,
                r#"{"error":{"code":"SecretNotFound","message":"no"}}"#
            ),
            PortError::NotFound
        ));
        assert!(matches!(
            e(StatusCode::BadRequest, "{}"),
            PortError::Invalid(_)
        ));
        assert!(matches!(
            e(StatusCode::Unauthorized, ""),
            PortError::Unauthenticated
        ));
        assert!(matches!(
            e(StatusCode::InternalServerError, "not json"),
            PortError::Backend { .. }
        ));

        let mut headers = Headers::new();
        headers.insert("retry-after", "7");
        let throttled = port_error(http_error(StatusCode::TooManyRequests, "{}", headers), "x");
        assert!(matches!(
            throttled,
            PortError::Throttled { retry_after: Some(d) } if d == Duration::from_secs(7)
        ));
    }

    #[test]
    fn messages_are_scrubbed() {
        assert_eq!(
            scrub(
                "got Authorization: Bearer abc.def.ghi for hunter22, Bearer",
                &["hunter22"]
            ),
            "got Authorization: Bearer [redacted] for [redacted], Bearer"
        );
        assert_eq!(scrub("nothing", &["ab"]), "nothing");
    }

    #[test]
    fn transport_failures_are_backend_errors_with_context() {
        let e = port_error(
            azure_core::Error::with_message(ErrorKind::Connection, "connection refused"),
            "read x",
        );
        assert!(e.is_transient());
        let source = std::error::Error::source(&e).unwrap().to_string();
        assert!(
            source.contains("cannot reach the vault to read x"),
            "{source}"
        );
    }
}
