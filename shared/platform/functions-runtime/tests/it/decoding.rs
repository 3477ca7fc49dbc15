//! Decoding the exact payloads the host sends (§4.2–§4.5): Service Bus with and without
//! `dataType: binary`, the merged-body trap, non-forwarded HTTP, timers.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use functions_runtime::encode::{self, ScheduleStatus};
use functions_runtime::triggers::{
    HttpTriggerRequest, ServiceBusMessage, TimerInfo, parse_host_datetime,
};
use functions_runtime::wire::{InvocationRequest, Sys};

use crate::{
    HTTP_EXAMPLE, SB_BINARY_EXAMPLE, SB_EXAMPLE_BODY, SB_STRING_EXAMPLE, TIMER_EXAMPLE,
    TIMER_NULL_STATUS, example_delivery, object, utc,
};

fn parse(s: &str) -> InvocationRequest {
    InvocationRequest::parse(s.as_bytes()).expect("the host's payload parses")
}

// --- Service Bus, no dataType ----------------------------------------------------------------

#[test]
fn service_bus_string_example_decodes_every_field() {
    let req = parse(SB_STRING_EXAMPLE);
    let msg = ServiceBusMessage::from_invocation(&req, "msg", false).unwrap();
    // The double-encoded body string is decoded exactly once.
    assert_eq!(&msg.body[..], SB_EXAMPLE_BODY);
    assert_eq!(msg.message_id, "run-r1-step-2");
    // Numbers arrive as strings.
    assert_eq!(msg.delivery_count, 1);
    assert_eq!(msg.sequence_number, Some(42));
    // `DateTime` with seconds precision and no offset is UTC.
    assert_eq!(msg.enqueued_time, Some(utc(2025, 1, 15, 10, 0, 0)));
    assert_eq!(msg.content_type.as_deref(), Some("application/json"));
    assert_eq!(msg.correlation_id.as_deref(), Some("r1"));
    assert_eq!(msg.subject.as_deref(), Some("step"));
    assert_eq!(msg.session_id, None);
    assert_eq!(msg.dead_letter_source, None);
    assert_eq!(
        msg.application_properties,
        object(json!({ "tenant": "t1" }))
    );
    assert_eq!(msg.property("tenant").as_deref(), Some("t1"));
    assert_eq!(msg.property("missing"), None);
}

#[test]
fn service_bus_string_example_metadata_accessors() {
    let req = parse(SB_STRING_EXAMPLE);
    // The body's top-level properties were merged into Metadata, double-encoded.
    assert_eq!(req.meta_str("runId").as_deref(), Some("r1"));
    assert_eq!(req.meta_str("step").as_deref(), Some("2"));
    assert_eq!(req.meta_i64("step").unwrap(), Some(2));
    assert_eq!(
        req.meta_str("LockToken").as_deref(),
        Some("7a1d0c1e-5b64-4a8b-9f0e-0d5c1a2b3c4d")
    );
    // Plain (single-encoded) strings come back untouched.
    assert_eq!(
        req.meta_str("ExpiresAtUtc").as_deref(),
        Some("9999-12-31T23:59:59")
    );
    assert_eq!(
        req.meta_str("ExpiresAt").as_deref(),
        Some("9999-12-31T23:59:59+00:00")
    );
    assert_eq!(
        req.meta_str("ExpiresAt")
            .as_deref()
            .and_then(parse_host_datetime),
        Some(utc(9999, 12, 31, 23, 59, 59))
    );
    assert_eq!(
        req.meta_str("EnqueuedTime")
            .as_deref()
            .and_then(parse_host_datetime),
        Some(utc(2025, 1, 15, 10, 0, 0))
    );
    // Objects are objects, never strings.
    assert_eq!(
        req.meta_object("UserProperties"),
        Some(&object(json!({ "tenant": "t1" })))
    );
    assert_eq!(
        req.meta_object("MessageReceiver"),
        Some(&serde_json::Map::new())
    );
    assert_eq!(req.meta_str("ApplicationProperties"), None);
    assert_eq!(req.meta_object("DeliveryCount"), None);
    // Lookups are case-insensitive, like the host's binding data.
    assert_eq!(req.meta_str("messageid").as_deref(), Some("run-r1-step-2"));
    assert_eq!(req.meta_i64("deliverycount").unwrap(), Some(1));
    assert_eq!(req.meta_str("NoSuchKey"), None);
    assert_eq!(req.meta_i64("NoSuchKey").unwrap(), None);
    assert_eq!(
        req.sys(),
        Some(Sys {
            method_name: "ProcessRun".into(),
            utc_now: "2025-01-15T10:00:01.1234567Z".into(),
            rand_guid: "0f4737ff-5b49-4e1d-9639-e51aaca81bc6".into(),
        })
    );
}

