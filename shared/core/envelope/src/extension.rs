//! Extension attributes the platform does not interpret. CloudEvents requires intermediaries to
//! forward them, so the envelope keeps them with their JSON type.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::error::{EnvelopeError, excerpt};

/// Names the envelope handles itself; they cannot be set as extensions.
pub(crate) const RESERVED: &[&str] = &[
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "datacontenttype",
    "dataschema",
    "data",
    "data_base64",
    "tenantid",
    "traceparent",
    "correlationid",
    "causationid",
];

/// The value of an extension attribute, in the CloudEvents type system as the JSON format maps it:
/// a JSON string (String, URI, Timestamp, Binary...), a JSON integer or a JSON boolean.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExtensionValue {
    /// A JSON string.
    String(String),
    /// A JSON number that is a whole number in the CloudEvents `Integer` range (32-bit signed).
    Integer(i32),
    /// A JSON boolean.
    Boolean(bool),
}

impl ExtensionValue {
    /// The string, if this is a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }
}

impl From<String> for ExtensionValue {
    fn from(s: String) -> Self {
        Self::String(s)
    }
}

impl From<&str> for ExtensionValue {
    fn from(s: &str) -> Self {
        Self::String(s.to_owned())
    }
}

impl From<i32> for ExtensionValue {
    fn from(i: i32) -> Self {
        Self::Integer(i)
    }
}

impl From<bool> for ExtensionValue {
    fn from(b: bool) -> Self {
        Self::Boolean(b)
    }
}

impl fmt::Display for ExtensionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::String(s) => f.write_str(s),
            Self::Integer(i) => write!(f, "{i}"),
            Self::Boolean(b) => write!(f, "{b}"),
        }
    }
}

impl Serialize for ExtensionValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::String(s) => serializer.serialize_str(s),
            Self::Integer(i) => serializer.serialize_i32(*i),
            Self::Boolean(b) => serializer.serialize_bool(*b),
        }
    }
}

/// The CloudEvents naming rule every attribute name MUST follow: ASCII `a`-`z` and `0`-`9` only.
///
/// The specification's further advice (at most 20 characters) is enforced only when `strict`, i.e.
/// for names this platform produces; events from elsewhere are accepted with longer names.
pub(crate) fn check_name(name: &str, strict: bool) -> Result<(), EnvelopeError> {
    let invalid = |reason| EnvelopeError::InvalidAttributeName {
        name: excerpt(name, 64),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(invalid(
            "must consist of lower-case letters a-z and digits 0-9",
        ));
    }
    if strict && name.len() > 20 {
        return Err(invalid("must not exceed 20 characters"));
    }
    Ok(())
}
