//! Typed views of the trigger payloads a handler receives.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use crate::wire::{DecodeError, InvocationRequest, base64_field, host_string};

/// A Service Bus message as delivered to a `serviceBusTrigger`.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceBusMessage {
    /// The exact bytes sent (with `dataType: binary`), or the UTF-8 of the string body.
    pub body: Bytes,
    pub message_id: String,
    pub delivery_count: u32,
    pub sequence_number: Option<i64>,
    pub enqueued_time: Option<DateTime<Utc>>,
    pub content_type: Option<String>,
    pub correlation_id: Option<String>,
    pub session_id: Option<String>,
    pub subject: Option<String>,
    pub dead_letter_source: Option<String>,
    pub application_properties: Map<String, Value>,
}

impl ServiceBusMessage {
    /// Reads the trigger bound as `binding`. `binary` must match the declaration's
    /// `dataType`: with it the body is base64 of the exact bytes; without it the body is a
    /// double-encoded string and, if it held a JSON object, its properties have already
    /// overwritten same-named metadata (so `MessageId` may be the body's, not the broker's):
    /// declare Service Bus triggers binary.
    pub fn from_invocation(
        req: &InvocationRequest,
        binding: &str,
        binary: bool,
    ) -> Result<Self, DecodeError> {
        let raw = req.data(binding)?;
        let body = if binary {
            Bytes::from(base64_field(binding, raw)?)
        } else {
            Bytes::from(host_string(raw).ok_or_else(|| DecodeError::WrongType {
                field: binding.to_owned(),
                expected: "a string",
            })?)
        };
        let count = req
            .meta_i64("DeliveryCount")?
            .ok_or_else(|| DecodeError::MissingMetadata("DeliveryCount".into()))?;
        Ok(ServiceBusMessage {
            body,
            message_id: req
                .meta_str("MessageId")
                .ok_or_else(|| DecodeError::MissingMetadata("MessageId".into()))?,
            delivery_count: u32::try_from(count).map_err(|_| DecodeError::WrongType {
                field: "DeliveryCount".into(),
                expected: "a positive integer",
            })?,
            sequence_number: req.meta_i64("SequenceNumber")?,
            enqueued_time: req
                .meta_str("EnqueuedTimeUtc")
                .and_then(|s| parse_host_datetime(&s)),
            content_type: req.meta_str("ContentType"),
            correlation_id: req.meta_str("CorrelationId"),
            session_id: req.meta_str("SessionId"),
            subject: req.meta_str("Subject").or_else(|| req.meta_str("Label")),
            dead_letter_source: req.meta_str("DeadLetterSource"),
            application_properties: req
                .meta_object("ApplicationProperties")
                .or_else(|| req.meta_object("UserProperties"))
                .cloned()
                .unwrap_or_default(),
        })
    }

    /// Decodes a `dataType: binary` Service Bus invocation straight from the bytes the host
    /// sent, without building the generic JSON tree: only the fields a handler reads are
    /// materialised, strings are borrowed where the JSON has no escapes. This is the hot
    /// path of every queue and subscription consumer. Payloads it cannot read that way (say,
    /// with section or key names in another case) go through [`Self::from_invocation`],
    /// so the two accept the same inputs.
    pub fn from_binary_invocation(body: &[u8], binding: &str) -> Result<Self, DecodeError> {
        match serde_json::from_slice::<fast::Wire<'_>>(body) {
            Ok(wire) => {
                if let Some(msg) = wire.into_message(binding)? {
                    return Ok(msg);
                }
            }
            Err(e) if e.is_syntax() || e.is_eof() => return Err(DecodeError::Json(e.to_string())),
            Err(_) => {}
        }
        ServiceBusMessage::from_invocation(&InvocationRequest::parse(body)?, binding, true)
    }

    /// An application property as a string (numbers and booleans are rendered).
    pub fn property(&self, name: &str) -> Option<String> {
        // Values inside an object are encoded once only: no `host_string` here.
        self.application_properties.get(name).and_then(plain_string)
    }
}

/// Parses the host's `DateTime` rendering (`2025-01-15T10:00:00`, no offset, taken as UTC)
/// and its `DateTimeOffset` rendering (`...+00:00`).
pub fn parse_host_datetime(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.to_utc())
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|n| n.and_utc())
        })
}

