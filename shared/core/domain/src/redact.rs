//! Text that is safe to store in failures and events because secrets were taken out of it.

use std::fmt;

/// Text that must not hold secrets: vendor error messages, attempt errors, test results.
///
/// There is no `From<String>`: the text is built either by [`RedactedText::redact`], which removes the
/// secrets the caller knows about plus common credential shapes, or by [`RedactedText::from_redacted`],
/// where the caller states that the text is already clean (a fixed message, a vendor error code).
/// Either way it is cut to [`RedactedText::MAX_CHARS`] so a vendor body cannot bloat a document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RedactedText(String);

/// What replaces a secret.
const MASK: &str = "[redacted]";

/// Names whose value, after `=` or `:`, is treated as a secret (matched ignoring ASCII case).
const SENSITIVE_KEYS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "accountkey",
    "accesskey",
    "access_key",
    "sharedaccesskey",
    "subscription-key",
    "private_key",
    "privatekey",
    "authorization",
    "sig",
    "signature",
    "credential",
];

/// Token prefixes used by vendors' secrets (matched ignoring ASCII case at a word start).
const SECRET_PREFIXES: &[&str] = &[
    "sk-",
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "rk_test_",
    "whsec_",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xoxr-",
    "xapp-",
    "eyj",
];

/// HTTP authentication schemes whose following token is a credential.
const AUTH_SCHEMES: &[&str] = &["bearer ", "basic "];

impl RedactedText {
    /// The longest text kept, in characters.
    pub const MAX_CHARS: usize = 2000;

    /// Removes every occurrence of `known_secrets` (the values the caller holds for this call) and
    /// anything that looks like a credential: `Bearer`/`Basic` tokens, `password=`/`"token":`-style
    /// values, and vendor token prefixes (`sk-`, `ghp_`, `whsec_`, JWTs, ...).
    ///
    /// The heuristics over-redact rather than under-redact; they are a second line behind not putting
    /// secrets into messages in the first place.
    ///
    /// A known value of 8 characters or more is masked wherever it occurs;
    /// a shorter one (a user name `u`, an app id `42`) only where it stands as a whole token,
    /// so that it neither garbles the message ("could" is not "co[redacted]ld") nor reveals
    /// itself by where the masks fall.
    pub fn redact(raw: &str, known_secrets: &[&str]) -> Self {
        let mut text = raw.to_owned();
        for secret in known_secrets.iter().filter(|s| !s.is_empty()) {
            if !text.contains(secret) {
                continue;
            }
            text = if secret.chars().count() >= WHOLE_WORD_BELOW {
                text.replace(secret, MASK)
            } else {
                mask_whole_tokens(&text, secret)
            };
        }
        let ranges = sensitive_ranges(&text);
        Self::from_redacted(apply_mask(&text, &ranges))
    }

    /// Wraps text the caller knows holds no secret (a fixed message, a vendor error code).
    pub fn from_redacted(text: impl Into<String>) -> Self {
        let mut text = text.into();
        if let Some((cut, _)) = text.char_indices().nth(Self::MAX_CHARS) {
            text.truncate(cut);
        }
        Self(text)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RedactedText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for RedactedText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for RedactedText {
    /// Stored text was redacted when it was written; only the length bound is re-applied.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(deserializer)?;
        Ok(Self::from_redacted(s))
    }
}

/// Known values shorter than this many characters are masked only as whole tokens.
const WHOLE_WORD_BELOW: usize = 8;

/// Whether `c` may be part of a token (so a value next to it is part of a longer word).
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `text` with every occurrence of `value` that stands alone (no word character right
/// before or after it) masked.
fn mask_whole_tokens(text: &str, value: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (at, _) in text.match_indices(value) {
        if at < last {
            continue;
        }
        let before = text[..at].chars().next_back();
        let after = text[at + value.len()..].chars().next();
        if before.is_some_and(is_word_char) || after.is_some_and(is_word_char) {
            continue;
        }
        out.push_str(&text[last..at]);
        out.push_str(MASK);
        last = at + value.len();
    }
    out.push_str(&text[last..]);
    out
}

/// Whether a byte ends a secret value.
fn is_value_end(b: u8) -> bool {
    b.is_ascii_whitespace()
        || matches!(
            b,
            b'&' | b'"' | b'\'' | b',' | b';' | b'}' | b')' | b']' | b'<' | b'>'
        )
}

/// Whether a byte can be part of a vendor token.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/' | b'+' | b'=')
}

/// Byte ranges of `s` that hold secrets. All bounds sit next to ASCII bytes, so they are char
/// boundaries.
fn sensitive_ranges(s: &str) -> Vec<(usize, usize)> {
    let lower = s.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut ranges = Vec::new();

    for key in SENSITIVE_KEYS {
        for (at, _) in lower.match_indices(key) {
            let mut i = at + key.len();
            // `"key": "value"`, `key=value`, `key: value`
            if matches!(bytes.get(i), Some(b'"' | b'\'')) {
                i += 1;
            }
            while bytes.get(i) == Some(&b' ') {
                i += 1;
            }
            if !matches!(bytes.get(i), Some(b'=' | b':')) {
                continue;
            }
            i += 1;
            while bytes.get(i) == Some(&b' ') {
                i += 1;
            }
            let quote = match bytes.get(i) {
                Some(&q @ (b'"' | b'\'')) => {
                    i += 1;
                    Some(q)
                }
                _ => None,
            };
            let start = i;
            if already_masked(&lower, start) {
                continue;
            }
            while let Some(&b) = bytes.get(i) {
                let end = match quote {
                    Some(q) => b == q,
                    None => is_value_end(b),
                };
                if end {
                    break;
                }
                i += 1;
            }
            if i > start {
                ranges.push((start, i));
            }
        }
    }

    for scheme in AUTH_SCHEMES {
        for (at, _) in lower.match_indices(scheme) {
            let start = at + scheme.len();
            if already_masked(&lower, start) {
                continue;
            }
            let mut i = start;
            while bytes.get(i).is_some_and(|&b| !is_value_end(b)) {
                i += 1;
            }
            if i > start {
                ranges.push((start, i));
            }
        }
    }

    for prefix in SECRET_PREFIXES {
        for (at, _) in lower.match_indices(prefix) {
            let at_word_start = at == 0
                || bytes
                    .get(at - 1)
                    .is_some_and(|b| !b.is_ascii_alphanumeric());
            if !at_word_start {
                continue;
            }
            let mut i = at + prefix.len();
            while bytes.get(i).is_some_and(|&b| is_token_byte(b)) {
                i += 1;
            }
            // Short matches are ordinary words (`sk-1`), not tokens.
            if i - at - prefix.len() >= 8 {
                ranges.push((at, i));
            }
        }
    }
    ranges
}

/// Whether a value at `start` was already replaced by the mask (a known secret).
fn already_masked(lower: &str, start: usize) -> bool {
    lower
        .get(start..)
        .is_some_and(|rest| rest.starts_with(MASK))
}

/// Replaces the (possibly overlapping) ranges with the mask.
fn apply_mask(s: &str, ranges: &[(usize, usize)]) -> String {
    let mut sorted = ranges.to_vec();
    sorted.sort_unstable();
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    for (start, end) in sorted {
        if end <= pos {
            continue;
        }
        let start = start.max(pos);
        out.push_str(s.get(pos..start).unwrap_or(""));
        out.push_str(MASK);
        pos = end;
    }
    out.push_str(s.get(pos..).unwrap_or(""));
    out
}

#[cfg(test)]
mod tests;