#[test]
fn encoder_reproduces_the_string_example() {
    let built = encode::service_bus_invocation(
        "ProcessRun",
        "msg",
        false,
        &example_delivery(SB_EXAMPLE_BODY),
        utc(2025, 1, 15, 10, 0, 1),
    );
    let expected: Value = serde_json::from_str(SB_STRING_EXAMPLE).unwrap();
    assert_eq!(built["Data"], expected["Data"]);
    let mut got = object(built["Metadata"].clone());
    let mut want = object(expected["Metadata"].clone());
    let got_sys = got.remove("sys").expect("sys is always sent");
    want.remove("sys");
    assert_eq!(got, want);
    assert_eq!(got_sys["MethodName"], "ProcessRun");
    assert!(uuid::Uuid::parse_str(got_sys["RandGuid"].as_str().unwrap()).is_ok());
}

// --- Service Bus, dataType binary ------------------------------------------------------------

#[test]
fn service_bus_binary_example_gives_exact_bytes_and_no_merge() {
    assert_eq!(
        STANDARD.encode(SB_EXAMPLE_BODY),
        "eyJydW5JZCI6InIxIiwic3RlcCI6Mn0="
    );
    let req = parse(SB_BINARY_EXAMPLE);
    let msg = ServiceBusMessage::from_invocation(&req, "msg", true).unwrap();
    assert_eq!(&msg.body[..], SB_EXAMPLE_BODY);
    assert_eq!(msg.message_id, "run-r1-step-2");
    assert_eq!(msg.delivery_count, 1);
    assert_eq!(req.meta_str("runId"), None);
    assert_eq!(req.meta_str("step"), None);
}

#[test]
fn encoder_reproduces_the_binary_example() {
    let built = encode::service_bus_invocation(
        "ProcessRun",
        "msg",
        true,
        &example_delivery(SB_EXAMPLE_BODY),
        utc(2025, 1, 15, 10, 0, 1),
    );
    let expected: Value = serde_json::from_str(SB_BINARY_EXAMPLE).unwrap();
    assert_eq!(built["Data"], expected["Data"]);
    let mut got = object(built["Metadata"].clone());
    let mut want = object(expected["Metadata"].clone());
    got.remove("sys");
    want.remove("sys");
    assert_eq!(got, want);
}

#[test]
fn binary_body_keeps_non_utf8_bytes() {
    let body: &[u8] = &[0xff, 0xfe, 0x00, b'{', 0x80, b'"', 0xc3, 0x28, b'\n'];
    let built = encode::service_bus_invocation(
        "ProcessRun",
        "msg",
        true,
        &example_delivery(body),
        utc(2025, 1, 15, 10, 0, 1),
    );
    assert_eq!(built["Data"]["msg"], STANDARD.encode(body));
    let bytes = serde_json::to_vec(&built).unwrap();
    let req = InvocationRequest::parse(&bytes).unwrap();
    let msg = ServiceBusMessage::from_invocation(&req, "msg", true).unwrap();
    assert_eq!(&msg.body[..], body);

    // Without dataType the host decodes the body as text: the invalid bytes are lost.
    let lossy = encode::service_bus_invocation(
        "ProcessRun",
        "msg",
        false,
        &example_delivery(body),
        utc(2025, 1, 15, 10, 0, 1),
    );
    let req = InvocationRequest::parse(&serde_json::to_vec(&lossy).unwrap()).unwrap();
    let msg = ServiceBusMessage::from_invocation(&req, "msg", false).unwrap();
    assert_ne!(&msg.body[..], body);
    assert!(std::str::from_utf8(&msg.body).unwrap().contains('\u{fffd}'));
}

