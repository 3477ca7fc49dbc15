use envelope::{Envelope, EnvelopeError};
use serde::Deserialize;

use crate::FULL;

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct RunCompleted {
    run_id: String,
    status: String,
}

#[test]
fn data_json_deserialises_on_demand() {
    let e = Envelope::parse(FULL.as_bytes()).unwrap();
    let data: RunCompleted = e.data_json().unwrap();
    assert_eq!(
        data,
        RunCompleted {
            run_id: "run_42".into(),
            status: "succeeded".into()
        }
    );
    assert!(matches!(
        e.data_json::<Vec<u8>>(),
        Err(EnvelopeError::DataDecode(_))
    ));
}

#[test]
fn data_json_without_data() {
    let e = Envelope::builder("/s", "t", "x").build().unwrap();
    assert!(matches!(
        e.data_json::<serde_json::Value>(),
        Err(EnvelopeError::NoData)
    ));
    assert!(e.data_bytes().is_none());
    assert!(e.data_raw().is_none());
}

#[test]
fn data_json_reads_binary_json() {
    let e = Envelope::builder("/s", "t", "x")
        .datacontenttype("application/json")
        .binary_data(br#"{"runId":"r","status":"s"}"#.to_vec())
        .unwrap();
    let data: RunCompleted = e.data_json().unwrap();
    assert_eq!(data.run_id, "r");
}

#[test]
fn data_bytes_by_content_type() {
    let json = Envelope::parse(FULL.as_bytes()).unwrap();
    assert_eq!(
        json.data_bytes().unwrap().as_ref(),
        json.data_raw().unwrap().get().as_bytes()
    );

    let text = Envelope::parse(
        br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","tenantid":"x",
            "datacontenttype":"text/plain","data":"line one\nline \"two\""}"#,
    )
    .unwrap();
    assert_eq!(
        text.data_bytes().unwrap().as_ref(),
        b"line one\nline \"two\""
    );

    // A JSON string under a JSON content type is JSON text, quotes included.
    let json_string = Envelope::parse(
        br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","tenantid":"x","data":"hi"}"#,
    )
    .unwrap();
    assert_eq!(json_string.data_bytes().unwrap().as_ref(), b"\"hi\"");
}
