//! Errors of building a sender, and what an HTTP refusal means for the port.

use std::fmt;

use ports::PortError;

pub(crate) const BACKEND: &str = "service-bus";

/// Why a sender could not be built. Never carries a key, a connection string or a token.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("setting {setting} is invalid: {reason}")]
    Setting {
        setting: &'static str,
        reason: String,
    },
    #[error("the Service Bus namespace is invalid: {reason}")]
    Namespace { reason: String },
    #[error("the Service Bus connection string is invalid: {reason}")]
    ConnectionString { reason: String },
    #[error("cannot create the {kind} credential: {reason}")]
    Credential { kind: &'static str, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// A non-success answer, for error context: the status and the service's detail text (already
/// scrubbed).
#[derive(Debug)]
pub(crate) struct HttpFailure {
    pub(crate) status: u16,
    pub(crate) detail: String,
}

impl fmt::Display for HttpFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.is_empty() {
            write!(f, "HTTP {}", self.status)
        } else {
            write!(f, "HTTP {}: {}", self.status, self.detail)
        }
    }
}

impl std::error::Error for HttpFailure {}

impl HttpFailure {
    /// The port's meaning of a refusal that is not retried here (429, 503 and 401 are handled
    /// by the caller).
    pub(crate) fn into_port_error(self, entity: &str) -> PortError {
        match self.status {
            400 => PortError::Invalid(format!(
                "Service Bus refused the send to {entity} as malformed ({self})"
            )),
            // 403 is "quota exceeded or message too large" for sends; only the detail tells
            // the two apart. Too large is the caller's to fix; a full entity or a missing role
            // is not, and may pass (Backend is transient).
            403 if mentions_size(&self.detail) => {
                PortError::Invalid(format!("the message is too large for {entity} ({self})"))
            }
            404 | 410 => {
                tracing::warn!(entity, failure = %self, "service bus: no such queue or topic");
                PortError::NotFound
            }
            413 => PortError::Invalid(format!(
                "the message or batch is larger than {entity} accepts ({self})"
            )),
            408 => PortError::Timeout,
            _ => PortError::backend(BACKEND, self),
        }
    }
}

fn mentions_size(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    d.contains("too large") || d.contains("size") || d.contains("exceed the limit")
}

/// The `<Detail>` of a Service Bus error body, or the body itself when it is not that XML;
/// trimmed and at most 300 characters.
pub(crate) fn detail(body: &str) -> String {
    let inner = body
        .split_once("<Detail>")
        .and_then(|(_, rest)| rest.split_once("</Detail>"))
        .map(|(d, _)| d)
        .unwrap_or(body);
    truncate(inner.trim(), 300)
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Removes every `secrets` value and anything shaped like a credential (`sig=…`,
/// `SharedAccessKey=…`, `Bearer …`) from text the service sent back, so an echoing proxy or
/// a verbose error cannot carry a key into an error or a log.
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(secret, "[redacted]");
    }
    for marker in ["sig=", "SharedAccessKey=", "Bearer "] {
        out = redact_after(&out, marker);
    }
    out
}

/// Replaces what follows each (case-insensitive) `marker` up to a delimiter.
fn redact_after(text: &str, marker: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let needle = marker.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while let Some(found) = lower[pos..].find(&needle) {
        let start = pos + found + marker.len();
        out.push_str(&text[pos..start]);
        let rest = &text[start..];
        let end = rest
            .find(|c: char| c == '&' || c == ';' || c == '"' || c == '<' || c.is_whitespace())
            .unwrap_or(rest.len());
        if end > 0 {
            out.push_str("[redacted]");
        }
        pos = start + end;
    }
    out.push_str(&text[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_is_taken_from_the_xml() {
        let body =
            "<Error><Code>400</Code><Detail>Bad BrokerProperties. TrackingId:1</Detail></Error>";
        assert_eq!(detail(body), "Bad BrokerProperties. TrackingId:1");
        assert_eq!(detail("  plain  "), "plain");
        let long = "x".repeat(400);
        assert_eq!(detail(&long).chars().count(), 301);
    }

    #[test]
    fn scrub_removes_credentials() {
        let text = "got SharedAccessSignature sr=a&sig=AbC%2Bdef&se=1&skn=k; SharedAccessKey=s3cr3t==; \
                    Authorization: Bearer eyJ.token.x and the raw key KEYVALUE";
        let out = scrub(text, &["KEYVALUE"]);
        for gone in ["AbC%2Bdef", "s3cr3t", "eyJ.token.x", "KEYVALUE"] {
            assert!(!out.contains(gone), "{out}");
        }
        assert!(out.contains("sr=a&sig=[redacted]&se=1"), "{out}");
        assert_eq!(scrub("nothing here", &[]), "nothing here");
        // Short strings are not treated as secrets (they would redact ordinary words).
        assert_eq!(scrub("abc", &["ab"]), "abc");
    }

    #[test]
    fn statuses_map_to_port_errors() {
        let f = |status, detail: &str| {
            HttpFailure {
                status,
                detail: detail.to_owned(),
            }
            .into_port_error("q")
        };
        assert!(matches!(f(400, "bad"), PortError::Invalid(m) if m.contains("HTTP 400: bad")));
        assert!(matches!(
            f(403, "The message size exceeds the limit"),
            PortError::Invalid(_)
        ));
        let quota = f(403, "Quota exceeded");
        assert!(matches!(quota, PortError::Backend { .. }) && quota.is_transient());
        assert!(matches!(f(404, ""), PortError::NotFound));
        assert!(matches!(f(410, ""), PortError::NotFound));
        assert!(matches!(f(413, ""), PortError::Invalid(_)));
        assert!(matches!(f(408, ""), PortError::Timeout));
        assert!(matches!(f(500, ""), PortError::Backend { .. }));
    }
}