#[test]
fn binary_body_with_whitespace_in_base64_is_accepted() {
    // .NET-style line-wrapped base64 still decodes to the exact bytes.
    let payload = SB_BINARY_EXAMPLE.replace(
        "eyJydW5JZCI6InIxIiwic3RlcCI6Mn0=",
        "eyJydW5JZCI6\\r\\nInIxIiwic3RlcCI6Mn0=",
    );
    let req = parse(&payload);
    let msg = ServiceBusMessage::from_invocation(&req, "msg", true).unwrap();
    assert_eq!(&msg.body[..], SB_EXAMPLE_BODY);
}

// --- The merged-body trap --------------------------------------------------------------------

const EVIL_BODY: &[u8] =
    br#"{"MessageId":"evil","runId":"r9","tags":["x"],"nested":{"a":1},"flag":true,"n":2}"#;

#[test]
fn string_trigger_body_overwrites_message_id() {
    let built = encode::service_bus_invocation(
        "ProcessRun",
        "msg",
        false,
        &example_delivery(EVIL_BODY),
        utc(2025, 1, 15, 10, 0, 1),
    );
    let meta = &built["Metadata"];
    assert_eq!(meta["MessageId"], "\"evil\"");
    assert_eq!(meta["runId"], "\"r9\"");
    // Scalars become strings and are then double-encoded; objects stay objects; arrays are
    // not merged.
    assert_eq!(meta["flag"], "\"True\"");
    assert_eq!(meta["n"], "\"2\"");
    assert_eq!(meta["nested"], json!({ "a": 1 }));
    assert!(meta.get("tags").is_none());

    let req = InvocationRequest::parse(&serde_json::to_vec(&built).unwrap()).unwrap();
    let msg = ServiceBusMessage::from_invocation(&req, "msg", false).unwrap();
    assert_eq!(
        msg.message_id, "evil",
        "the body replaced the broker's MessageId"
    );
    assert_eq!(&msg.body[..], EVIL_BODY);
}

#[test]
fn binary_trigger_is_immune_to_the_merge() {
    let built = encode::service_bus_invocation(
        "ProcessRun",
        "msg",
        true,
        &example_delivery(EVIL_BODY),
        utc(2025, 1, 15, 10, 0, 1),
    );
    let meta = &built["Metadata"];
    assert_eq!(meta["MessageId"], "\"run-r1-step-2\"");
    assert!(meta.get("runId").is_none());
    assert!(meta.get("flag").is_none());
    let req = InvocationRequest::parse(&serde_json::to_vec(&built).unwrap()).unwrap();
    let msg = ServiceBusMessage::from_invocation(&req, "msg", true).unwrap();
    assert_eq!(msg.message_id, "run-r1-step-2");
    assert_eq!(&msg.body[..], EVIL_BODY);
}

