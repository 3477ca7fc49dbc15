//! What a failed storage call means for the port, without leaking credentials.

use std::error::Error as _;

use azure_core::error::ErrorKind;
use azure_core::http::StatusCode;
use ports::PortError;

use crate::counters::Operation;

/// The source of [`PortError::Backend`] errors of this adapter: the operation, the HTTP status
/// and storage error code when there was an answer, and the SDK's message with any shared
/// access signature removed.
#[derive(Debug, thiserror::Error)]
#[error("blob {operation} failed: {message}")]
pub struct StorageError {
    pub operation: &'static str,
    pub status: Option<u16>,
    /// The service's `x-ms-error-code`, such as `ServerBusy`.
    pub code: Option<String>,
    pub message: String,
}

impl StorageError {
    pub(crate) fn new(op: Operation, message: impl Into<String>) -> StorageError {
        StorageError {
            operation: op.name(),
            status: None,
            code: None,
            message: redact(&message.into()),
        }
    }
}

/// The storage error code of an HTTP error answer.
pub(crate) fn error_code(e: &azure_core::Error) -> Option<&str> {
    match e.kind() {
        ErrorKind::HttpResponse {
            error_code: Some(code),
            ..
        } => Some(code.as_str()),
        _ => None,
    }
}

/// Maps an SDK error of `op` onto the port's errors. `first_writer` is a put with
/// `if_none_match`, whose "already there" answers mean [`PortError::AlreadyExists`].
pub(crate) fn to_port_error(op: Operation, first_writer: bool, e: azure_core::Error) -> PortError {
    let code = error_code(&e).map(str::to_owned);
    let backend = |status: Option<StatusCode>| {
        PortError::backend(
            "azure-blob",
            StorageError {
                operation: op.name(),
                status: status.map(u16::from),
                code: code.clone(),
                message: redact(&chain(&e)),
            },
        )
    };
    let ErrorKind::HttpResponse {
        status,
        raw_response,
        ..
    } = e.kind()
    else {
        if is_timeout(&e) {
            return PortError::Timeout;
        }
        if matches!(e.kind(), ErrorKind::Credential) {
            tracing::warn!(operation = op.name(), error = %redact(&chain(&e)), "blob storage: no token");
            return PortError::Unauthenticated;
        }
        return backend(None);
    };
    let status = *status;
    let code_is = |c: &str| code.as_deref() == Some(c);
    match u16::from(status) {
        404 => PortError::NotFound,
        // A put with `If-None-Match: *` on an existing blob is answered 409
        // BlobAlreadyExists (by Azure and Azurite alike); 412 ConditionNotMet, the generic
        // answer to a failed condition, can only mean the same here: someone was first.
        409 | 412 if first_writer => PortError::AlreadyExists,
        409 if code_is("BlobAlreadyExists") || code_is("ContainerAlreadyExists") => {
            PortError::AlreadyExists
        }
        412 => PortError::PreconditionFailed,
        429 | 503 => PortError::Throttled {
            retry_after: raw_response
                .as_ref()
                .and_then(|r| azure_credential::retry::sdk_retry_after(r.headers())),
        },
        408 => PortError::Timeout,
        500 if code_is("OperationTimedOut") => PortError::Timeout,
        401 | 403 => {
            // The port has no "forbidden": a missing role assignment is reported as
            // unauthenticated, with the service's reason in the log for the operator.
            tracing::warn!(
                operation = op.name(),
                status = u16::from(status),
                code = code.as_deref().unwrap_or(""),
                "blob storage refused the credentials"
            );
            PortError::Unauthenticated
        }
        400 | 413 | 414 | 416 => PortError::Invalid(format!(
            "blob storage refused the {} request: {}",
            op.name(),
            code.as_deref().unwrap_or("bad request")
        )),
        _ => backend(Some(status)),
    }
}

