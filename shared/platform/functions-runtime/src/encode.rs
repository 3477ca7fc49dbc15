//! The host side of the wire: builds invocation bodies exactly as the Functions host does.
//!
//! The local runner builds every invocation with these functions and the conformance tests
//! feed their output to handlers, so what the runner sends and what the tests check can
//! never drift apart.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::wire::Sys;

/// A value as the host holds it before conversion (the CLR types of binding data).
#[derive(Clone, Debug, PartialEq)]
pub enum HostValue {
    String(String),
    Int(i64),
    Bool(bool),
    /// `System.DateTime`: seconds precision, no offset.
    DateTime(DateTime<Utc>),
    /// `System.DateTimeOffset`: seconds precision, `+00:00`.
    DateTimeOffset(DateTime<Utc>),
    /// Anything `JObject.FromObject` accepts: sent as a real JSON object.
    Object(Map<String, Value>),
    /// `byte[]`: base64.
    Bytes(Vec<u8>),
    /// Arrays fail `JObject.FromObject`, so the host sends their JSON text as a string.
    Array(Vec<Value>),
}

impl HostValue {
    /// The §4.2 conversion (`GetHttpScriptInvocationContextValue`).
    pub fn to_wire(&self) -> Value {
        match self {
            HostValue::String(s) => Value::String(Value::String(s.clone()).to_string()),
            HostValue::Int(i) => Value::String(i.to_string()),
            HostValue::Bool(b) => Value::String(b.to_string()),
            HostValue::DateTime(t) => Value::String(seconds(t)),
            HostValue::DateTimeOffset(t) => Value::String(format!("{}+00:00", seconds(t))),
            HostValue::Object(m) => Value::Object(m.clone()),
            HostValue::Bytes(b) => Value::String(STANDARD.encode(b)),
            HostValue::Array(a) => Value::String(Value::Array(a.clone()).to_string()),
        }
    }
}

/// `yyyy-MM-ddTHH:mm:ss`, written out directly: `format("%Y-...")` parses its pattern on
/// every call, and the runner formats four of these per invocation.
fn seconds(t: &DateTime<Utc>) -> String {
    use chrono::{Datelike as _, Timelike as _};
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Binding data under construction: keys in insertion order, later keys overwrite.
#[derive(Clone, Debug, Default)]
pub struct BindingData {
    entries: Vec<(String, Option<HostValue>)>,
}

impl BindingData {
    pub fn set(&mut self, key: &str, value: Option<HostValue>) -> &mut Self {
        // Binding data is a case-insensitive dictionary in the host.
        if let Some(slot) = self
            .entries
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
        {
            slot.1 = value;
        } else {
            self.entries.push((key.to_owned(), value));
        }
        self
    }

    /// The host's `ApplyBindingData`: when the trigger value is a string holding a JSON
    /// object, its top-level properties (except arrays) overwrite binding data. Scalars
    /// become strings (`2` → `"2"`, `true` → `"True"`), objects stay objects.
    pub fn merge_json_body(&mut self, body: &str) {
        let trimmed = body.trim();
        if !trimmed.starts_with('{') {
            return;
        }
        let Ok(Value::Object(props)) = serde_json::from_str::<Value>(trimmed) else {
            return;
        };
        for (k, v) in props {
            let hv = match v {
                Value::Array(_) => continue,
                Value::Object(m) => Some(HostValue::Object(m)),
                Value::String(s) => Some(HostValue::String(s)),
                Value::Bool(b) => Some(HostValue::String(if b { "True" } else { "False" }.into())),
                Value::Number(n) => Some(HostValue::String(n.to_string())),
                Value::Null => None,
            };
            self.set(&k, hv);
        }
    }

    /// `Metadata`: null values and keys ending in `trigger` are skipped; `sys` is added.
    pub fn into_metadata(self, sys: &Sys) -> Map<String, Value> {
        let mut out = Map::new();
        for (k, v) in self.entries {
            let Some(v) = v else { continue };
            if k.to_ascii_lowercase().ends_with("trigger") {
                continue;
            }
            out.insert(k, v.to_wire());
        }
        out.insert(
            "sys".into(),
            serde_json::to_value(sys).unwrap_or(Value::Null),
        );
        out
    }
}

/// `Metadata.sys` for a call of `function` at `now`.
pub fn sys(function: &str, now: DateTime<Utc>) -> Sys {
    Sys {
        method_name: function.to_owned(),
        utc_now: now.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        rand_guid: uuid::Uuid::new_v4().to_string(),
    }
}

/// One Service Bus message as the trigger sees it.
#[derive(Clone, Debug)]
pub struct ServiceBusDelivery<'a> {
    pub body: &'a [u8],
    pub message_id: &'a str,
    pub delivery_count: u32,
    pub sequence_number: i64,
    pub lock_token: &'a str,
    pub enqueued_time: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub content_type: Option<&'a str>,
    pub correlation_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub dead_letter_source: Option<&'a str>,
    pub application_properties: Map<String, Value>,
}