#[test]
fn merge_ignores_bodies_that_are_not_json_objects() {
    for body in [&b"[1,2]"[..], b"hello", b"\"quoted\"", b"{not json", b"42"] {
        let built = encode::service_bus_invocation(
            "ProcessRun",
            "msg",
            false,
            &example_delivery(body),
            utc(2025, 1, 15, 10, 0, 1),
        );
        let meta = object(built["Metadata"].clone());
        let reference = object(
            encode::service_bus_invocation(
                "ProcessRun",
                "msg",
                false,
                &example_delivery(b"plain"),
                utc(2025, 1, 15, 10, 0, 1),
            )["Metadata"]
                .clone(),
        );
        let keys = |m: &serde_json::Map<String, Value>| m.keys().cloned().collect::<Vec<_>>();
        assert_eq!(
            keys(&meta),
            keys(&reference),
            "body {:?}",
            String::from_utf8_lossy(body)
        );
        let req = InvocationRequest::parse(&serde_json::to_vec(&built).unwrap()).unwrap();
        let msg = ServiceBusMessage::from_invocation(&req, "msg", false).unwrap();
        assert_eq!(&msg.body[..], body);
    }
}

#[test]
fn body_that_is_a_json_string_literal_is_decoded_only_once() {
    // The message body is itself `"hello"` (with the quotes): the wire value is encoded
    // twice on top of that, and only the host's layer is removed.
    let payload = r#"{"Data":{"msg":"\"\\\"hello\\\"\""},"Metadata":{"DeliveryCount":"1","MessageId":"\"m\""}}"#;
    let req = parse(payload);
    let msg = ServiceBusMessage::from_invocation(&req, "msg", false).unwrap();
    assert_eq!(&msg.body[..], b"\"hello\"");
}

#[test]
fn documented_single_encoding_and_numbers_are_tolerated() {
    // What the official doc shows (not what the host sends): accept it anyway.
    let payload = r#"{"Data":{"msg":"{ message: \"Message sent\" }"},"Metadata":{"DeliveryCount":3,"MessageId":"plain-id","SequenceNumber":7}}"#;
    let req = parse(payload);
    let msg = ServiceBusMessage::from_invocation(&req, "msg", false).unwrap();
    assert_eq!(&msg.body[..], b"{ message: \"Message sent\" }");
    assert_eq!(msg.delivery_count, 3);
    assert_eq!(msg.sequence_number, Some(7));
    assert_eq!(msg.message_id, "plain-id");
}

#[test]
fn user_properties_are_the_fallback_and_label_the_fallback_subject() {
    let payload = r#"{"Data":{"msg":"aGk="},"Metadata":{"DeliveryCount":"2","MessageId":"\"m\"","Label":"\"old\"","UserProperties":{"attempt":1,"ok":true,"who":"x"}}}"#;
    let req = parse(payload);
    let msg = ServiceBusMessage::from_invocation(&req, "msg", true).unwrap();
    assert_eq!(&msg.body[..], b"hi");
    assert_eq!(msg.subject.as_deref(), Some("old"));
    assert_eq!(msg.property("attempt").as_deref(), Some("1"));
    assert_eq!(msg.property("ok").as_deref(), Some("true"));
    assert_eq!(msg.property("who").as_deref(), Some("x"));
    assert_eq!(msg.sequence_number, None);
    assert_eq!(msg.enqueued_time, None);
}

#[test]
fn application_property_values_are_not_double_decoded() {
    // Properties arrive inside a real JSON object, so they are not encoded a second time:
    // a value that happens to be a quoted string must keep its quotes.
    let payload = r#"{"Data":{"msg":"aGk="},"Metadata":{"DeliveryCount":"1","MessageId":"\"m\"","ApplicationProperties":{"etag":"\"v1\""}}}"#;
    let msg = ServiceBusMessage::from_invocation(&parse(payload), "msg", true).unwrap();
    assert_eq!(msg.property("etag").as_deref(), Some("\"v1\""));
}

