//! The [`Envelope`] type: its attributes, its data and how it is written as JSON.

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::builder::EnvelopeBuilder;
use crate::error::{EnvelopeError, Result};
use crate::extension::ExtensionValue;
use crate::rules;
use crate::timestamp::Timestamp;
use crate::traceparent::TraceParent;

/// The only CloudEvents version this crate reads and writes.
pub const SPEC_VERSION: &str = "1.0";

/// The media type of an envelope in JSON structured mode.
pub const CLOUDEVENTS_JSON: &str = "application/cloudevents+json";

/// A CloudEvents 1.0 event with the platform's extension attributes.
///
/// Built only by [`Envelope::parse`] or [`Envelope::builder`], so every value satisfies the rules in
/// the crate documentation. Equality compares attributes and the exact data bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub(crate) id: String,
    pub(crate) source: String,
    pub(crate) event_type: String,
    pub(crate) subject: Option<String>,
    pub(crate) time: Option<Timestamp>,
    pub(crate) datacontenttype: Option<String>,
    pub(crate) dataschema: Option<String>,
    pub(crate) tenant_id: String,
    pub(crate) traceparent: Option<TraceParent>,
    pub(crate) correlation_id: Option<String>,
    pub(crate) causation_id: Option<String>,
    pub(crate) extensions: BTreeMap<String, ExtensionValue>,
    pub(crate) data: Option<Data>,
}

/// The event payload, as the JSON format carries it.
#[derive(Debug, Clone)]
pub enum Data {
    /// The `data` member: a JSON value kept as the exact bytes it arrived (or was built) with.
    Json(Box<RawValue>),
    /// The `data_base64` member, decoded: binary data.
    Binary(Vec<u8>),
}

impl PartialEq for Data {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Json(a), Self::Json(b)) => a.get() == b.get(),
            (Self::Binary(a), Self::Binary(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Data {}

impl Envelope {
    /// Starts building an envelope from the three attributes every platform event must choose.
    ///
    /// `source` is the producing app (`/integration/github`), `event_type` the CloudEvents `type`
    /// (`connectsoft.integration.run.completed.v1`) and `tenant_id` the `tenantid` extension.
    pub fn builder(
        source: impl Into<String>,
        event_type: impl Into<String>,
        tenant_id: impl Into<String>,
    ) -> EnvelopeBuilder {
        EnvelopeBuilder::new(source.into(), event_type.into(), tenant_id.into())
    }

    /// Parses an envelope from JSON structured mode. Never panics; every failure names its cause.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        crate::parse::parse(bytes)
    }

    /// The envelope as JSON: attributes in a fixed order, then extensions by name, then the data,
    /// whose bytes are written exactly as held.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.data_len());
        self.write_json(&mut out);
        out
    }

    /// The `specversion` attribute; always `1.0`.
    pub fn specversion(&self) -> &'static str {
        SPEC_VERSION
    }

    /// The `id` attribute; also the Service Bus `MessageId` and the consumers' idempotency key.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The `source` attribute (a URI-reference such as `/integration/github`).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The `type` attribute.
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// The `subject` attribute.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// The `time` attribute, in UTC.
    pub fn time(&self) -> Option<DateTime<Utc>> {
        self.time.map(|t| t.instant())
    }

    /// The `time` attribute with the precision it is written with.
    pub fn timestamp(&self) -> Option<Timestamp> {
        self.time
    }

    /// The `datacontenttype` attribute as written (absent means JSON; see [`Self::content_type`]).
    pub fn datacontenttype(&self) -> Option<&str> {
        self.datacontenttype.as_deref()
    }

    /// The media type of the data: `datacontenttype`, or `application/json` when it is absent.
    pub fn content_type(&self) -> &str {
        self.datacontenttype
            .as_deref()
            .unwrap_or("application/json")
    }

    /// The `dataschema` attribute (an absolute URI).
    pub fn dataschema(&self) -> Option<&str> {
        self.dataschema.as_deref()
    }

    /// The `tenantid` extension.
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    /// The `traceparent` extension.
    pub fn traceparent(&self) -> Option<&TraceParent> {
        self.traceparent.as_ref()
    }

    /// The `correlationid` extension.
    pub fn correlation_id(&self) -> Option<&str> {
        self.correlation_id.as_deref()
    }

    /// The `causationid` extension.
    pub fn causation_id(&self) -> Option<&str> {
        self.causation_id.as_deref()
    }

    /// Extension attributes this crate does not interpret, by name.
    pub fn extensions(&self) -> &BTreeMap<String, ExtensionValue> {
        &self.extensions
    }

    /// One uninterpreted extension attribute.
    pub fn extension(&self, name: &str) -> Option<&ExtensionValue> {
        self.extensions.get(name)
    }

    /// The payload, if any.
    pub fn data(&self) -> Option<&Data> {
        self.data.as_ref()
    }

    /// Takes the payload out of the envelope.
    pub fn into_data(self) -> Option<Data> {
        self.data
    }

    /// The `data` member exactly as held, if the payload is JSON (`None` for `data_base64`).
    pub fn data_raw(&self) -> Option<&RawValue> {
        match &self.data {
            Some(Data::Json(raw)) => Some(raw),
            _ => None,
        }
    }

    /// The payload as bytes in its content type.
    ///
    /// Binary data is returned decoded. JSON data is returned as its exact JSON text, except that
    /// when `datacontenttype` is not a JSON type and `data` is a JSON string (how the JSON format
    /// carries text such as `text/plain`), the string's contents are returned.
    pub fn data_bytes(&self) -> Option<Cow<'_, [u8]>> {
        match self.data.as_ref()? {
            Data::Binary(bytes) => Some(Cow::Borrowed(bytes)),
            Data::Json(raw) => {
                let text = raw.get();
                if !rules::is_json_media_type(self.datacontenttype.as_deref())
                    && text.starts_with('"')
                    && let Ok(s) = serde_json::from_str::<Cow<'_, str>>(text)
                {
                    return Some(match s {
                        Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
                        Cow::Owned(s) => Cow::Owned(s.into_bytes()),
                    });
                }
                Some(Cow::Borrowed(text.as_bytes()))
            }
        }
    }

    /// Deserialises the payload (the `data` member, or the decoded `data_base64` bytes) as JSON.
    pub fn data_json<T: DeserializeOwned>(&self) -> Result<T> {
        match self.data.as_ref().ok_or(EnvelopeError::NoData)? {
            Data::Json(raw) => serde_json::from_str(raw.get()),
            Data::Binary(bytes) => serde_json::from_slice(bytes),
        }
        .map_err(EnvelopeError::DataDecode)
    }

    fn data_len(&self) -> usize {
        match &self.data {
            Some(Data::Json(raw)) => raw.get().len(),
            Some(Data::Binary(bytes)) => bytes.len().div_ceil(3) * 4,
            None => 0,
        }
    }

    /// Writes the JSON text by hand: every key is a fixed name and every value a string, integer,
    /// boolean or raw JSON, so this cannot fail, and the raw data is copied without re-parsing.
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"specversion\":\"1.0\"");
        write_str_member(out, "id", &self.id);
        write_str_member(out, "source", &self.source);
        write_str_member(out, "type", &self.event_type);
        if let Some(v) = &self.subject {
            write_str_member(out, "subject", v);
        }
        if let Some(v) = &self.time {
            write_str_member(out, "time", &v.to_string());
        }
        if let Some(v) = &self.datacontenttype {
            write_str_member(out, "datacontenttype", v);
        }
        if let Some(v) = &self.dataschema {
            write_str_member(out, "dataschema", v);
        }
        write_str_member(out, "tenantid", &self.tenant_id);
        if let Some(v) = &self.traceparent {
            write_str_member(out, "traceparent", &v.to_string());
        }
        if let Some(v) = &self.correlation_id {
            write_str_member(out, "correlationid", v);
        }
        if let Some(v) = &self.causation_id {
            write_str_member(out, "causationid", v);
        }
        for (name, value) in &self.extensions {
            match value {
                ExtensionValue::String(s) => write_str_member(out, name, s),
                ExtensionValue::Integer(i) => {
                    write_key(out, name);
                    out.extend_from_slice(i.to_string().as_bytes());
                }
                ExtensionValue::Boolean(b) => {
                    write_key(out, name);
                    out.extend_from_slice(if *b { b"true" } else { b"false" });
                }
            }
        }
        match &self.data {
            Some(Data::Json(raw)) => {
                write_key(out, "data");
                out.extend_from_slice(raw.get().as_bytes());
            }
            Some(Data::Binary(bytes)) => {
                write_key(out, "data_base64");
                out.push(b'"');
                out.extend_from_slice(BASE64.encode(bytes).as_bytes());
                out.push(b'"');
            }
            None => {}
        }
        out.push(b'}');
    }
}