/// `TimerInfo`.
#[derive(Clone, Debug, PartialEq)]
pub struct TimerInfo {
    pub is_past_due: bool,
    pub last: Option<DateTime<Utc>>,
    pub next: Option<DateTime<Utc>>,
}

impl TimerInfo {
    pub fn from_invocation(req: &InvocationRequest, binding: &str) -> Result<Self, DecodeError> {
        let raw = req.data(binding)?;
        let obj = raw.as_object().ok_or_else(|| DecodeError::WrongType {
            field: binding.to_owned(),
            expected: "a TimerInfo object",
        })?;
        let is_past_due = match get_ci(obj, "IsPastDue") {
            Some(Value::Bool(b)) => *b,
            Some(v) => host_string(v).is_some_and(|s| s.eq_ignore_ascii_case("true")),
            None => false,
        };
        let status = get_ci(obj, "ScheduleStatus").and_then(Value::as_object);
        let time = |k: &str| {
            status
                .and_then(|s| get_ci(s, k))
                .and_then(Value::as_str)
                .and_then(parse_host_datetime)
        };
        Ok(TimerInfo {
            is_past_due,
            last: time("Last"),
            next: time("Next"),
        })
    }
}

/// A string that is *inside* an object the host serialised (`Headers`, `Query`, `Params`,
/// `ApplicationProperties`): encoded once, so taken as it is (an ETag keeps its quotes).
fn plain_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn get_ci<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    m.get(key).or_else(|| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// The HTTP trigger payload of a non-forwarded invocation (`GetRequestAsJObject`).
#[derive(Clone, Debug, PartialEq)]
pub struct HttpTriggerRequest {
    pub url: String,
    pub method: String,
    pub query: BTreeMap<String, String>,
    /// Header values as the host sends them in `Data`: arrays of strings.
    pub headers: BTreeMap<String, Vec<String>>,
    pub params: BTreeMap<String, Option<String>>,
    /// Present only when the request had `Content-Length > 0`; base64-decoded for
    /// `application/octet-stream` and `multipart/*`, the text otherwise.
    pub body: Option<Bytes>,
}

impl HttpTriggerRequest {
    pub fn from_invocation(req: &InvocationRequest, binding: &str) -> Result<Self, DecodeError> {
        let raw = req.data(binding)?;
        let obj = raw.as_object().ok_or_else(|| DecodeError::WrongType {
            field: binding.to_owned(),
            expected: "an HTTP request object",
        })?;
        let string = |k: &str| get_ci(obj, k).and_then(Value::as_str).map(str::to_owned);
        let wrong = |field: &str, expected| DecodeError::WrongType {
            field: field.into(),
            expected,
        };
        let mut query = BTreeMap::new();
        if let Some(q) = get_ci(obj, "Query") {
            for (k, v) in q.as_object().ok_or_else(|| wrong("Query", "an object"))? {
                query.insert(k.clone(), plain_string(v).unwrap_or_default());
            }
        }
        let mut headers = BTreeMap::new();
        if let Some(h) = get_ci(obj, "Headers") {
            for (k, v) in h.as_object().ok_or_else(|| wrong("Headers", "an object"))? {
                let values: Vec<String> = match v {
                    Value::Array(a) => a.iter().filter_map(plain_string).collect(),
                    other => plain_string(other).into_iter().collect(),
                };
                headers.insert(k.clone(), values);
            }
        }
        let mut params = BTreeMap::new();
        if let Some(Value::Object(p)) = get_ci(obj, "Params") {
            for (k, v) in p {
                params.insert(k.clone(), plain_string(v));
            }
        }
        let content_type = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .and_then(|(_, v)| v.first().cloned())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let body = match get_ci(obj, "Body") {
            None | Some(Value::Null) => None,
            Some(v)
                if content_type.starts_with("application/octet-stream")
                    || content_type.starts_with("multipart/") =>
            {
                Some(Bytes::from(base64_field("Body", v)?))
            }
            Some(Value::String(s)) => Some(Bytes::from(s.clone())),
            Some(other) => Some(Bytes::from(other.to_string())),
        };
        Ok(HttpTriggerRequest {
            url: string("Url").ok_or_else(|| wrong("Url", "a string"))?,
            method: string("Method").ok_or_else(|| wrong("Method", "a string"))?,
            query,
            headers,
            params,
            body,
        })
    }
}

/// The borrowed wire shape of a binary Service Bus invocation (see
/// `ServiceBusMessage::from_binary_invocation`).
mod fast {
    use std::borrow::Cow;
    use std::collections::BTreeMap;

    use base64::Engine as _;
    use bytes::Bytes;
    use serde::Deserialize;
    use serde_json::value::RawValue;
    use serde_json::{Map, Value};

    use super::{ServiceBusMessage, parse_host_datetime};
    use crate::wire::DecodeError;

    #[derive(Deserialize)]
    pub(super) struct Wire<'a> {
        #[serde(rename = "Data", borrow)]
        data: BTreeMap<Cow<'a, str>, &'a RawValue>,
        #[serde(rename = "Metadata", borrow)]
        metadata: Meta<'a>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Meta<'a> {
        #[serde(borrow)]
        delivery_count: Option<Cow<'a, str>>,
        #[serde(borrow)]
        message_id: Option<Cow<'a, str>>,
        #[serde(borrow)]
        sequence_number: Option<Cow<'a, str>>,
        #[serde(borrow)]
        enqueued_time_utc: Option<Cow<'a, str>>,
        #[serde(borrow)]
        content_type: Option<Cow<'a, str>>,
        #[serde(borrow)]
        correlation_id: Option<Cow<'a, str>>,
        #[serde(borrow)]
        session_id: Option<Cow<'a, str>>,
        #[serde(borrow)]
        subject: Option<Cow<'a, str>>,
        #[serde(borrow)]
        label: Option<Cow<'a, str>>,
        #[serde(borrow)]
        dead_letter_source: Option<Cow<'a, str>>,
        application_properties: Option<Map<String, Value>>,
        user_properties: Option<Map<String, Value>>,
    }

    /// Undoes the host's second JSON encoding of a string (`"\"x\""` → `x`).
    fn unwrap(s: Option<Cow<'_, str>>) -> Option<String> {
        s.map(|s| crate::wire::undo_string_encoding(&s))
    }

    impl Wire<'_> {
        /// `Ok(None)`: not the shape this fast path reads; use the generic decoder.
        pub(super) fn into_message(
            self,
            binding: &str,
        ) -> Result<Option<ServiceBusMessage>, DecodeError> {
            let m = self.metadata;
            let (Some(raw), Some(count), Some(id)) =
                (self.data.get(binding), m.delivery_count, m.message_id)
            else {
                return Ok(None);
            };
            let Ok(b64) = serde_json::from_str::<Cow<'_, str>>(raw.get()) else {
                return Err(DecodeError::WrongType {
                    field: binding.to_owned(),
                    expected: "a base64 string",
                });
            };
            let decoded = base64::engine::general_purpose::STANDARD.decode(b64.as_bytes());
            let body = match decoded {
                Ok(b) => b,
                // .NET accepts whitespace inside base64; the generic path strips it.
                Err(_) => return Ok(None),
            };
            let delivery_count =
                count
                    .trim()
                    .parse::<u32>()
                    .map_err(|_| DecodeError::WrongType {
                        field: "DeliveryCount".into(),
                        expected: "a positive integer",
                    })?;
            let sequence_number = match m.sequence_number {
                None => None,
                Some(s) => Some(
                    s.trim()
                        .parse::<i64>()
                        .map_err(|_| DecodeError::WrongType {
                            field: "SequenceNumber".into(),
                            expected: "an integer",
                        })?,
                ),
            };
            Ok(Some(ServiceBusMessage {
                body: Bytes::from(body),
                message_id: unwrap(Some(id)).unwrap_or_default(),
                delivery_count,
                sequence_number,
                enqueued_time: unwrap(m.enqueued_time_utc).and_then(|s| parse_host_datetime(&s)),
                content_type: unwrap(m.content_type),
                correlation_id: unwrap(m.correlation_id),
                session_id: unwrap(m.session_id),
                subject: unwrap(m.subject).or_else(|| unwrap(m.label)),
                dead_letter_source: unwrap(m.dead_letter_source),
                application_properties: m
                    .application_properties
                    .or(m.user_properties)
                    .unwrap_or_default(),
            }))
        }
    }
}
