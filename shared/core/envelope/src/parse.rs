//! Parsing JSON structured mode: one pass of serde_json over the object that borrows every member
//! as raw JSON, then a typed check of each attribute so errors can name it precisely.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use serde_json::error::Category;
use serde_json::value::RawValue;

use crate::envelope::{Data, Envelope, SPEC_VERSION};
use crate::error::{EnvelopeError, Result, excerpt};
use crate::extension::{ExtensionValue, check_name};
use crate::rules;
use crate::timestamp::Timestamp;
use crate::traceparent::TraceParent;

pub(crate) fn parse(bytes: &[u8]) -> Result<Envelope> {
    let Members(members) = serde_json::from_slice(bytes).map_err(json_error)?;

    let mut slots = Slots::default();
    let mut extensions: BTreeMap<Cow<'_, str>, &RawValue> = BTreeMap::new();
    for (name, raw) in members {
        let slot = match name.as_ref() {
            "specversion" => &mut slots.specversion,
            "id" => &mut slots.id,
            "source" => &mut slots.source,
            "type" => &mut slots.event_type,
            "subject" => &mut slots.subject,
            "time" => &mut slots.time,
            "datacontenttype" => &mut slots.datacontenttype,
            "dataschema" => &mut slots.dataschema,
            "tenantid" => &mut slots.tenantid,
            "traceparent" => &mut slots.traceparent,
            "correlationid" => &mut slots.correlationid,
            "causationid" => &mut slots.causationid,
            "data" => &mut slots.data,
            "data_base64" => &mut slots.data_base64,
            _ => {
                check_name(&name, false)?;
                if extensions.contains_key(&name) {
                    return Err(duplicate(&name));
                }
                extensions.insert(name, raw);
                continue;
            }
        };
        if slot.is_some() {
            return Err(duplicate(&name));
        }
        *slot = Some(raw);
    }

    // The version decides how everything else is read, so it is checked first.
    let specversion = required_string("specversion", slots.specversion)?;
    if specversion != SPEC_VERSION {
        return Err(EnvelopeError::UnsupportedSpecVersion {
            found: excerpt(&specversion, 32),
        });
    }

    let id = required_string("id", slots.id)?;
    rules::id(&id)?;
    let source = required_string("source", slots.source)?;
    rules::uri_reference("source", &source)?;
    let event_type = required_string("type", slots.event_type)?;
    rules::non_empty("type", &event_type)?;
    let tenant_id = required_string("tenantid", slots.tenantid)?;
    rules::non_empty("tenantid", &tenant_id)?;

    let subject = optional_string("subject", slots.subject)?;
    if let Some(v) = &subject {
        rules::non_empty("subject", v)?;
    }
    let time = optional_string("time", slots.time)?
        .map(|v| Timestamp::parse(&v))
        .transpose()?;
    let datacontenttype = optional_string("datacontenttype", slots.datacontenttype)?;
    if let Some(v) = &datacontenttype {
        rules::media_type("datacontenttype", v)?;
    }
    let dataschema = optional_string("dataschema", slots.dataschema)?;
    if let Some(v) = &dataschema {
        rules::uri("dataschema", v)?;
    }
    let traceparent = optional_string("traceparent", slots.traceparent)?
        .map(|v| TraceParent::parse(&v))
        .transpose()?;
    let correlation_id = optional_string("correlationid", slots.correlationid)?;
    if let Some(v) = &correlation_id {
        rules::non_empty("correlationid", v)?;
    }
    let causation_id = optional_string("causationid", slots.causationid)?;
    if let Some(v) = &causation_id {
        rules::non_empty("causationid", v)?;
    }

    let extensions = extensions
        .into_iter()
        .filter_map(|(name, raw)| {
            extension_value(&name, raw)
                .transpose()
                .map(|value| value.map(|value| (name.into_owned(), value)))
        })
        .collect::<Result<BTreeMap<_, _>>>()?;

    let data = match (non_null(slots.data), non_null(slots.data_base64)) {
        (Some(_), Some(_)) => return Err(EnvelopeError::DataConflict),
        (Some(raw), None) => Some(Data::Json(raw.to_owned())),
        (None, Some(raw)) => {
            let encoded = string("data_base64", raw)?;
            let bytes = BASE64.decode(encoded.as_bytes()).map_err(|e| {
                EnvelopeError::invalid(
                    "data_base64",
                    format!("must be standard base64 with padding (RFC 4648): {e}"),
                )
            })?;
            Some(Data::Binary(bytes))
        }
        (None, None) => None,
    };

    Ok(Envelope {
        id,
        source,
        event_type,
        subject,
        time,
        datacontenttype,
        dataschema,
        tenant_id,
        traceparent,
        correlation_id,
        causation_id,
        extensions,
        data,
    })
}

