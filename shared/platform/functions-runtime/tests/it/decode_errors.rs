//! Payloads a handler must refuse: each gives the specific `DecodeError`, never a panic, and
//! no error message echoes the payload.

use functions_runtime::triggers::{HttpTriggerRequest, ServiceBusMessage, TimerInfo};
use functions_runtime::wire::{DecodeError, InvocationRequest};

fn sb(payload: &str, binary: bool) -> Result<ServiceBusMessage, DecodeError> {
    let req = InvocationRequest::parse(payload.as_bytes()).expect("the envelope itself is valid");
    ServiceBusMessage::from_invocation(&req, "msg", binary)
}

#[test]
fn malformed_json() {
    for body in [
        &b""[..],
        b"{",
        b"{\"Data\":}",
        b"\xff\xfe",
        b"{\"Data\":{}} trailing",
        b"nul",
    ] {
        match InvocationRequest::parse(body) {
            Err(DecodeError::Json(_)) => {}
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(body)),
        }
    }
}

#[test]
fn body_that_is_not_an_object() {
    for body in ["[]", "[{\"Data\":{}}]", "\"Data\"", "42", "null", "true"] {
        assert_eq!(
            InvocationRequest::parse(body.as_bytes()),
            Err(DecodeError::NotAnObject),
            "{body}"
        );
    }
}

