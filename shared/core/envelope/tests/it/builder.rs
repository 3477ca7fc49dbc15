use chrono::{TimeZone, Utc};
use envelope::{Envelope, EnvelopeError, ExtensionValue, RawValue, TraceParent};

#[test]
fn defaults() {
    let before = Utc::now();
    let e = Envelope::builder("/integration/github", "t", "tenant")
        .json_data(&serde_json::json!({"a": 1}))
        .unwrap();
    assert!(e.id().starts_with("evt_"));
    assert_eq!(e.id().len(), 40);
    assert!(
        uuid::Uuid::parse_str(&e.id()[4..])
            .unwrap()
            .get_version_num()
            == 7
    );
    assert!(e.time().unwrap() >= before);
    assert_eq!(e.datacontenttype(), Some("application/json"));
    assert!(e.traceparent().is_none());
    assert_eq!(e.data_raw().unwrap().get(), r#"{"a":1}"#);
    let other = Envelope::builder("/s", "t", "tenant").build().unwrap();
    assert_ne!(other.id(), e.id());
}

#[test]
fn every_setter_is_kept() {
    let time = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
    let tp = TraceParent::new_root();
    let e = Envelope::builder(
        "/integration/github",
        "connectsoft.integration.run.completed.v1",
        "tenant-42",
    )
    .id("evt_fixed")
    .subject("run_1")
    .time(time)
    .traceparent(tp)
    .correlation_id("corr")
    .causation_id("cause")
    .dataschema("https://schemas.example.com/x.json")
    .datacontenttype("application/vnd.example+json")
    .extension("partitionkey", "p")
    .extension("attempt", 3)
    .extension("replay", false)
    .raw_json_data(RawValue::from_string("[1, 2,  3]".into()).unwrap())
    .unwrap();
    assert_eq!(e.id(), "evt_fixed");
    assert_eq!(e.subject(), Some("run_1"));
    assert_eq!(e.time(), Some(time));
    assert_eq!(e.traceparent(), Some(&tp));
    assert_eq!(e.correlation_id(), Some("corr"));
    assert_eq!(e.causation_id(), Some("cause"));
    assert_eq!(e.dataschema(), Some("https://schemas.example.com/x.json"));
    assert_eq!(e.datacontenttype(), Some("application/vnd.example+json"));
    assert_eq!(e.extension("attempt"), Some(&ExtensionValue::Integer(3)));
    assert_eq!(e.data_raw().unwrap().get(), "[1, 2,  3]");
    let out = String::from_utf8(e.to_vec()).unwrap();
    assert!(out.contains(r#""time":"2024-05-01T12:00:00Z""#), "{out}");
    assert!(out.ends_with(r#""data":[1, 2,  3]}"#), "{out}");
    assert_eq!(Envelope::parse(out.as_bytes()).unwrap(), e);
}

#[test]
fn caused_by_links_the_events() {
    let cause = Envelope::builder("/integration/webhook-gateway", "received", "t1")
        .traceparent(TraceParent::new_root())
        .build()
        .unwrap();
    let effect = Envelope::builder("/integration/github", "completed", "t1")
        .caused_by(&cause)
        .build()
        .unwrap();
    assert_eq!(effect.causation_id(), Some(cause.id()));
    assert_eq!(effect.correlation_id(), Some(cause.id()));
    let (c, e) = (cause.traceparent().unwrap(), effect.traceparent().unwrap());
    assert_eq!(c.trace_id(), e.trace_id());
    assert_ne!(c.parent_id(), e.parent_id());

    let next = Envelope::builder("/integration/github", "next", "t1")
        .caused_by(&effect)
        .build()
        .unwrap();
    assert_eq!(next.correlation_id(), Some(cause.id()));
    assert_eq!(next.causation_id(), Some(effect.id()));
}

#[test]
fn builder_validates_like_the_parser() {
    let cases: Vec<(Result<Envelope, EnvelopeError>, &str)> = vec![
        (Envelope::builder("", "t", "x").build(), "source"),
        (Envelope::builder("not a uri", "t", "x").build(), "source"),
        (Envelope::builder("/s", "", "x").build(), "type"),
        (Envelope::builder("/s", "t", "").build(), "tenantid"),
        (Envelope::builder("/s", "t", "x").id("").build(), "id"),
        (
            Envelope::builder("/s", "t", "x")
                .id("i".repeat(129))
                .build(),
            "id",
        ),
        (
            Envelope::builder("/s", "t", "x").subject("").build(),
            "subject",
        ),
        (
            Envelope::builder("/s", "t", "x").correlation_id("").build(),
            "correlationid",
        ),
        (
            Envelope::builder("/s", "t", "x").causation_id("").build(),
            "causationid",
        ),
        (
            Envelope::builder("/s", "t", "x").dataschema("rel").build(),
            "dataschema",
        ),
        (
            Envelope::builder("/s", "t", "x")
                .datacontenttype("json")
                .build(),
            "datacontenttype",
        ),
    ];
    for (result, attribute) in cases {
        let err = result.unwrap_err();
        assert_eq!(err.code(), "invalid_value", "{attribute}: {err:?}");
        assert_eq!(err.attribute(), Some(attribute));
    }
}

#[test]
fn builder_checks_extension_names() {
    for name in [
        "tenantid",
        "id",
        "data",
        "Upper",
        "x-y",
        "averyveryverylongextensionname",
    ] {
        let err = Envelope::builder("/s", "t", "x")
            .extension(name, "v")
            .build()
            .unwrap_err();
        assert_eq!(err.code(), "invalid_attribute_name", "{name}: {err:?}");
    }
    let err = Envelope::builder("/s", "t", "x")
        .extension("dup", "a")
        .extension("dup", "b")
        .build()
        .unwrap_err();
    assert_eq!(err.code(), "duplicate_attribute");
}

#[test]
fn json_data_reports_serialisation_failures() {
    struct Fails;
    impl serde::Serialize for Fails {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("nope"))
        }
    }
    let err = Envelope::builder("/s", "t", "x")
        .json_data(&Fails)
        .unwrap_err();
    assert!(matches!(err, EnvelopeError::DataEncode(_)));
}

#[test]
fn binary_data_defaults_to_octet_stream() {
    let e = Envelope::builder("/s", "t", "x")
        .binary_data(vec![1, 2, 3])
        .unwrap();
    assert_eq!(e.datacontenttype(), Some("application/octet-stream"));
    assert_eq!(e.data_bytes().unwrap().as_ref(), &[1, 2, 3]);
    assert!(
        String::from_utf8(e.to_vec())
            .unwrap()
            .contains(r#""data_base64":"AQID""#)
    );
}
