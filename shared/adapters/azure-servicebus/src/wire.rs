//! What goes on the wire for a send: the single-message form (body + headers) or the batch
//! form (a JSON array).

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use chrono::{DateTime, Datelike, Utc};
use http::{HeaderMap, HeaderName, HeaderValue};
use ports::{OutgoingMessage, PortError, PropertyValue};
use serde::Serialize;

/// The content type of a batch send (no parameters: the service refuses `charset`).
pub(crate) const BATCH_CONTENT_TYPE: &str = "application/vnd.microsoft.servicebus.json";
/// Service Bus limits message, session and correlation ids to 128 characters.
const MAX_ID_CHARS: usize = 128;

/// A request body and the headers that go with it, built once and reused by every retry.
pub(crate) struct Payload {
    pub(crate) headers: HeaderMap,
    pub(crate) content_type: Option<HeaderValue>,
    pub(crate) body: Bytes,
}

impl Payload {
    /// One message whose properties fit in headers goes as itself; anything else as a batch.
    pub(crate) fn build(messages: &[OutgoingMessage]) -> ports::Result<Payload> {
        for message in messages {
            validate(message)?;
        }
        if let [message] = messages
            && let Some(single) = single(message)?
        {
            return Ok(single);
        }
        batch(messages)
    }
}

/// Checks what the service would refuse, so the caller gets `Invalid` without a request.
fn validate(m: &OutgoingMessage) -> ports::Result<()> {
    let id = |what: &str, value: &str| -> ports::Result<()> {
        let n = value.chars().count();
        if n == 0 || n > MAX_ID_CHARS {
            return Err(PortError::Invalid(format!(
                "a message's {what} must be 1 to {MAX_ID_CHARS} characters, not {n}"
            )));
        }
        Ok(())
    };
    id("MessageId", &m.message_id)?;
    if let Some(v) = &m.session_id {
        id("SessionId", v)?;
    }
    if let Some(v) = &m.correlation_id {
        id("CorrelationId", v)?;
    }
    if let Some(ct) = &m.content_type
        && !ct.chars().all(|c| (' '..='~').contains(&c))
    {
        return Err(PortError::Invalid(
            "a message's content type must be printable ASCII".to_owned(),
        ));
    }
    if m.time_to_live.is_some_and(|ttl| ttl.is_zero()) {
        return Err(PortError::Invalid(
            "a message's time to live must be positive".to_owned(),
        ));
    }
    if let Some(at) = m.scheduled_enqueue_time
        && !(1..=9999).contains(&at.year())
    {
        return Err(PortError::Invalid(
            "a scheduled enqueue time must be within years 1 to 9999".to_owned(),
        ));
    }
    for (name, value) in &m.application_properties {
        if name.is_empty() {
            return Err(PortError::Invalid(
                "application property names must not be empty".to_owned(),
            ));
        }
        if let PropertyValue::Float(f) = value
            && !f.is_finite()
        {
            return Err(PortError::Invalid(format!(
                "application property {name:?} is not a finite number"
            )));
        }
    }
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct BrokerProperties<'a> {
    message_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<&'a str>,
    /// The subject, under its REST (and legacy) name.
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduled_enqueue_time_utc: Option<String>,
    /// Seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    time_to_live: Option<f64>,
    /// Only in the batch form, where no header can carry it.
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<&'a str>,
}

impl<'a> BrokerProperties<'a> {
    fn of(m: &'a OutgoingMessage, with_content_type: bool) -> Self {
        BrokerProperties {
            message_id: &m.message_id,
            session_id: m.session_id.as_deref(),
            correlation_id: m.correlation_id.as_deref(),
            label: m.subject.as_deref(),
            scheduled_enqueue_time_utc: m.scheduled_enqueue_time.map(rfc1123),
            time_to_live: m.time_to_live.map(|d| d.as_secs_f64()),
            content_type: if with_content_type {
                m.content_type.as_deref()
            } else {
                None
            },
        }
    }
}