fn is_timeout(e: &azure_core::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = e.source();
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<reqwest::Error>()
            && r.is_timeout()
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// The error and its sources, one line.
fn chain(e: &azure_core::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

/// Removes the value of every `sig=` (a shared access signature) from a message: SDK and
/// transport errors quote request URLs, and ours carry a SAS for local stand-ins.
pub(crate) fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = find_sig(rest) {
        let value_start = at + "sig=".len();
        out.push_str(&rest[..value_start]);
        out.push_str("REDACTED");
        let value_len = rest[value_start..]
            .find(|c: char| c == '&' || c == ')' || c == '"' || c == '\'' || c.is_whitespace())
            .unwrap_or(rest.len() - value_start);
        rest = &rest[value_start + value_len..];
    }
    out.push_str(rest);
    out
}

/// The next `sig=` that starts a query parameter (after `?` or `&`), case-insensitively.
fn find_sig(text: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("sig=") {
        let at = from + i;
        if at > 0 && matches!(lower.as_bytes()[at - 1], b'?' | b'&') {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use azure_core::http::headers::Headers;

    use super::*;
    use azure_core::http::RawResponse;

    fn http_error(
        status: u16,
        code: Option<&str>,
        headers: &[(&'static str, &str)],
    ) -> azure_core::Error {
        let mut h = Headers::new();
        for (k, v) in headers {
            h.insert(*k, v.to_string());
        }
        let status = StatusCode::from(status);
        azure_core::Error::new(
            ErrorKind::HttpResponse {
                status,
                error_code: code.map(str::to_owned),
                raw_response: Some(Box::new(RawResponse::from_bytes(status, h, Vec::new()))),
            },
            std::io::Error::other("answer"),
        )
    }

    #[test]
    fn statuses_map_to_port_errors() {
        let map = |status, code, first| {
            to_port_error(Operation::Put, first, http_error(status, code, &[]))
        };
        assert!(matches!(
            map(404, Some("BlobNotFound"), false),
            PortError::NotFound
        ));
        assert!(matches!(
            map(404, Some("ContainerNotFound"), false),
            PortError::NotFound
        ));
        assert!(matches!(
            map(409, Some("BlobAlreadyExists"), true),
            PortError::AlreadyExists
        ));
        assert!(matches!(
            map(412, Some("ConditionNotMet"), true),
            PortError::AlreadyExists
        ));
        assert!(matches!(
            map(412, Some("ConditionNotMet"), false),
            PortError::PreconditionFailed
        ));
        assert!(matches!(
            map(409, Some("LeaseIdMissing"), false),
            PortError::Backend { .. }
        ));
        assert!(matches!(
            map(403, Some("AuthorizationPermissionMismatch"), false),
            PortError::Unauthenticated
        ));
        assert!(matches!(
            map(500, Some("OperationTimedOut"), false),
            PortError::Timeout
        ));
        assert!(matches!(map(408, None, false), PortError::Timeout));
        assert!(
            matches!(map(400, Some("InvalidHeaderValue"), false), PortError::Invalid(m) if m.contains("InvalidHeaderValue"))
        );
        let e = map(500, Some("InternalError"), false);
        assert!(e.is_transient(), "{e:?}");
        let source = std::error::Error::source(&e).expect("a source").to_string();
        assert!(source.contains("put"), "{source}");
    }

    #[test]
    fn throttling_carries_the_services_hint() {
        let throttled = |status, headers: &[(&'static str, &str)]| match to_port_error(
            Operation::Get,
            false,
            http_error(status, Some("ServerBusy"), headers),
        ) {
            PortError::Throttled { retry_after } => retry_after,
            other => panic!("not throttled: {other:?}"),
        };
        assert_eq!(
            throttled(503, &[("retry-after", "7")]),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            throttled(429, &[("x-ms-retry-after-ms", "250")]),
            Some(Duration::from_millis(250))
        );
        assert_eq!(throttled(503, &[]), None);
        let later = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        let wait = throttled(503, &[("retry-after", &later)]).expect("a date is a hint");
        assert!(
            wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
    }

    #[test]
    fn signatures_are_redacted() {
        let text = "error sending request for url (http://127.0.0.1:1/c/b?sv=2022-11-02&sig=abc%2Bdef%3D&se=x)";
        let redacted = redact(text);
        assert!(!redacted.contains("abc"), "{redacted}");
        assert!(redacted.contains("sig=REDACTED&se=x"), "{redacted}");
        assert_eq!(
            redact("?SIG=1 and &sig=2"),
            "?SIG=REDACTED and &sig=REDACTED"
        );
        assert_eq!(redact("design=ok, no query"), "design=ok, no query");
        assert_eq!(redact("tail?sig="), "tail?sig=REDACTED");
    }
}
