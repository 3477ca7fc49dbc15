//! Properties: decoding never panics on arbitrary input, the host encoder and the handler
//! decoder agree on every Service Bus message, and `host_string` undoes the host's string
//! encoding for every string.

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use functions_runtime::encode::{self, HostValue, ServiceBusDelivery};
use functions_runtime::triggers::{HttpTriggerRequest, ServiceBusMessage, TimerInfo};
use functions_runtime::wire::{InvocationRequest, host_string};

/// Any JSON value, a few levels deep.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        // Strings the decoders treat specially: quoted, base64-like, numeric.
        "\"[a-z\"\\\\]{0,8}\"?".prop_map(Value::String),
        "[A-Za-z0-9+/=]{0,12}".prop_map(Value::String),
        "-?[0-9]{1,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("DeliveryCount".to_owned()),
                    Just("MessageId".to_owned()),
                    Just("ScheduleStatus".to_owned()),
                    Just("Headers".to_owned()),
                    Just("Body".to_owned()),
                    Just("Url".to_owned()),
                    "[A-Za-z]{1,8}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn decode_everything(body: &[u8]) {
    if let Ok(req) = InvocationRequest::parse(body) {
        for binary in [true, false] {
            let _ = ServiceBusMessage::from_invocation(&req, "msg", binary);
        }
        let _ = TimerInfo::from_invocation(&req, "timer");
        let _ = HttpTriggerRequest::from_invocation(&req, "req");
        let _ = req.sys();
        let _ = req.meta_i64("DeliveryCount");
        let _ = req.meta_str("MessageId");
    }
}

/// Instants the host can represent (years 1970–9999), with sub-second parts.
fn arb_instant() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..253_402_300_799, 0u32..1_000_000_000)
        .prop_map(|(s, n)| DateTime::from_timestamp(s, n).expect("in range"))
}

fn arb_properties() -> impl Strategy<Value = Map<String, Value>> {
    let value = prop_oneof![
        any::<String>().prop_map(Value::String),
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        "[a-z]{0,6}".prop_map(|s| json!({ "nested": s })),
    ];
    prop::collection::btree_map(any::<String>(), value, 0..5).prop_map(|m| m.into_iter().collect())
}

#[derive(Clone, Debug)]
struct Message {
    body: Vec<u8>,
    message_id: String,
    delivery_count: u32,
    sequence_number: i64,
    lock_token: String,
    enqueued_time: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    content_type: Option<String>,
    correlation_id: Option<String>,
    session_id: Option<String>,
    subject: Option<String>,
    dead_letter_source: Option<String>,
    application_properties: Map<String, Value>,
}

impl Message {
    fn delivery(&self) -> ServiceBusDelivery<'_> {
        ServiceBusDelivery {
            body: &self.body,
            message_id: &self.message_id,
            delivery_count: self.delivery_count,
            sequence_number: self.sequence_number,
            lock_token: &self.lock_token,
            enqueued_time: self.enqueued_time,
            expires_at: self.expires_at,
            content_type: self.content_type.as_deref(),
            correlation_id: self.correlation_id.as_deref(),
            session_id: self.session_id.as_deref(),
            subject: self.subject.as_deref(),
            dead_letter_source: self.dead_letter_source.as_deref(),
            application_properties: self.application_properties.clone(),
        }
    }
}

fn arb_message(body: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Message> {
    let s = || proptest::option::of(any::<String>());
    (
        (
            body,
            any::<String>(),
            any::<u32>(),
            any::<i64>(),
            any::<u128>(),
        ),
        (arb_instant(), proptest::option::of(arb_instant())),
        (s(), s(), s(), s(), s()),
        arb_properties(),
    )
        .prop_map(
            |(
                (body, message_id, delivery_count, sequence_number, lock),
                (enqueued_time, expires_at),
                (content_type, correlation_id, session_id, subject, dead_letter_source),
                application_properties,
            )| Message {
                body,
                message_id,
                delivery_count,
                sequence_number,
                lock_token: uuid::Uuid::from_u128(lock).to_string(),
                enqueued_time,
                expires_at,
                content_type,
                correlation_id,
                session_id,
                subject,
                dead_letter_source,
                application_properties,
            },
        )
}

fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).expect("in range")
}

fn round_trip(m: &Message, binary: bool) -> ServiceBusMessage {
    let built =
        encode::service_bus_invocation("ProcessRun", "msg", binary, &m.delivery(), Utc::now());
    let bytes = serde_json::to_vec(&built).expect("serialisable");
    let req = InvocationRequest::parse(&bytes).expect("the encoder's output parses");
    ServiceBusMessage::from_invocation(&req, "msg", binary).expect("the encoder's output decodes")
}