#[test]
fn session_and_dead_letter_fields_round_trip_through_the_encoder() {
    let mut d = example_delivery(b"x");
    d.session_id = Some("tenant-7");
    d.dead_letter_source = Some("runs");
    d.delivery_count = 10;
    d.expires_at = Some(utc(2025, 1, 16, 10, 0, 0));
    let built =
        encode::service_bus_invocation("ProcessRun", "msg", true, &d, utc(2025, 1, 15, 10, 0, 1));
    assert_eq!(built["Metadata"]["SessionId"], "\"tenant-7\"");
    assert_eq!(built["Metadata"]["DeadLetterSource"], "\"runs\"");
    assert_eq!(built["Metadata"]["DeliveryCount"], "10");
    assert_eq!(built["Metadata"]["ExpiresAtUtc"], "2025-01-16T10:00:00");
    assert_eq!(built["Metadata"]["ExpiresAt"], "2025-01-16T10:00:00+00:00");
    // Unset strings are omitted, never sent as null.
    assert!(built["Metadata"].get("ReplyTo").is_none());
    assert!(built["Metadata"].get("To").is_none());
    let req = InvocationRequest::parse(&serde_json::to_vec(&built).unwrap()).unwrap();
    let msg = ServiceBusMessage::from_invocation(&req, "msg", true).unwrap();
    assert_eq!(msg.session_id.as_deref(), Some("tenant-7"));
    assert_eq!(msg.dead_letter_source.as_deref(), Some("runs"));
    assert_eq!(msg.delivery_count, 10);
}

#[test]
fn datetime_values_have_seconds_precision() {
    let mut d = example_delivery(b"x");
    d.enqueued_time = utc(2025, 1, 15, 10, 0, 0) + chrono::TimeDelta::milliseconds(987);
    let built =
        encode::service_bus_invocation("ProcessRun", "msg", true, &d, utc(2025, 1, 15, 10, 0, 1));
    assert_eq!(built["Metadata"]["EnqueuedTimeUtc"], "2025-01-15T10:00:00");
    assert_eq!(
        built["Metadata"]["EnqueuedTime"],
        "2025-01-15T10:00:00+00:00"
    );
    let req = InvocationRequest::parse(&serde_json::to_vec(&built).unwrap()).unwrap();
    let msg = ServiceBusMessage::from_invocation(&req, "msg", true).unwrap();
    assert_eq!(msg.enqueued_time, Some(utc(2025, 1, 15, 10, 0, 0)));
}

// --- Section names ---------------------------------------------------------------------------

#[test]
fn section_names_are_case_insensitive() {
    let payload = r#"{"data":{"msg":"aGk="},"METADATA":{"deliverycount":"4","messageid":"\"m1\""},"Extra":[1,2]}"#;
    let req = parse(payload);
    assert!(req.data.contains_key("msg"));
    let msg = ServiceBusMessage::from_invocation(&req, "msg", true).unwrap();
    assert_eq!(&msg.body[..], b"hi");
    assert_eq!(msg.delivery_count, 4);
    assert_eq!(msg.message_id, "m1");
    // The binding name is case-insensitive too.
    assert!(req.data("MSG").is_ok());
}

#[test]
fn missing_or_null_sections_are_empty() {
    for payload in [
        r#"{}"#,
        r#"{"Data":null,"Metadata":null}"#,
        r#"{"Data":{}}"#,
    ] {
        let req = parse(payload);
        assert!(req.data.is_empty(), "{payload}");
        assert!(req.metadata.is_empty(), "{payload}");
        assert_eq!(req.sys(), None);
    }
}

// --- HTTP, non-forwarded ---------------------------------------------------------------------

