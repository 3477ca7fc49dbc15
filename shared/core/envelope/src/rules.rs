//! The value rules of the string attributes, shared by the parser and the builder so both accept
//! exactly the same envelopes.

use crate::error::{EnvelopeError, excerpt};

/// Service Bus caps `MessageId` at 128 characters (.NET `string.Length`, i.e. UTF-16 code units),
/// and the envelope id doubles as the message id.
pub const MAX_ID_LEN: usize = 128;

pub(crate) fn non_empty(attribute: &str, value: &str) -> Result<(), EnvelopeError> {
    if value.is_empty() {
        return Err(EnvelopeError::invalid(attribute, "must not be empty"));
    }
    Ok(())
}

pub(crate) fn id(value: &str) -> Result<(), EnvelopeError> {
    non_empty("id", value)?;
    if value.encode_utf16().count() > MAX_ID_LEN {
        return Err(EnvelopeError::invalid(
            "id",
            format!("must be at most {MAX_ID_LEN} characters (it is the Service Bus MessageId)"),
        ));
    }
    Ok(())
}

/// A URI-reference (RFC 3986 section 4.1): only URI characters, `%` followed by two hex digits.
pub(crate) fn uri_reference(attribute: &str, value: &str) -> Result<(), EnvelopeError> {
    non_empty(attribute, value)?;
    let b = value.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            let ok = b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return Err(EnvelopeError::invalid(
                    attribute,
                    format!(
                        "`%` must start a percent-encoded octet (got `{}`)",
                        excerpt(value, 64)
                    ),
                ));
            }
            i += 3;
            continue;
        }
        let allowed = c.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=".contains(&c);
        if !allowed {
            return Err(EnvelopeError::invalid(
                attribute,
                format!(
                    "must be a URI-reference; character {:?} is not allowed (got `{}`)",
                    char::from(c),
                    excerpt(value, 64)
                ),
            ));
        }
        i += 1;
    }
    Ok(())
}

/// An absolute URI: a URI-reference that starts with a scheme.
pub(crate) fn uri(attribute: &str, value: &str) -> Result<(), EnvelopeError> {
    uri_reference(attribute, value)?;
    let scheme_len = value
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        .count();
    let has_scheme = scheme_len > 0
        && value.as_bytes()[0].is_ascii_alphabetic()
        && value.as_bytes().get(scheme_len) == Some(&b':');
    if !has_scheme {
        return Err(EnvelopeError::invalid(
            attribute,
            format!(
                "must be an absolute URI with a scheme (got `{}`)",
                excerpt(value, 64)
            ),
        ));
    }
    Ok(())
}

/// An RFC 2046 media type: `type/subtype`, optionally followed by `;` and parameters.
pub(crate) fn media_type(attribute: &str, value: &str) -> Result<(), EnvelopeError> {
    let essence = value.split(';').next().unwrap_or_default().trim();
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let ok = essence
        .split_once('/')
        .is_some_and(|(t, sub)| token(t) && token(sub));
    if !ok || value.chars().any(char::is_control) {
        return Err(EnvelopeError::invalid(
            attribute,
            format!(
                "must be a media type `type/subtype` (got `{}`)",
                excerpt(value, 64)
            ),
        ));
    }
    Ok(())
}

/// Whether a media type says JSON: `application/json`, `text/json` or any `+json` suffix.
/// An absent `datacontenttype` means JSON in the CloudEvents JSON format.
pub(crate) fn is_json_media_type(value: Option<&str>) -> bool {
    let Some(value) = value else { return true };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence == "text/json" || essence.ends_with("+json")
}