/// The largest `DateTime` .NET has, used for messages without a time-to-live.
fn never() -> DateTime<Utc> {
    chrono::NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|d| d.and_hms_opt(23, 59, 59))
        .map(|t| t.and_utc())
        .unwrap_or_default()
}

/// Builds the body the host POSTs for a Service Bus trigger (extension 5.x binding data).
///
/// With `binary` (`"dataType":"binary"`, what the platform declares) the body is base64 of
/// the exact bytes and nothing is merged into `Metadata`; without it, the body is a
/// double-encoded string and a JSON-object body overwrites same-named metadata keys.
pub fn service_bus_invocation(
    function: &str,
    binding: &str,
    binary: bool,
    m: &ServiceBusDelivery<'_>,
    now: DateTime<Utc>,
) -> Value {
    // The text form only when the body goes as a string (and is merged into the metadata).
    let text = (!binary).then(|| String::from_utf8_lossy(m.body).into_owned());
    let trigger = match &text {
        None => HostValue::Bytes(m.body.to_vec()),
        Some(text) => HostValue::String(text.clone()),
    };
    let mut bd = BindingData::default();
    for settlement in [
        "MessageReceiver",
        "MessageSession",
        "MessageActions",
        "SessionActions",
    ] {
        bd.set(settlement, Some(HostValue::Object(Map::new())));
    }
    let expires = m.expires_at.unwrap_or_else(never);
    let props = HostValue::Object(m.application_properties.clone());
    let s = |v: Option<&str>| v.map(|x| HostValue::String(x.to_owned()));
    bd.set(
        "DeliveryCount",
        Some(HostValue::Int(i64::from(m.delivery_count))),
    )
    .set("DeadLetterSource", s(m.dead_letter_source))
    .set("LockToken", s(Some(m.lock_token)))
    .set("ExpiresAtUtc", Some(HostValue::DateTime(expires)))
    .set("ExpiresAt", Some(HostValue::DateTimeOffset(expires)))
    .set(
        "EnqueuedTimeUtc",
        Some(HostValue::DateTime(m.enqueued_time)),
    )
    .set(
        "EnqueuedTime",
        Some(HostValue::DateTimeOffset(m.enqueued_time)),
    )
    .set("MessageId", s(Some(m.message_id)))
    .set("ContentType", s(m.content_type))
    .set("ReplyTo", None)
    .set("SequenceNumber", Some(HostValue::Int(m.sequence_number)))
    .set("To", None)
    .set("Label", s(m.subject))
    .set("Subject", s(m.subject))
    .set("CorrelationId", s(m.correlation_id))
    .set("SessionId", s(m.session_id))
    .set("ApplicationProperties", Some(props.clone()))
    .set("UserProperties", Some(props));
    if let Some(text) = &text {
        bd.merge_json_body(text);
    }
    let mut data = Map::new();
    data.insert(binding.to_owned(), trigger.to_wire());
    json!({ "Data": data, "Metadata": bd.into_metadata(&sys(function, now)) })
}

/// `TimerInfo.ScheduleStatus`.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleStatus {
    pub last: DateTime<Utc>,
    pub next: DateTime<Utc>,
    pub last_updated: DateTime<Utc>,
}

/// Builds the body the host POSTs for a timer trigger.
pub fn timer_invocation(
    function: &str,
    binding: &str,
    status: Option<&ScheduleStatus>,
    is_past_due: bool,
    now: DateTime<Utc>,
) -> Value {
    let fmt = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::AutoSi, false);
    let status = status.map(|s| {
        json!({ "Last": fmt(&s.last), "Next": fmt(&s.next), "LastUpdated": fmt(&s.last_updated) })
    });
    let mut data = Map::new();
    data.insert(
        binding.to_owned(),
        json!({ "Schedule": { "AdjustForDST": true }, "ScheduleStatus": status, "IsPastDue": is_past_due }),
    );
    json!({ "Data": data, "Metadata": BindingData::default().into_metadata(&sys(function, now)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written `DateTime` forms are chrono's `%Y-%m-%dT%H:%M:%S` letter for letter,
    /// padding included, and "never" is .NET's largest `DateTime`.
    #[test]
    fn date_forms_match_the_host_patterns() {
        for text in [
            "2026-01-02T03:04:05Z",
            "2026-11-27T23:59:59.999Z",
            "1999-12-31T00:00:00Z",
            "0987-07-08T09:10:11Z",
        ] {
            let t = DateTime::parse_from_rfc3339(text).unwrap().to_utc();
            assert_eq!(
                HostValue::DateTime(t).to_wire(),
                Value::String(t.format("%Y-%m-%dT%H:%M:%S").to_string())
            );
            assert_eq!(
                HostValue::DateTimeOffset(t).to_wire(),
                Value::String(t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string())
            );
        }
        assert_eq!(
            HostValue::DateTime(never()).to_wire(),
            Value::String("9999-12-31T23:59:59".into())
        );
    }
}