/// `Fri, 27 Nov 2026 04:53:51 GMT`: what `ScheduledEnqueueTimeUtc` takes (whole seconds).
pub(crate) fn rfc1123(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// The single-message form, or `None` when a property cannot travel as a header unchanged.
fn single(m: &OutgoingMessage) -> ports::Result<Option<Payload>> {
    let mut headers = HeaderMap::new();
    for (name, value) in &m.application_properties {
        let Some(name) = property_header_name(name) else {
            return Ok(None);
        };
        let Some(value) = property_header_value(value) else {
            return Ok(None);
        };
        headers.insert(name, value);
    }
    let broker = to_json(&BrokerProperties::of(m, false))?;
    let broker = HeaderValue::from_str(&ascii_json(&broker))
        .map_err(|_| PortError::Invalid("the broker properties are not a valid header".into()))?;
    headers.insert(HeaderName::from_static("brokerproperties"), broker);
    let content_type = match &m.content_type {
        // Validated above.
        Some(ct) => Some(
            HeaderValue::from_str(ct)
                .map_err(|_| PortError::Invalid("invalid content type".into()))?,
        ),
        None => None,
    };
    Ok(Some(Payload {
        headers,
        content_type,
        body: m.body.clone(),
    }))
}

/// Headers the HTTP stack or the service give a meaning of their own.
const RESERVED_HEADERS: [&str; 19] = [
    "accept",
    "accept-encoding",
    "authorization",
    "brokerproperties",
    "connection",
    "content-encoding",
    "content-length",
    "content-type",
    "cookie",
    "date",
    "expect",
    "host",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "via",
];

/// The header for a property name, when the name survives as one: HTTP sends header names in
/// lower case (HTTP/2 requires it, hyper's HTTP/1 writes them so), so only lower-case names
/// arrive as they were sent.
fn property_header_name(name: &str) -> Option<HeaderName> {
    let tchar =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty()
        || !name.chars().all(tchar)
        || RESERVED_HEADERS.contains(&name)
        || name.starts_with("x-ms-")
        || name.starts_with("proxy-")
    {
        return None;
    }
    HeaderName::from_bytes(name.as_bytes()).ok()
}

/// A property value as the REST API reads headers: a string in double quotes, an integer or
/// a boolean bare. Strings with quotes, backslashes, control or non-ASCII characters, and
/// floating-point numbers (whose header syntax the service does not document) go through
/// the batch form's JSON instead.
fn property_header_value(value: &PropertyValue) -> Option<HeaderValue> {
    let text = match value {
        PropertyValue::String(s) => {
            if !s
                .chars()
                .all(|c| (' '..='~').contains(&c) && c != '"' && c != '\\')
            {
                return None;
            }
            format!("\"{s}\"")
        }
        PropertyValue::Int(i) => i.to_string(),
        PropertyValue::Bool(b) => b.to_string(),
        PropertyValue::Float(_) => return None,
    };
    HeaderValue::from_str(&text).ok()
}

#[derive(Serialize)]
struct BatchItem<'a> {
    #[serde(rename = "Body")]
    body: Cow<'a, str>,
    #[serde(rename = "IsBodyBase64", skip_serializing_if = "is_false")]
    is_body_base64: bool,
    #[serde(rename = "BrokerProperties")]
    broker_properties: BrokerProperties<'a>,
    #[serde(rename = "UserProperties", skip_serializing_if = "no_properties")]
    user_properties: &'a BTreeMap<String, PropertyValue>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn no_properties(p: &&BTreeMap<String, PropertyValue>) -> bool {
    p.is_empty()
}

/// The batch form: one JSON array, so the messages are accepted or refused together.
fn batch(messages: &[OutgoingMessage]) -> ports::Result<Payload> {
    let items: Vec<BatchItem<'_>> = messages
        .iter()
        .map(|m| {
            // The documented body is a string: UTF-8 bodies (JSON, CloudEvents) go as they
            // are, anything else base64-encoded and flagged.
            let (body, is_body_base64) = match std::str::from_utf8(&m.body) {
                Ok(text) => (Cow::Borrowed(text), false),
                Err(_) => (Cow::Owned(STANDARD.encode(&m.body)), true),
            };
            BatchItem {
                body,
                is_body_base64,
                broker_properties: BrokerProperties::of(m, true),
                user_properties: &m.application_properties,
            }
        })
        .collect();
    let body = to_json(&items)?;
    Ok(Payload {
        headers: HeaderMap::new(),
        content_type: Some(HeaderValue::from_static(BATCH_CONTENT_TYPE)),
        body: Bytes::from(body),
    })
}

fn to_json<T: Serialize>(value: &T) -> ports::Result<String> {
    serde_json::to_string(value)
        .map_err(|e| PortError::Invalid(format!("the message cannot be encoded: {e}")))
}