/// Writes `,"name":` (attribute names are `[a-z0-9_]`, so they need no escaping).
fn write_key(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

fn write_str_member(out: &mut Vec<u8>, name: &str, value: &str) {
    write_key(out, name);
    write_json_string(out, value);
}

/// Writes `value` as a JSON string, escaping what RFC 8259 requires (as serde_json does).
fn write_json_string(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    let bytes = value.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => &[],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Serialises as the JSON structured-mode object, with the same member order as
/// [`Envelope::to_vec`]. With serde_json the data bytes are copied verbatim.
impl Serialize for Envelope {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("specversion", SPEC_VERSION)?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("source", &self.source)?;
        map.serialize_entry("type", &self.event_type)?;
        if let Some(v) = &self.subject {
            map.serialize_entry("subject", v)?;
        }
        if let Some(v) = &self.time {
            map.serialize_entry("time", &v.to_string())?;
        }
        if let Some(v) = &self.datacontenttype {
            map.serialize_entry("datacontenttype", v)?;
        }
        if let Some(v) = &self.dataschema {
            map.serialize_entry("dataschema", v)?;
        }
        map.serialize_entry("tenantid", &self.tenant_id)?;
        if let Some(v) = &self.traceparent {
            map.serialize_entry("traceparent", v)?;
        }
        if let Some(v) = &self.correlation_id {
            map.serialize_entry("correlationid", v)?;
        }
        if let Some(v) = &self.causation_id {
            map.serialize_entry("causationid", v)?;
        }
        for (name, value) in &self.extensions {
            map.serialize_entry(name, value)?;
        }
        match &self.data {
            Some(Data::Json(raw)) => map.serialize_entry("data", raw)?,
            Some(Data::Binary(bytes)) => {
                map.serialize_entry("data_base64", &BASE64.encode(bytes))?
            }
            None => {}
        }
        map.end()
    }
}

/// Deserialises through [`Envelope::parse`], so only from serde_json (the data must stay raw).
impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        Envelope::parse(raw.get().as_bytes()).map_err(serde::de::Error::custom)
    }
}
