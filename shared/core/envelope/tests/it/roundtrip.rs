use envelope::{Data, Envelope, ExtensionValue, TraceParent};

use crate::{FULL, MINIMAL};

#[test]
fn full_envelope_round_trips_with_exact_data_bytes() {
    let first = Envelope::parse(FULL.as_bytes()).unwrap();
    let bytes = first.to_vec();
    let second = Envelope::parse(&bytes).unwrap();
    assert_eq!(first, second);
    assert_eq!(bytes, second.to_vec());

    // The data member comes back byte for byte, whitespace and escapes included.
    let start = FULL.find("{ \"runId\"").unwrap();
    let end = FULL.rfind('}').unwrap();
    let original_data = FULL[start..end].trim_end();
    assert_eq!(first.data_raw().unwrap().get(), original_data);
    assert_eq!(second.data_raw().unwrap().get(), original_data);
    let out = String::from_utf8(bytes).unwrap();
    assert!(out.contains(original_data));
}

#[test]
fn accessors_return_the_attributes() {
    let e = Envelope::parse(FULL.as_bytes()).unwrap();
    assert_eq!(e.specversion(), "1.0");
    assert_eq!(e.id(), "evt_0190b6f2-7c3e-7d4a-9b1e-3f2a1c0d9e8f");
    assert_eq!(e.source(), "/integration/github");
    assert_eq!(e.event_type(), "connectsoft.integration.run.completed.v1");
    assert_eq!(e.subject(), Some("run_42"));
    assert_eq!(
        e.time().unwrap().to_rfc3339(),
        "2024-05-01T12:30:05.120+00:00"
    );
    assert_eq!(e.timestamp().unwrap().precision(), 3);
    assert_eq!(e.datacontenttype(), Some("application/json"));
    assert_eq!(
        e.dataschema(),
        Some("https://schemas.example.com/run-completed.v1.json")
    );
    assert_eq!(e.tenant_id(), "tenant-42");
    assert_eq!(
        e.traceparent().unwrap().trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(e.correlation_id(), Some("corr-1"));
    assert_eq!(e.causation_id(), Some("evt_cause"));
    assert!(e.extensions().is_empty());
}

#[test]
fn output_member_order_is_stable() {
    let e = Envelope::parse(FULL.as_bytes()).unwrap();
    let out = String::from_utf8(e.to_vec()).unwrap();
    let order = [
        "\"specversion\"",
        "\"id\"",
        "\"source\"",
        "\"type\"",
        "\"subject\"",
        "\"time\"",
        "\"datacontenttype\"",
        "\"dataschema\"",
        "\"tenantid\"",
        "\"traceparent\"",
        "\"correlationid\"",
        "\"causationid\"",
        "\"data\"",
    ];
    let positions: Vec<usize> = order.iter().map(|k| out.find(k).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{out}");
    // serde's Serialize writes the same bytes as to_vec.
    assert_eq!(serde_json::to_string(&e).unwrap(), out);
}

#[test]
fn minimal_envelope_round_trips() {
    let e = Envelope::parse(MINIMAL.as_bytes()).unwrap();
    assert_eq!(e.to_vec(), MINIMAL.as_bytes());
    assert_eq!(e.time(), None);
    assert_eq!(e.datacontenttype(), None);
    assert_eq!(e.content_type(), "application/json");
    assert!(e.data().is_none());
}

#[test]
fn unknown_extensions_are_preserved() {
    let input = r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","tenantid":"t1",
        "zeta":"last","comexampleextension1":"value","count":-42,"flag":true,"off":false,
        "partitionkey":"p1","dropped":null}"#;
    let e = Envelope::parse(input.as_bytes()).unwrap();
    assert_eq!(
        e.extension("comexampleextension1"),
        Some(&ExtensionValue::String("value".into()))
    );
    assert_eq!(e.extension("count"), Some(&ExtensionValue::Integer(-42)));
    assert_eq!(e.extension("flag"), Some(&ExtensionValue::Boolean(true)));
    assert_eq!(e.extension("off"), Some(&ExtensionValue::Boolean(false)));
    assert_eq!(e.extension("dropped"), None);
    assert_eq!(e.extensions().len(), 6);

    let out = String::from_utf8(e.to_vec()).unwrap();
    assert!(out.ends_with(
        r#""comexampleextension1":"value","count":-42,"flag":true,"off":false,"partitionkey":"p1","zeta":"last"}"#
    ), "{out}");
    assert_eq!(Envelope::parse(out.as_bytes()).unwrap(), e);
}

#[test]
fn long_extension_names_from_elsewhere_are_kept() {
    let input = r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","tenantid":"t1",
        "averyveryverylongextensionname":"x"}"#;
    let e = Envelope::parse(input.as_bytes()).unwrap();
    assert!(e.extension("averyveryverylongextensionname").is_some());
}

#[test]
fn data_base64_round_trips() {
    let input = r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","tenantid":"t1",
        "datacontenttype":"application/octet-stream","data_base64":"AAECA/+AfwA="}"#;
    let e = Envelope::parse(input.as_bytes()).unwrap();
    assert_eq!(
        e.data(),
        Some(&Data::Binary(vec![0, 1, 2, 3, 255, 128, 127, 0]))
    );
    assert_eq!(
        e.data_bytes().unwrap().as_ref(),
        &[0, 1, 2, 3, 255, 128, 127, 0]
    );
    assert!(e.data_raw().is_none());
    let out = e.to_vec();
    assert!(String::from_utf8_lossy(&out).contains(r#""data_base64":"AAECA/+AfwA=""#));
    assert_eq!(Envelope::parse(&out).unwrap(), e);
}

#[test]
fn null_members_are_absent() {
    let input = r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","tenantid":"t1",
        "subject":null,"time":null,"traceparent":null,"data":null,"data_base64":null}"#;
    let e = Envelope::parse(input.as_bytes()).unwrap();
    assert_eq!(e, Envelope::parse(MINIMAL.as_bytes()).unwrap());
}

#[test]
fn time_keeps_precision_and_normalises_to_utc() {
    let input = r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","tenantid":"t1",
        "time":"2024-05-01T14:30:05.123456+02:00"}"#;
    let e = Envelope::parse(input.as_bytes()).unwrap();
    let out = String::from_utf8(e.to_vec()).unwrap();
    assert!(
        out.contains(r#""time":"2024-05-01T12:30:05.123456Z""#),
        "{out}"
    );
    assert_eq!(Envelope::parse(out.as_bytes()).unwrap(), e);
}

#[test]
fn serde_deserialize_goes_through_parse() {
    #[derive(Debug, serde::Deserialize)]
    struct Row {
        event: Envelope,
    }
    let row: Row = serde_json::from_str(&format!(r#"{{"event":{FULL}}}"#)).unwrap();
    assert_eq!(row.event, Envelope::parse(FULL.as_bytes()).unwrap());
    let bad = serde_json::from_str::<Row>(r#"{"event":{"specversion":"0.3"}}"#);
    assert!(bad.unwrap_err().to_string().contains("specversion"));
}

#[test]
fn traceparent_round_trips_through_the_envelope() {
    let tp = TraceParent::new_root();
    let e = Envelope::builder("/s", "t", "t1")
        .traceparent(tp)
        .build()
        .unwrap();
    let back = Envelope::parse(&e.to_vec()).unwrap();
    assert_eq!(back.traceparent(), Some(&tp));
}