/// JSON with every non-ASCII character escaped (`\uXXXX`, surrogate pairs above U+FFFF), so
/// it can travel in a header without a charset question. Non-ASCII characters only ever
/// occur inside JSON strings, where the escape means the same character.
fn ascii_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// Queue and topic names: letters, digits, `.`, `-`, `_` and `/` between segments, at most
/// 260 characters. Checked here so a bad name cannot reshape the request URL.
pub(crate) fn validate_entity(entity: &str) -> ports::Result<()> {
    let ok_chars = entity
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'));
    let ok_segments = entity
        .split('/')
        .all(|s| !s.is_empty() && s != "." && s != "..");
    if (1..=260).contains(&entity.len()) && ok_chars && ok_segments {
        Ok(())
    } else {
        Err(PortError::Invalid(
            "queue and topic names are 1-260 characters of letters, digits, '.', '-', '_' \
             and '/' between non-empty segments"
                .to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::TimeZone;

    use super::*;

    fn header<'a>(p: &'a Payload, name: &str) -> &'a str {
        p.headers[name].to_str().unwrap()
    }

    #[test]
    fn a_plain_message_goes_as_itself() {
        let m = OutgoingMessage::new("id-1", &b"{\"a\":1}"[..])
            .content_type("application/json")
            .subject("created")
            .correlation_id("corr")
            .session_id("s1")
            .property("kind", "x y")
            .property("count", PropertyValue::Int(-3))
            .property("flag", PropertyValue::Bool(true))
            .scheduled_at(Utc.with_ymd_and_hms(2026, 11, 27, 4, 53, 51).unwrap());
        let p = Payload::build(&[m]).unwrap();
        assert_eq!(&p.body[..], b"{\"a\":1}");
        assert_eq!(p.content_type.as_ref().unwrap(), "application/json");
        let broker: serde_json::Value =
            serde_json::from_str(header(&p, "brokerproperties")).unwrap();
        assert_eq!(
            broker,
            serde_json::json!({
                "MessageId": "id-1", "SessionId": "s1", "CorrelationId": "corr",
                "Label": "created", "ScheduledEnqueueTimeUtc": "Fri, 27 Nov 2026 04:53:51 GMT"
            })
        );
        assert_eq!(header(&p, "kind"), "\"x y\"");
        assert_eq!(header(&p, "count"), "-3");
        assert_eq!(header(&p, "flag"), "true");
    }

    #[test]
    fn properties_that_headers_would_change_force_the_batch_form() {
        for (name, value) in [
            ("tenantId", PropertyValue::from("t")),
            ("authorization", PropertyValue::from("t")),
            ("x-ms-anything", PropertyValue::from("t")),
            ("has space", PropertyValue::from("t")),
            ("quote", PropertyValue::from("say \"hi\"")),
            ("unicode", PropertyValue::from("ünï")),
            ("newline", PropertyValue::from("a\nb")),
            ("ratio", PropertyValue::Float(0.5)),
        ] {
            let m = OutgoingMessage::new("id", "body").property(name, value.clone());
            let p = Payload::build(&[m]).unwrap();
            assert_eq!(
                p.content_type.as_ref().unwrap(),
                BATCH_CONTENT_TYPE,
                "{name}"
            );
            let items: serde_json::Value = serde_json::from_slice(&p.body).unwrap();
            assert_eq!(
                items[0]["UserProperties"][name],
                serde_json::to_value(&value).unwrap()
            );
        }
    }

    #[test]
    fn batch_items_keep_everything() {
        let a = OutgoingMessage {
            time_to_live: Some(Duration::from_millis(1500)),
            ..OutgoingMessage::new("a", "text ✓").content_type("text/plain")
        };
        let b = OutgoingMessage::new("b", vec![0xff, 0x00]).property("n", PropertyValue::Int(1));
        let p = Payload::build(&[a, b]).unwrap();
        assert!(p.headers.is_empty());
        let items: serde_json::Value = serde_json::from_slice(&p.body).unwrap();
        assert_eq!(
            items,
            serde_json::json!([
                {"Body": "text ✓", "BrokerProperties": {"MessageId": "a", "TimeToLive": 1.5, "ContentType": "text/plain"}},
                {"Body": "/wA=", "IsBodyBase64": true, "BrokerProperties": {"MessageId": "b"}, "UserProperties": {"n": 1}}
            ])
        );
    }

    #[test]
    fn non_ascii_broker_properties_are_escaped() {
        let m = OutgoingMessage::new("ïd-😀", "x").subject("sübject");
        let p = Payload::build(&[m]).unwrap();
        let raw = header(&p, "brokerproperties");
        assert!(raw.is_ascii(), "{raw}");
        let broker: serde_json::Value = serde_json::from_str(raw).unwrap();
        assert_eq!(broker["MessageId"], "ïd-😀");
        assert_eq!(broker["Label"], "sübject");
    }

    #[test]
    fn invalid_messages_are_refused_before_sending() {
        let long = "x".repeat(129);
        let bad = [
            OutgoingMessage::new("", "x"),
            OutgoingMessage::new(long.as_str(), "x"),
            OutgoingMessage::new("id", "x").session_id(""),
            OutgoingMessage::new("id", "x").correlation_id(long.as_str()),
            OutgoingMessage::new("id", "x").content_type("text/ü"),
            OutgoingMessage::new("id", "x").property("", "v"),
            OutgoingMessage::new("id", "x").property("f", PropertyValue::Float(f64::NAN)),
            OutgoingMessage {
                time_to_live: Some(Duration::ZERO),
                ..OutgoingMessage::new("id", "x")
            },
        ];
        for m in bad {
            let r = Payload::build(std::slice::from_ref(&m));
            assert!(matches!(r, Err(PortError::Invalid(_))), "{m:?}");
        }
    }

    #[test]
    fn entity_names() {
        for ok in ["q", "integration-events", "a.b_c-d", "parent/child"] {
            validate_entity(ok).unwrap();
        }
        let long = "q".repeat(261);
        for bad in [
            "",
            "/q",
            "q/",
            "a//b",
            "a/../b",
            "q?x=1",
            "q#f",
            "ü",
            "a b",
            long.as_str(),
        ] {
            assert!(validate_entity(bad).is_err(), "{bad:?}");
        }
    }
}