#[test]
fn http_example_decodes() {
    let req = parse(HTTP_EXAMPLE);
    let http = HttpTriggerRequest::from_invocation(&req, "req").unwrap();
    assert_eq!(http.url, "http://localhost:7071/api/runs/r1?dry=1");
    assert_eq!(http.method, "POST");
    assert_eq!(http.query.get("dry").map(String::as_str), Some("1"));
    assert_eq!(http.query.len(), 1);
    // Data headers are arrays of strings.
    assert_eq!(
        http.headers["Content-Type"],
        vec!["application/json".to_owned()]
    );
    assert_eq!(http.headers["Content-Length"], vec!["13".to_owned()]);
    assert_eq!(http.headers["Host"], vec!["localhost:7071".to_owned()]);
    assert_eq!(http.params.get("runId"), Some(&Some("r1".to_owned())));
    // A JSON body is sent as text, not base64.
    assert_eq!(http.body.as_deref(), Some(&b"{\"steps\":[1]}"[..]));
    // Metadata: route and query values double-encoded; headers as single strings.
    assert_eq!(req.meta_str("runId").as_deref(), Some("r1"));
    assert_eq!(req.meta_str("dry").as_deref(), Some("1"));
    assert_eq!(req.meta_object("Headers").unwrap()["Content-Length"], "13");
    // `steps` is an array: not merged.
    assert_eq!(req.meta_str("steps"), None);
    assert_eq!(req.sys().unwrap().method_name, "StartRun");
}

#[test]
fn http_body_is_absent_without_content() {
    let payload = r#"{"Data":{"req":{"Url":"http://localhost:7071/api/runs","Method":"GET","Query":{},"Headers":{"Host":["localhost:7071"]},"Identities":[]}},"Metadata":{}}"#;
    let http = HttpTriggerRequest::from_invocation(&parse(payload), "req").unwrap();
    assert_eq!(http.method, "GET");
    assert_eq!(http.body, None);
    assert!(http.params.is_empty());
    assert!(http.query.is_empty());
}

#[test]
fn http_octet_stream_and_multipart_bodies_are_base64() {
    let bytes: &[u8] = &[0x00, 0x01, 0xff, 0xfe, b'P', b'K', 0x03, 0x04];
    for ct in [
        "application/octet-stream",
        "Application/Octet-Stream",
        "multipart/form-data; boundary=x",
    ] {
        let payload = json!({
            "Data": { "req": {
                "Url": "http://localhost:7071/api/upload", "Method": "POST", "Query": {},
                "Headers": { "content-type": [ct], "Content-Length": [bytes.len().to_string()] },
                "Body": STANDARD.encode(bytes),
            } },
            "Metadata": {},
        });
        let req = InvocationRequest::parse(&serde_json::to_vec(&payload).unwrap()).unwrap();
        let http = HttpTriggerRequest::from_invocation(&req, "req").unwrap();
        assert_eq!(http.body.as_deref(), Some(bytes), "{ct}");
    }
    // Any other type is text, even if it looks like base64.
    let payload = json!({
        "Data": { "req": {
            "Url": "http://localhost:7071/api/upload", "Method": "POST",
            "Headers": { "Content-Type": ["text/plain"] }, "Body": "AAEC",
        } },
        "Metadata": {},
    });
    let req = InvocationRequest::parse(&serde_json::to_vec(&payload).unwrap()).unwrap();
    let http = HttpTriggerRequest::from_invocation(&req, "req").unwrap();
    assert_eq!(http.body.as_deref(), Some(&b"AAEC"[..]));
}

#[test]
fn http_header_query_and_route_values_are_taken_verbatim() {
    // Values inside the request object are not encoded a second time: an ETag keeps its
    // quotes, a query value in quotes keeps them, repeated headers keep every value.
    let payload = r#"{"Data":{"req":{
        "Url":"http://localhost:7071/api/items/%22a%22?q=%22x%22",
        "Method":"PUT",
        "Query":{"q":"\"x\"","multi":"a,b"},
        "Headers":{"If-Match":["\"v1\""],"Accept":["text/plain","application/json"]},
        "Params":{"id":"\"a\"","rest":null}
    }},"Metadata":{}}"#;
    let http = HttpTriggerRequest::from_invocation(&parse(payload), "req").unwrap();
    assert_eq!(http.headers["If-Match"], vec!["\"v1\"".to_owned()]);
    assert_eq!(
        http.headers["Accept"],
        vec!["text/plain".to_owned(), "application/json".to_owned()]
    );
    assert_eq!(http.query["q"], "\"x\"");
    assert_eq!(http.query["multi"], "a,b");
    assert_eq!(http.params["id"].as_deref(), Some("\"a\""));
    // An unmatched catch-all is sent as null.
    assert_eq!(http.params["rest"], None);
}