/// Each member the parser knows, as raw JSON, so a repeated name is caught.
#[derive(Default)]
struct Slots<'a> {
    specversion: Option<&'a RawValue>,
    id: Option<&'a RawValue>,
    source: Option<&'a RawValue>,
    event_type: Option<&'a RawValue>,
    subject: Option<&'a RawValue>,
    time: Option<&'a RawValue>,
    datacontenttype: Option<&'a RawValue>,
    dataschema: Option<&'a RawValue>,
    tenantid: Option<&'a RawValue>,
    traceparent: Option<&'a RawValue>,
    correlationid: Option<&'a RawValue>,
    causationid: Option<&'a RawValue>,
    data: Option<&'a RawValue>,
    data_base64: Option<&'a RawValue>,
}

fn duplicate(name: &str) -> EnvelopeError {
    EnvelopeError::DuplicateAttribute {
        attribute: excerpt(name, 64),
    }
}

fn json_error(e: serde_json::Error) -> EnvelopeError {
    match e.classify() {
        // The only type our visitors reject is a top-level value that is not an object.
        Category::Data => EnvelopeError::NotAnObject,
        Category::Syntax | Category::Eof | Category::Io => {
            let (line, column) = (e.line(), e.column());
            let message = e.to_string();
            let suffix = format!(" at line {line} column {column}");
            let message = message.strip_suffix(&suffix).unwrap_or(&message).to_owned();
            EnvelopeError::MalformedJson {
                line,
                column,
                message,
            }
        }
    }
}

/// The JSON type of a raw value, named for error messages. serde_json has checked the syntax, so
/// the first byte decides it.
fn json_type(raw: &RawValue) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// CloudEvents treats a `null` member as absent.
fn non_null(raw: Option<&RawValue>) -> Option<&RawValue> {
    raw.filter(|r| r.get() != "null")
}

fn string(attribute: &str, raw: &RawValue) -> Result<String> {
    if !raw.get().starts_with('"') {
        return Err(EnvelopeError::WrongType {
            attribute: attribute.to_owned(),
            expected: "a string",
            found: json_type(raw),
        });
    }
    // Cannot fail for a syntactically valid JSON string, but stay total.
    serde_json::from_str(raw.get()).map_err(|e| EnvelopeError::invalid(attribute, e.to_string()))
}

fn optional_string(attribute: &str, raw: Option<&RawValue>) -> Result<Option<String>> {
    non_null(raw).map(|raw| string(attribute, raw)).transpose()
}

fn required_string(attribute: &'static str, raw: Option<&RawValue>) -> Result<String> {
    optional_string(attribute, raw)?.ok_or(EnvelopeError::MissingAttribute { attribute })
}

/// An extension's value as the JSON format maps the CloudEvents type system; `None` for `null`.
fn extension_value(name: &str, raw: &RawValue) -> Result<Option<ExtensionValue>> {
    let text = raw.get();
    let value = match text.as_bytes().first() {
        Some(b'n') => return Ok(None),
        Some(b'"') => ExtensionValue::String(string(name, raw)?),
        Some(b't') => ExtensionValue::Boolean(true),
        Some(b'f') => ExtensionValue::Boolean(false),
        Some(b'-' | b'0'..=b'9') => ExtensionValue::Integer(text.parse().map_err(|_| {
            EnvelopeError::invalid(
                name,
                format!(
                    "a number must be a whole number from -2147483648 to 2147483647 (got `{}`)",
                    excerpt(text, 32)
                ),
            )
        })?),
        _ => {
            return Err(EnvelopeError::WrongType {
                attribute: name.to_owned(),
                expected: "a string, an integer or a boolean",
                found: json_type(raw),
            });
        }
    };
    Ok(Some(value))
}

/// The object's members in document order, names unescaped, values borrowed as raw JSON.
struct Members<'de>(Vec<(Cow<'de, str>, &'de RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;

        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some((Key(name), raw)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    members.push((name, raw));
                }
                Ok(Members(members))
            }
        }

        deserializer.deserialize_map(MembersVisitor)
    }
}

/// A member name, borrowed when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}