fn assert_same_fields(got: &ServiceBusMessage, m: &Message) {
    assert_eq!(got.message_id, m.message_id);
    assert_eq!(got.delivery_count, m.delivery_count);
    assert_eq!(got.sequence_number, Some(m.sequence_number));
    assert_eq!(got.enqueued_time, Some(whole_seconds(m.enqueued_time)));
    assert_eq!(got.content_type, m.content_type);
    assert_eq!(got.correlation_id, m.correlation_id);
    assert_eq!(got.session_id, m.session_id);
    assert_eq!(got.subject, m.subject);
    assert_eq!(got.dead_letter_source, m.dead_letter_source);
    assert_eq!(got.application_properties, m.application_properties);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_everything(&body);
    }

    #[test]
    fn json_looking_text_never_panics(body in r#"[{}\[\]":,0-9a-zA-Z\\ .eE+-]{0,96}"#) {
        decode_everything(body.as_bytes());
    }

    #[test]
    fn arbitrary_invocation_shapes_never_panic(
        msg in arb_json(), req in arb_json(), timer in arb_json(), meta in arb_json(),
    ) {
        for envelope in [
            json!({ "Data": { "msg": msg, "req": req, "timer": timer }, "Metadata": meta }),
            json!({ "data": msg, "metadata": meta }),
        ] {
            decode_everything(&serde_json::to_vec(&envelope).unwrap());
        }
    }

    #[test]
    fn service_bus_binary_round_trip(m in arb_message(prop::collection::vec(any::<u8>(), 0..1024))) {
        let got = round_trip(&m, true);
        prop_assert_eq!(&got.body[..], &m.body[..]);
        assert_same_fields(&got, &m);
    }

    #[test]
    fn service_bus_string_round_trip(
        m in arb_message(
            any::<String>()
                .prop_filter("not a JSON object (merged)", |s| !s.trim().starts_with('{'))
                .prop_map(String::into_bytes),
        ),
    ) {
        let got = round_trip(&m, false);
        prop_assert_eq!(&got.body[..], &m.body[..]);
        assert_same_fields(&got, &m);
    }

    #[test]
    fn host_string_undoes_double_encoding(s in any::<String>()) {
        let wire = HostValue::String(s.clone()).to_wire();
        prop_assert_eq!(host_string(&wire), Some(s.clone()));
        // Strings that start with a quote are the interesting case.
        let quoted = format!("\"{s}");
        prop_assert_eq!(host_string(&HostValue::String(quoted.clone()).to_wire()), Some(quoted));
        let literal = Value::String(s).to_string();
        prop_assert_eq!(host_string(&HostValue::String(literal.clone()).to_wire()), Some(literal));
    }

    #[test]
    fn host_string_keeps_plain_values(s in "[^\"].*|") {
        // A single-encoded value (numbers, dates, base64) is returned as it is.
        prop_assert_eq!(host_string(&Value::String(s.clone())), Some(s));
    }

    #[test]
    fn host_ints_and_bools_come_back(i in any::<i64>(), b in any::<bool>()) {
        let req = InvocationRequest::parse(
            &serde_json::to_vec(&json!({
                "Metadata": { "i": HostValue::Int(i).to_wire(), "b": HostValue::Bool(b).to_wire() }
            }))
            .unwrap(),
        )
        .unwrap();
        prop_assert_eq!(req.meta_i64("i"), Ok(Some(i)));
        prop_assert_eq!(req.meta_str("b"), Some(b.to_string()));
    }
}

#[test]
fn host_string_of_non_strings() {
    assert_eq!(host_string(&json!(3)), Some("3".to_owned()));
    assert_eq!(host_string(&json!(false)), Some("false".to_owned()));
    assert_eq!(host_string(&json!({ "a": 1 })), None);
    assert_eq!(host_string(&json!(["a"])), None);
    assert_eq!(host_string(&Value::Null), None);
    // A quote that does not open a complete JSON string literal is plain text.
    assert_eq!(
        host_string(&json!("\"unterminated")),
        Some("\"unterminated".to_owned())
    );
    assert_eq!(
        host_string(&json!("\"a\" and more")),
        Some("\"a\" and more".to_owned())
    );
    assert_eq!(host_string(&json!("\"\"")), Some(String::new()));
}

proptest! {
    /// The fast typed decoder of the consumer hot path agrees with the generic one on
    /// everything the encoder can produce.
    #[test]
    fn fast_binary_decoder_agrees_with_the_generic_one(m in arb_message(prop::collection::vec(any::<u8>(), 0..256))) {
        let built = encode::service_bus_invocation("ProcessRun", "msg", true, &m.delivery(), Utc::now());
        let bytes = serde_json::to_vec(&built).expect("serialisable");
        let fast = ServiceBusMessage::from_binary_invocation(&bytes, "msg").expect("fast path decodes");
        let generic = ServiceBusMessage::from_invocation(&InvocationRequest::parse(&bytes).unwrap(), "msg", true).unwrap();
        prop_assert_eq!(&fast, &generic);
        assert_same_fields(&fast, &m);
        prop_assert_eq!(fast.body.as_ref(), m.body.as_slice());
    }

    /// On anything else both decoders accept or refuse alike (never a panic).
    #[test]
    fn fast_and_generic_decoders_accept_the_same_inputs(msg in arb_json(), meta in arb_json()) {
        let bytes = serde_json::to_vec(&json!({ "Data": { "msg": msg }, "Metadata": meta })).unwrap();
        let fast = ServiceBusMessage::from_binary_invocation(&bytes, "msg");
        let generic = InvocationRequest::parse(&bytes).and_then(|r| ServiceBusMessage::from_invocation(&r, "msg", true));
        prop_assert_eq!(fast.is_ok(), generic.is_ok(), "fast {:?} generic {:?}", fast, generic);
        if let (Ok(a), Ok(b)) = (fast, generic) {
            prop_assert_eq!(a, b);
        }
    }
}

#[test]
fn the_fast_decoder_falls_back_for_other_spellings() {
    // Lower-case sections and keys, numbers as JSON numbers (the documentation's shape),
    // base64 with line breaks: the generic decoder's leniency is kept.
    let body = json!({
        "data": { "msg": "aGVs\nbG8=" },
        "metadata": { "deliverycount": 2, "messageid": "\"m-1\"" }
    });
    let bytes = serde_json::to_vec(&body).unwrap();
    let m = ServiceBusMessage::from_binary_invocation(&bytes, "msg").unwrap();
    assert_eq!(m.body.as_ref(), b"hello");
    assert_eq!(m.delivery_count, 2);
    assert_eq!(m.message_id, "m-1");
    assert!(matches!(
        ServiceBusMessage::from_binary_invocation(b"{not json", "msg"),
        Err(functions_runtime::wire::DecodeError::Json(_))
    ));
}