// --- Timer -----------------------------------------------------------------------------------

#[test]
fn timer_example_with_schedule_status() {
    let req = parse(TIMER_EXAMPLE);
    let t = TimerInfo::from_invocation(&req, "timer").unwrap();
    assert!(!t.is_past_due);
    assert_eq!(t.last, Some(utc(2025, 1, 15, 9, 55, 0)));
    assert_eq!(t.next, Some(utc(2025, 1, 15, 10, 5, 0)));
    assert_eq!(req.sys().unwrap().method_name, "Nightly");
    assert_eq!(req.metadata.len(), 1, "a timer sends only sys");
}

#[test]
fn timer_with_null_schedule_status() {
    let t = TimerInfo::from_invocation(&parse(TIMER_NULL_STATUS), "timer").unwrap();
    assert!(t.is_past_due);
    assert_eq!(t.last, None);
    assert_eq!(t.next, None);
}

#[test]
fn timer_encoder_matches_the_decoder() {
    let status = ScheduleStatus {
        last: utc(2025, 1, 15, 9, 55, 0),
        next: utc(2025, 1, 15, 10, 5, 0),
        last_updated: utc(2025, 1, 15, 10, 0, 0),
    };
    let built = encode::timer_invocation(
        "Nightly",
        "timer",
        Some(&status),
        true,
        utc(2025, 1, 15, 10, 0, 0),
    );
    assert_eq!(
        built["Data"]["timer"]["Schedule"],
        json!({ "AdjustForDST": true })
    );
    assert_eq!(built["Data"]["timer"]["IsPastDue"], true);
    let req = InvocationRequest::parse(&serde_json::to_vec(&built).unwrap()).unwrap();
    let t = TimerInfo::from_invocation(&req, "timer").unwrap();
    assert!(t.is_past_due);
    assert_eq!(t.last, Some(status.last));
    assert_eq!(t.next, Some(status.next));
    assert_eq!(req.sys().unwrap().method_name, "Nightly");

    let none =
        encode::timer_invocation("Nightly", "timer", None, false, utc(2025, 1, 15, 10, 0, 0));
    assert_eq!(none["Data"]["timer"]["ScheduleStatus"], Value::Null);
    let req = InvocationRequest::parse(&serde_json::to_vec(&none).unwrap()).unwrap();
    let t = TimerInfo::from_invocation(&req, "timer").unwrap();
    assert!(!t.is_past_due);
    assert_eq!((t.last, t.next), (None, None));
}

#[test]
fn timer_is_past_due_as_string() {
    let payload = r#"{"Data":{"timer":{"ScheduleStatus":null,"IsPastDue":"True"}},"Metadata":{}}"#;
    assert!(
        TimerInfo::from_invocation(&parse(payload), "timer")
            .unwrap()
            .is_past_due
    );
}

#[test]
fn host_datetime_formats() {
    assert_eq!(
        parse_host_datetime("2025-01-15T10:00:00"),
        Some(utc(2025, 1, 15, 10, 0, 0))
    );
    assert_eq!(
        parse_host_datetime("2025-01-15T10:00:00+00:00"),
        Some(utc(2025, 1, 15, 10, 0, 0))
    );
    assert_eq!(
        parse_host_datetime("2025-01-15T12:00:00+02:00"),
        Some(utc(2025, 1, 15, 10, 0, 0))
    );
    assert_eq!(
        parse_host_datetime("2025-01-15T10:00:00.1234567Z"),
        Some(utc(2025, 1, 15, 10, 0, 0) + chrono::TimeDelta::nanoseconds(123_456_700))
    );
    assert_eq!(parse_host_datetime("15/01/2025 10:00:00"), None);
    assert_eq!(parse_host_datetime(""), None);
}
