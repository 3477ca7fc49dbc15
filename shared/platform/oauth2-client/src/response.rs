//! Reading the token endpoint's answers (RFC 6749 §5.1 success, §5.2 error) and classifying
//! them. Bodies are read as `serde_json::Value` and picked apart by hand so that no
//! message ever quotes a value from the body (serde's messages would quote it, and the
//! body of a malformed success may hold an access token).

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use crate::OAuthError;

/// Server text kept in an error (descriptions, error codes) is cut to this many chars.
const MAX_SERVER_TEXT: usize = 200;

/// A successful token response, not yet turned into a cached token.
pub(crate) struct TokenResponse {
    pub(crate) access_token: SecretString,
    pub(crate) token_type: String,
    pub(crate) expires_in: Option<Duration>,
    pub(crate) scope: Option<String>,
    pub(crate) refresh_token: Option<SecretString>,
}

/// Parses a 2xx body.
pub(crate) fn parse_token_response(body: &[u8]) -> Result<TokenResponse, OAuthError> {
    let malformed = |reason: &str| OAuthError::Malformed {
        reason: reason.to_owned(),
    };
    let value: Value =
        serde_json::from_slice(body).map_err(|_| malformed("the body is not JSON"))?;
    let Value::Object(object) = value else {
        return Err(malformed("the body is not a JSON object"));
    };
    let access_token = match object.get("access_token") {
        Some(Value::String(token)) if !token.is_empty() => SecretString::from(token.as_str()),
        Some(Value::String(_)) => return Err(malformed("access_token is empty")),
        Some(_) => return Err(malformed("access_token is not a string")),
        None => return Err(malformed("access_token is missing")),
    };
    let token_type = match object.get("token_type") {
        Some(Value::String(kind)) if kind.eq_ignore_ascii_case("bearer") => kind.clone(),
        None | Some(Value::Null) => "Bearer".to_owned(),
        Some(_) => return Err(malformed("token_type is not Bearer")),
    };
    let expires_in = match object.get("expires_in") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            seconds(value)
                .ok_or_else(|| malformed("expires_in is not a non-negative number of seconds"))?,
        ),
    };
    Ok(TokenResponse {
        access_token,
        token_type,
        expires_in,
        scope: string(&object, "scope"),
        refresh_token: string(&object, "refresh_token")
            .filter(|token| !token.is_empty())
            .map(SecretString::from),
    })
}

/// `expires_in` as a number, or as a numeric string (some vendors quote it).
fn seconds(value: &Value) -> Option<Duration> {
    let secs = match value {
        Value::Number(number) => number.as_f64()?,
        Value::String(text) => text.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs(secs.floor() as u64))
}

fn string(object: &Map<String, Value>, key: &str) -> Option<String> {
    match object.get(key) {
        Some(Value::String(text)) => Some(text.clone()),
        _ => None,
    }
}

/// Classifies a non-2xx answer.
pub(crate) fn classify_error(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    scrub: &Scrubber,
) -> OAuthError {
    if status == StatusCode::TOO_MANY_REQUESTS {
        return OAuthError::Throttled {
            retry_after: retry_after(headers, SystemTime::now()),
        };
    }
    let (code, description) = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => (
            string(&object, "error"),
            string(&object, "error_description"),
        ),
        _ => (None, None),
    };
    let description = description.map(|text| scrub.clean(&text));
    match code.as_deref() {
        Some("invalid_grant") => OAuthError::InvalidGrant { description },
        Some("invalid_client") => OAuthError::InvalidClient {
            status: status.as_u16(),
            description,
        },
        _ if status == StatusCode::UNAUTHORIZED => OAuthError::InvalidClient {
            status: status.as_u16(),
            description,
        },
        // Defined for the authorization endpoint, but some token endpoints use them too.
        Some(code @ ("temporarily_unavailable" | "server_error")) => OAuthError::Transient {
            reason: format!("HTTP {}, error {code}", status.as_u16()),
        },
        _ if status.is_server_error() => OAuthError::Transient {
            reason: format!("HTTP {}", status.as_u16()),
        },
        Some(code) => OAuthError::Other {
            error: scrub.clean(code),
            description,
        },
        None => OAuthError::Other {
            error: format!("http_{}", status.as_u16()),
            description,
        },
    }
}

/// `Retry-After` as delta-seconds or an HTTP-date (RFC 9110 §10.2.3); a date in the past
/// means "now".
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    resilience::hints::retry_after_value(value, now)
}

/// Removes the client's secrets from text that came from the server or the transport
/// before it is kept in an error: a server may echo the request (a refresh token in an
/// `error_description`).
pub(crate) struct Scrubber {
    secrets: Vec<String>,
}

impl Scrubber {
    pub(crate) fn new<'a>(secrets: impl IntoIterator<Item = Option<&'a SecretString>>) -> Self {
        let mut forms = Vec::new();
        for secret in secrets.into_iter().flatten() {
            let raw = secret.expose_secret();
            if raw.is_empty() {
                continue;
            }
            let encoded: String = form_urlencoded::byte_serialize(raw.as_bytes()).collect();
            if encoded != raw {
                forms.push(encoded);
            }
            forms.push(raw.to_owned());
        }
        // Longest first, so a secret containing another is removed whole.
        forms.sort_by_key(|form| std::cmp::Reverse(form.len()));
        Scrubber { secrets: forms }
    }

    /// The text without secrets or control characters, at most [`MAX_SERVER_TEXT`] chars.
    pub(crate) fn clean(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "[redacted]");
            }
        }
        let mut cleaned: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(MAX_SERVER_TEXT)
            .collect();
        if text.chars().count() > MAX_SERVER_TEXT {
            cleaned.push('…');
        }
        cleaned
    }
}

#[cfg(test)]
mod tests;
