//! Header, query and crypto helpers shared by the schemes.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::VerifyError;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// The one value of `name`, refusing duplicates and values that are not visible ASCII.
pub(crate) fn single<'h>(
    headers: &'h HeaderMap,
    name: &str,
) -> Result<Option<&'h str>, VerifyError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(VerifyError::DuplicateHeader(name.to_owned()));
    }
    first
        .to_str()
        .map(|v| Some(v.trim()))
        .map_err(|_| VerifyError::Malformed("header value"))
}

/// Like [`single`] but the header must be present.
pub(crate) fn required<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, VerifyError> {
    single(headers, name)?.ok_or_else(|| VerifyError::MissingHeader(name.to_owned()))
}

/// The first of several alternative header names that is present; two present at once is
/// ambiguous.
pub(crate) fn one_of<'h>(
    headers: &'h HeaderMap,
    names: &[&str],
) -> Result<Option<&'h str>, VerifyError> {
    let mut found = None;
    for name in names {
        if let Some(v) = single(headers, name)? {
            if found.is_some() {
                return Err(VerifyError::DuplicateHeader((*name).to_owned()));
            }
            found = Some(v);
        }
    }
    Ok(found)
}

/// A header the scheme identifies a delivery by (an id, an event name): present once, 1 to
/// `max` visible ASCII characters; anything else is malformed (400), never replaced by a
/// body hash, which would merge distinct deliveries or split one.
pub(crate) fn identifier(
    headers: &HeaderMap,
    name: &'static str,
    max: usize,
) -> Result<String, VerifyError> {
    match single(headers, name) {
        Ok(Some(v)) if (1..=max).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(v.to_owned())
        }
        Err(e @ VerifyError::DuplicateHeader(_)) => Err(e),
        _ => Err(VerifyError::Malformed(name)),
    }
}

/// An optional header for metadata (ids, event types): duplicates or non-ASCII are ignored
/// rather than refused, as they are not part of what was signed.
pub(crate) fn meta(headers: &HeaderMap, name: &str) -> Option<String> {
    single(headers, name)
        .ok()
        .flatten()
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Unix seconds from a header value, checked against `now` in both directions.
pub(crate) fn check_timestamp(
    value: &str,
    now: DateTime<Utc>,
    tolerance_secs: u64,
) -> Result<i64, VerifyError> {
    let ts: i64 = value
        .parse()
        .map_err(|_| VerifyError::Malformed("timestamp"))?;
    check_instant(ts, now, tolerance_secs)
}

/// Unix seconds `ts`, checked against `now` in both directions.
pub(crate) fn check_instant(
    ts: i64,
    now: DateTime<Utc>,
    tolerance_secs: u64,
) -> Result<i64, VerifyError> {
    if now.timestamp().abs_diff(ts) > tolerance_secs {
        return Err(VerifyError::TimestampOutOfTolerance);
    }
    Ok(ts)
}

pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("hmac accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// Hex decoding (either case); `None` when not hex.
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks_exact(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

/// Constant-time equality of two byte strings of equal length (length is not secret).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Constant-time equality of two shared secrets, hashing first so that not even the length of
/// the expected value leaks through timing.
pub(crate) fn ct_eq_secret(given: &[u8], expected: &[u8]) -> bool {
    ct_eq(&Sha256::digest(given), &Sha256::digest(expected))
}

/// The values of query parameter `name` in `url` (percent-decoded).
pub(crate) fn query_values(url: &str, name: &str) -> Vec<String> {
    let Some((_, rest)) = url.split_once('?') else {
        return Vec::new();
    };
    let query = rest.split_once('#').map_or(rest, |(q, _)| q);
    form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// A JSON string field of a JSON object, parsed only after verification.
pub(crate) fn json_str(value: &serde_json::Value, path: &[&str]) -> Option<String> {
    let mut v = value;
    for key in path {
        v = v.get(key)?;
    }
    v.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}