#[test]
fn sections_that_are_not_objects() {
    assert_eq!(
        InvocationRequest::parse(br#"{"Data":[{"msg":"x"}],"Metadata":{}}"#),
        Err(DecodeError::SectionNotObject("Data"))
    );
    assert_eq!(
        InvocationRequest::parse(br#"{"data":"x","Metadata":{}}"#),
        Err(DecodeError::SectionNotObject("Data"))
    );
    assert_eq!(
        InvocationRequest::parse(br#"{"Data":{},"Metadata":"{}"}"#),
        Err(DecodeError::SectionNotObject("Metadata"))
    );
    assert_eq!(
        InvocationRequest::parse(br#"{"Data":{},"metadata":7}"#),
        Err(DecodeError::SectionNotObject("Metadata"))
    );
}

#[test]
fn delivery_count_not_a_number() {
    let e = sb(
        r#"{"Data":{"msg":"aGk="},"Metadata":{"DeliveryCount":"abc","MessageId":"\"m\""}}"#,
        true,
    );
    assert_eq!(
        e,
        Err(DecodeError::WrongType {
            field: "DeliveryCount".into(),
            expected: "an integer"
        })
    );
    let e = sb(
        r#"{"Data":{"msg":"aGk="},"Metadata":{"DeliveryCount":"\"abc\"","MessageId":"\"m\""}}"#,
        true,
    );
    assert_eq!(
        e,
        Err(DecodeError::WrongType {
            field: "DeliveryCount".into(),
            expected: "an integer"
        })
    );
}

#[test]
fn delivery_count_out_of_range() {
    for count in ["-1", "4294967296"] {
        let payload = format!(
            r#"{{"Data":{{"msg":"aGk="}},"Metadata":{{"DeliveryCount":"{count}","MessageId":"\"m\""}}}}"#
        );
        assert_eq!(
            sb(&payload, true),
            Err(DecodeError::WrongType {
                field: "DeliveryCount".into(),
                expected: "a positive integer"
            }),
            "{count}"
        );
    }
}

#[test]
fn sequence_number_not_a_number() {
    let e = sb(
        r#"{"Data":{"msg":"aGk="},"Metadata":{"DeliveryCount":"1","MessageId":"\"m\"","SequenceNumber":"4x"}}"#,
        true,
    );
    assert_eq!(
        e,
        Err(DecodeError::WrongType {
            field: "SequenceNumber".into(),
            expected: "an integer"
        })
    );
}

#[test]
fn binary_body_not_base64() {
    for body in ["not base64!", "aGk", "a===", "\\u00e9t\\u00e9"] {
        let payload = format!(
            r#"{{"Data":{{"msg":"{body}"}},"Metadata":{{"DeliveryCount":"1","MessageId":"\"m\""}}}}"#
        );
        assert_eq!(
            sb(&payload, true),
            Err(DecodeError::Base64 {
                field: "msg".into()
            }),
            "{body}"
        );
    }
}

#[test]
fn binary_body_of_the_wrong_type() {
    for body in ["42", "{}", "[\"aGk=\"]", "true"] {
        let payload = format!(
            r#"{{"Data":{{"msg":{body}}},"Metadata":{{"DeliveryCount":"1","MessageId":"\"m\""}}}}"#
        );
        assert_eq!(
            sb(&payload, true),
            Err(DecodeError::WrongType {
                field: "msg".into(),
                expected: "a base64 string"
            }),
            "{body}"
        );
    }
}

#[test]
fn string_body_of_the_wrong_type() {
    let e = sb(
        r#"{"Data":{"msg":{"runId":"r1"}},"Metadata":{"DeliveryCount":"1","MessageId":"\"m\""}}"#,
        false,
    );
    assert_eq!(
        e,
        Err(DecodeError::WrongType {
            field: "msg".into(),
            expected: "a string"
        })
    );
}

#[test]
fn missing_binding_and_metadata() {
    assert_eq!(
        sb(
            r#"{"Data":{"other":"aGk="},"Metadata":{"DeliveryCount":"1","MessageId":"\"m\""}}"#,
            true
        ),
        Err(DecodeError::MissingBinding("msg".into()))
    );
    // A null binding is as good as missing.
    assert_eq!(
        sb(
            r#"{"Data":{"msg":null},"Metadata":{"DeliveryCount":"1","MessageId":"\"m\""}}"#,
            true
        ),
        Err(DecodeError::MissingBinding("msg".into()))
    );
    assert_eq!(
        sb(
            r#"{"Data":{"msg":"aGk="},"Metadata":{"MessageId":"\"m\""}}"#,
            true
        ),
        Err(DecodeError::MissingMetadata("DeliveryCount".into()))
    );
    assert_eq!(
        sb(
            r#"{"Data":{"msg":"aGk="},"Metadata":{"DeliveryCount":"1"}}"#,
            true
        ),
        Err(DecodeError::MissingMetadata("MessageId".into()))
    );
}

#[test]
fn merged_body_can_break_delivery_count() {
    // Without dataType a body field named like a metadata key replaces it: here the handler
    // cannot even read the delivery count any more, and says so precisely.
    let built = functions_runtime::encode::service_bus_invocation(
        "ProcessRun",
        "msg",
        false,
        &crate::example_delivery(br#"{"DeliveryCount":"many"}"#),
        crate::utc(2025, 1, 15, 10, 0, 0),
    );
    let req = InvocationRequest::parse(&serde_json::to_vec(&built).unwrap()).unwrap();
    assert_eq!(
        ServiceBusMessage::from_invocation(&req, "msg", false),
        Err(DecodeError::WrongType {
            field: "DeliveryCount".into(),
            expected: "an integer"
        })
    );
}

#[test]
fn timer_of_the_wrong_shape() {
    let req = InvocationRequest::parse(br#"{"Data":{"timer":"\"tick\""},"Metadata":{}}"#).unwrap();
    assert_eq!(
        TimerInfo::from_invocation(&req, "timer"),
        Err(DecodeError::WrongType {
            field: "timer".into(),
            expected: "a TimerInfo object"
        })
    );
    let req = InvocationRequest::parse(br#"{"Data":{},"Metadata":{}}"#).unwrap();
    assert_eq!(
        TimerInfo::from_invocation(&req, "timer"),
        Err(DecodeError::MissingBinding("timer".into()))
    );
}

#[test]
fn http_request_of_the_wrong_shape() {
    let cases: [(&str, DecodeError); 6] = [
        (
            r#""GET /""#,
            DecodeError::WrongType {
                field: "req".into(),
                expected: "an HTTP request object",
            },
        ),
        (
            r#"{"Method":"GET"}"#,
            DecodeError::WrongType {
                field: "Url".into(),
                expected: "a string",
            },
        ),
        (
            r#"{"Url":"http://x/api/a"}"#,
            DecodeError::WrongType {
                field: "Method".into(),
                expected: "a string",
            },
        ),
        (
            r#"{"Url":"http://x/api/a","Method":"GET","Query":"{}"}"#,
            DecodeError::WrongType {
                field: "Query".into(),
                expected: "an object",
            },
        ),
        (
            r#"{"Url":"http://x/api/a","Method":"GET","Headers":[["a","b"]]}"#,
            DecodeError::WrongType {
                field: "Headers".into(),
                expected: "an object",
            },
        ),
        (
            r#"{"Url":"http://x/api/a","Method":"POST","Headers":{"Content-Type":["application/octet-stream"]},"Body":"%%%"}"#,
            DecodeError::Base64 {
                field: "Body".into(),
            },
        ),
    ];
    for (req_json, expected) in cases {
        let payload = format!(r#"{{"Data":{{"req":{req_json}}},"Metadata":{{}}}}"#);
        let req = InvocationRequest::parse(payload.as_bytes()).unwrap();
        assert_eq!(
            HttpTriggerRequest::from_invocation(&req, "req"),
            Err(expected),
            "{req_json}"
        );
    }
}

#[test]
fn errors_do_not_echo_the_payload() {
    let secret = "sk-live-SECRET";
    let payload = format!(
        r#"{{"Data":{{"msg":"{secret}!"}},"Metadata":{{"DeliveryCount":"{secret}","MessageId":"\"m\""}}}}"#
    );
    for binary in [true, false] {
        let e = sb(&payload, binary).unwrap_err();
        assert!(!e.to_string().contains(secret), "{e}");
    }
    let e = InvocationRequest::parse(format!(r#"{{"Data":"{secret}"}}"#).as_bytes()).unwrap_err();
    assert!(!e.to_string().contains(secret), "{e}");
}
