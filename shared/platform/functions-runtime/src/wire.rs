//! The invocation body the Functions host POSTs to `/<FunctionName>` and the reply it expects.
//!
//! Decoding follows what the host really sends, not what its documentation shows: every
//! string inside `Data` and `Metadata` is JSON-encoded a second time (`"\"hello\""`),
//! numbers and booleans arrive as strings (`"1"`, `"true"`), objects arrive as objects, bytes
//! as base64, and `DateTime`s with seconds precision.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Why an invocation body could not be decoded. Each variant names what was wrong; none of
/// them echoes the payload, which may hold customer data.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("the invocation body is not valid JSON: {0}")]
    Json(String),
    #[error("the invocation body must be a JSON object with \"Data\" and \"Metadata\"")]
    NotAnObject,
    #[error("{0:?} must be a JSON object")]
    SectionNotObject(&'static str),
    #[error("binding {0:?} is missing from Data")]
    MissingBinding(String),
    #[error("metadata key {0:?} is missing")]
    MissingMetadata(String),
    #[error("{field:?} has the wrong type: expected {expected}")]
    WrongType {
        field: String,
        expected: &'static str,
    },
    #[error("{field:?} is not valid base64")]
    Base64 { field: String },
}

/// A decoded invocation: the two sections, kept as JSON, with typed accessors.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InvocationRequest {
    pub data: Map<String, Value>,
    pub metadata: Map<String, Value>,
}

impl InvocationRequest {
    /// Parses the exact bytes the host sent. Section names are matched case-insensitively
    /// (the host serialises with Newtonsoft, which reads them that way too); a missing
    /// section is empty rather than an error, since the host omits nothing it has.
    pub fn parse(body: &[u8]) -> Result<Self, DecodeError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| DecodeError::Json(e.to_string()))?;
        let Value::Object(top) = value else {
            return Err(DecodeError::NotAnObject);
        };
        let mut req = InvocationRequest::default();
        for (k, v) in top {
            let section = if k.eq_ignore_ascii_case("data") {
                &mut req.data
            } else if k.eq_ignore_ascii_case("metadata") {
                &mut req.metadata
            } else {
                continue;
            };
            match v {
                Value::Object(m) => *section = m,
                Value::Null => {}
                _ => {
                    return Err(DecodeError::SectionNotObject(
                        if k.eq_ignore_ascii_case("data") {
                            "Data"
                        } else {
                            "Metadata"
                        },
                    ));
                }
            }
        }
        Ok(req)
    }

    /// A `Data` entry, looked up the way the host names it (the binding name).
    pub fn data(&self, binding: &str) -> Result<&Value, DecodeError> {
        lookup(&self.data, binding).ok_or_else(|| DecodeError::MissingBinding(binding.to_owned()))
    }

    /// A metadata value as a string, undoing the double encoding. Binding data is
    /// case-insensitive in the host, so lookup is too (exact match preferred).
    pub fn meta_str(&self, key: &str) -> Option<String> {
        lookup(&self.metadata, key).and_then(host_string)
    }

    /// A metadata value that the host sent as a number-in-a-string (`"DeliveryCount":"1"`).
    pub fn meta_i64(&self, key: &str) -> Result<Option<i64>, DecodeError> {
        match self.meta_str(key) {
            None => Ok(None),
            Some(s) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| DecodeError::WrongType {
                    field: key.to_owned(),
                    expected: "an integer",
                }),
        }
    }

    /// A metadata value that is a real JSON object (`ApplicationProperties`, `sys`).
    pub fn meta_object(&self, key: &str) -> Option<&Map<String, Value>> {
        lookup(&self.metadata, key).and_then(Value::as_object)
    }

    /// The `sys` block every invocation carries.
    pub fn sys(&self) -> Option<Sys> {
        self.meta_object("sys")
            .and_then(|m| serde_json::from_value(Value::Object(m.clone())).ok())
    }
}

fn lookup<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key)
        .or_else(|| {
            map.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        })
        .filter(|v| !v.is_null())
}

/// Undoes the host's string encoding: a JSON string whose content is itself a JSON string
/// literal is parsed once more (`"\"hello\""` → `hello`); a plain string (numbers, dates,
/// base64) is returned as it is. Objects and arrays are not strings: `None`.
pub fn host_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(undo_string_encoding(s)),
        // Not what the host sends, but what its documentation shows; accept it.
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The string rule of [`host_string`] on text: `"\"x\""` becomes `x`, anything else stays.
pub(crate) fn undo_string_encoding(s: &str) -> String {
    if s.starts_with('"')
        && let Ok(inner) = serde_json::from_str::<String>(s)
    {
        return inner;
    }
    s.to_owned()
}

/// `Metadata.sys`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Sys {
    pub method_name: String,
    pub utc_now: String,
    pub rand_guid: String,
}

/// The reply to a non-HTTP invocation (and to non-forwarded HTTP ones).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InvocationResponse {
    pub outputs: Map<String, Value>,
    pub logs: Vec<String>,
    /// Stays `null` unless a `$return` binding is declared: a JSON object here would be
    /// copied into the outputs by the host.
    pub return_value: Value,
}

impl InvocationResponse {
    /// Serialises the reply. Never empty: an empty 2xx body makes the host wait for the
    /// function timeout and then restart the handler.
    pub fn to_bytes(&self) -> Bytes {
        // Serialising maps of `Value`s cannot fail.
        Bytes::from(serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec()))
    }
}

/// Whether the host would silently turn this output string into bytes: .NET's
/// `Convert.FromBase64String` succeeds (whitespace ignored, length a multiple of 4, the
/// standard alphabet, at most two '=' only at the end). `"done"`, `"true"` and `"1234"` all do.
pub fn dotnet_accepts_base64(s: &str) -> bool {
    let chars: Vec<u8> = s
        .bytes()
        .filter(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .collect();
    if !chars.len().is_multiple_of(4) {
        return false;
    }
    let pad = chars.iter().rev().take_while(|&&b| b == b'=').count();
    if pad > 2 {
        return false;
    }
    chars[..chars.len() - pad]
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

/// Decodes a base64 value of `Data` (Service Bus `dataType: binary`, octet-stream HTTP bodies).
pub(crate) fn base64_field(field: &str, value: &Value) -> Result<Vec<u8>, DecodeError> {
    use base64::Engine as _;
    let s = value.as_str().ok_or_else(|| DecodeError::WrongType {
        field: field.to_owned(),
        expected: "a base64 string",
    })?;
    let cleaned: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(cleaned.as_bytes())
        .map_err(|_| DecodeError::Base64 {
            field: field.to_owned(),
        })
}
