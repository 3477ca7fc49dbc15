//! [`EnvelopeBuilder`]: how the platform makes its own events. Setters store, the terminal methods
//! validate with the same rules as the parser, so a built envelope always parses back equal.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::envelope::{Data, Envelope};
use crate::error::{EnvelopeError, Result};
use crate::extension::{ExtensionValue, RESERVED, check_name};
use crate::rules;
use crate::timestamp::Timestamp;
use crate::traceparent::TraceParent;

/// The prefix of generated event ids (`evt_` + a UUID v7, so ids sort by creation time).
pub const EVENT_ID_PREFIX: &str = "evt_";

/// A new event id: `evt_` followed by a UUID v7 (41 characters, within Service Bus' 128).
pub fn new_event_id() -> String {
    format!("{EVENT_ID_PREFIX}{}", uuid::Uuid::now_v7())
}

/// Builds an [`Envelope`]; start with [`Envelope::builder`].
///
/// Defaults: `id` from [`new_event_id`], `time` now, no `traceparent`, `datacontenttype`
/// `application/json` for JSON data and `application/octet-stream` for binary data.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until a terminal method (`build`, `json_data`...) is called"]
pub struct EnvelopeBuilder {
    id: Option<String>,
    source: String,
    event_type: String,
    tenant_id: String,
    subject: Option<String>,
    time: Option<Timestamp>,
    datacontenttype: Option<String>,
    dataschema: Option<String>,
    traceparent: Option<TraceParent>,
    correlation_id: Option<String>,
    causation_id: Option<String>,
    extensions: Vec<(String, ExtensionValue)>,
}

impl EnvelopeBuilder {
    pub(crate) fn new(source: String, event_type: String, tenant_id: String) -> Self {
        Self {
            id: None,
            source,
            event_type,
            tenant_id,
            subject: None,
            time: None,
            datacontenttype: None,
            dataschema: None,
            traceparent: None,
            correlation_id: None,
            causation_id: None,
            extensions: Vec::new(),
        }
    }

    /// Sets `id` instead of generating one (non-empty, at most 128 characters).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets `subject`, e.g. the run or connection the event is about.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Sets `time` instead of now.
    pub fn time(mut self, time: impl Into<Timestamp>) -> Self {
        self.time = Some(time.into());
        self
    }

    /// Sets `datacontenttype`, overriding the default for the data given.
    pub fn datacontenttype(mut self, media_type: impl Into<String>) -> Self {
        self.datacontenttype = Some(media_type.into());
        self
    }

    /// Sets `dataschema` (an absolute URI).
    pub fn dataschema(mut self, uri: impl Into<String>) -> Self {
        self.dataschema = Some(uri.into());
        self
    }

    /// Sets the `traceparent` extension.
    pub fn traceparent(mut self, traceparent: TraceParent) -> Self {
        self.traceparent = Some(traceparent);
        self
    }

    /// Sets the `correlationid` extension.
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets the `causationid` extension.
    pub fn causation_id(mut self, id: impl Into<String>) -> Self {
        self.causation_id = Some(id.into());
        self
    }

    /// Marks the event as caused by `cause`: `causationid` is the cause's id, `correlationid` the
    /// cause's correlation id (or its id when it has none), and `traceparent` a child of the
    /// cause's (when it has one). The tenant is not copied: the caller chose it.
    pub fn caused_by(mut self, cause: &Envelope) -> Self {
        self.causation_id = Some(cause.id().to_owned());
        self.correlation_id = Some(cause.correlation_id().unwrap_or(cause.id()).to_owned());
        if let Some(parent) = cause.traceparent() {
            self.traceparent = Some(parent.child());
        }
        self
    }

    /// Adds an extension attribute the platform does not interpret. The name must be `a`-`z` and
    /// `0`-`9`, at most 20 characters, and not one the envelope sets itself.
    pub fn extension(mut self, name: impl Into<String>, value: impl Into<ExtensionValue>) -> Self {
        self.extensions.push((name.into(), value.into()));
        self
    }

    /// Finishes an envelope without data.
    pub fn build(self) -> Result<Envelope> {
        self.finish(None)
    }

    /// Finishes an envelope whose data is `value` serialised to JSON once, now (`None` and other
    /// values that serialise to `null` give no data).
    pub fn json_data<T: Serialize + ?Sized>(self, value: &T) -> Result<Envelope> {
        let raw = serde_json::value::to_raw_value(value).map_err(EnvelopeError::DataEncode)?;
        self.raw_json_data(raw)
    }

    /// Finishes an envelope whose data is this JSON, kept byte for byte. JSON `null` means no data,
    /// as the JSON format reads a `null` member as absent.
    pub fn raw_json_data(mut self, raw: Box<RawValue>) -> Result<Envelope> {
        if raw.get() == "null" {
            return self.finish(None);
        }
        self.datacontenttype
            .get_or_insert_with(|| "application/json".to_owned());
        self.finish(Some(Data::Json(raw)))
    }

    /// Finishes an envelope with binary data (written as `data_base64`).
    pub fn binary_data(mut self, bytes: impl Into<Vec<u8>>) -> Result<Envelope> {
        self.datacontenttype
            .get_or_insert_with(|| "application/octet-stream".to_owned());
        self.finish(Some(Data::Binary(bytes.into())))
    }

    fn finish(self, data: Option<Data>) -> Result<Envelope> {
        let id = self.id.unwrap_or_else(new_event_id);
        rules::id(&id)?;
        rules::uri_reference("source", &self.source)?;
        rules::non_empty("type", &self.event_type)?;
        rules::non_empty("tenantid", &self.tenant_id)?;
        if let Some(v) = &self.subject {
            rules::non_empty("subject", v)?;
        }
        if let Some(v) = &self.datacontenttype {
            rules::media_type("datacontenttype", v)?;
        }
        if let Some(v) = &self.dataschema {
            rules::uri("dataschema", v)?;
        }
        if let Some(v) = &self.correlation_id {
            rules::non_empty("correlationid", v)?;
        }
        if let Some(v) = &self.causation_id {
            rules::non_empty("causationid", v)?;
        }

        let mut extensions = BTreeMap::new();
        for (name, value) in self.extensions {
            check_name(&name, true)?;
            if RESERVED.contains(&name.as_str()) {
                return Err(EnvelopeError::InvalidAttributeName {
                    name,
                    reason: "is set by the envelope itself, not as an extension",
                });
            }
            if extensions.insert(name.clone(), value).is_some() {
                return Err(EnvelopeError::DuplicateAttribute { attribute: name });
            }
        }

        Ok(Envelope {
            id,
            source: self.source,
            event_type: self.event_type,
            subject: self.subject,
            time: Some(self.time.unwrap_or_else(Timestamp::now)),
            datacontenttype: self.datacontenttype,
            dataschema: self.dataschema,
            tenant_id: self.tenant_id,
            traceparent: self.traceparent,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            extensions,
            data,
        })
    }
}
