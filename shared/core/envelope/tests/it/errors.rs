use envelope::{Envelope, EnvelopeError};

/// A valid envelope as a JSON object, to break one attribute at a time.
fn base() -> serde_json::Map<String, serde_json::Value> {
    let serde_json::Value::Object(map) = serde_json::json!({
        "specversion": "1.0",
        "id": "evt_1",
        "source": "/integration/github",
        "type": "connectsoft.integration.run.completed.v1",
        "tenantid": "tenant-42",
        "time": "2024-05-01T12:30:05Z",
        "data": {"a": 1}
    }) else {
        unreachable!()
    };
    map
}

fn parse_with(edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) -> EnvelopeError {
    let mut map = base();
    edit(&mut map);
    Envelope::parse(&serde_json::to_vec(&map).unwrap()).unwrap_err()
}

#[test]
fn base_is_valid() {
    Envelope::parse(&serde_json::to_vec(&base()).unwrap()).unwrap();
}

#[test]
fn each_missing_required_attribute_is_named() {
    for name in ["specversion", "id", "source", "type", "tenantid"] {
        let err = parse_with(|m| {
            m.remove(name);
        });
        assert!(
            matches!(err, EnvelopeError::MissingAttribute { attribute } if attribute == name),
            "{name}: {err:?}"
        );
        assert_eq!(err.code(), "missing_attribute");
        assert_eq!(
            err.to_string(),
            format!("required attribute `{name}` is missing")
        );

        let err = parse_with(|m| {
            m.insert(name.into(), serde_json::Value::Null);
        });
        assert!(
            matches!(err, EnvelopeError::MissingAttribute { attribute } if attribute == name),
            "{name} null: {err:?}"
        );
    }
}

#[test]
fn wrong_types_are_named() {
    for name in [
        "specversion",
        "id",
        "source",
        "type",
        "tenantid",
        "subject",
        "time",
        "datacontenttype",
        "dataschema",
        "traceparent",
        "correlationid",
        "causationid",
        "data_base64",
    ] {
        for (value, found) in [
            (serde_json::json!(42), "a number"),
            (serde_json::json!(true), "a boolean"),
            (serde_json::json!({}), "an object"),
            (serde_json::json!(["x"]), "an array"),
        ] {
            let err = parse_with(|m| {
                if name == "data_base64" {
                    m.remove("data");
                }
                m.insert(name.into(), value.clone());
            });
            match &err {
                EnvelopeError::WrongType {
                    attribute,
                    expected,
                    found: f,
                } => {
                    assert_eq!(attribute, name);
                    assert_eq!(*expected, "a string");
                    assert_eq!(*f, found);
                }
                other => panic!("{name} = {value}: {other:?}"),
            }
        }
    }
}

#[test]
fn unsupported_specversion() {
    for v in ["0.3", "1.0.2", "", "2.0"] {
        let err = parse_with(|m| {
            m.insert("specversion".into(), v.into());
        });
        assert!(
            matches!(&err, EnvelopeError::UnsupportedSpecVersion { found } if found == v),
            "{err:?}"
        );
    }
    // The version is checked before anything else, so a 0.3 event is reported as such.
    let err = Envelope::parse(br#"{"specversion":"0.3","id":1}"#).unwrap_err();
    assert_eq!(err.code(), "unsupported_specversion");
}

fn assert_invalid(err: &EnvelopeError, name: &str) {
    assert!(
        matches!(err, EnvelopeError::InvalidValue { attribute, .. } if attribute == name),
        "{name}: {err:?}"
    );
}

#[test]
fn invalid_values_are_named() {
    let cases: Vec<(&str, serde_json::Value)> = vec![
        ("id", "".into()),
        ("id", "x".repeat(129).into()),
        ("source", "".into()),
        ("source", "not a uri".into()),
        ("type", "".into()),
        ("tenantid", "".into()),
        ("subject", "".into()),
        ("time", "2024-05-01 noon".into()),
        ("time", "2024-02-30T00:00:00Z".into()),
        ("time", "".into()),
        ("datacontenttype", "json".into()),
        ("dataschema", "/relative/schema".into()),
        (
            "traceparent",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01".into(),
        ),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01".into(),
        ),
        ("traceparent", "garbage".into()),
        ("correlationid", "".into()),
        ("causationid", "".into()),
    ];
    for (name, value) in cases {
        let err = parse_with(|m| {
            m.insert(name.into(), value.clone());
        });
        assert_invalid(&err, name);
        assert_eq!(err.code(), "invalid_value");
        assert!(err.to_string().contains(name), "{err}");
    }
}

#[test]
fn bad_base64_is_invalid() {
    for bad in ["***", "AAE", "AA==AA==", "AAECA/+AfwA", "AB=="] {
        let err = parse_with(|m| {
            m.remove("data");
            m.insert("data_base64".into(), bad.into());
        });
        assert_invalid(&err, "data_base64");
    }
}

#[test]
fn data_and_data_base64_conflict() {
    let err = parse_with(|m| {
        m.insert("data_base64".into(), "AA==".into());
    });
    assert!(matches!(err, EnvelopeError::DataConflict), "{err:?}");
}

#[test]
fn malformed_json_has_a_position() {
    let err = Envelope::parse(b"{\n  \"specversion\": \"1.0\",\n  \"id\": }").unwrap_err();
    match err {
        EnvelopeError::MalformedJson {
            line,
            column,
            ref message,
        } => {
            assert_eq!(line, 3);
            assert_eq!(column, 9);
            assert!(!message.contains("at line"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    for input in [
        &b""[..],
        b"{",
        b"{}x",
        b"\xff",
        b"{\"id\":\"\xff\"}",
        b"nul",
    ] {
        let err = Envelope::parse(input).unwrap_err();
        assert_eq!(err.code(), "malformed_json", "{input:?}: {err:?}");
    }
}

#[test]
fn non_objects_are_rejected() {
    for input in ["[]", "\"x\"", "1", "null", "true"] {
        assert!(
            matches!(
                Envelope::parse(input.as_bytes()),
                Err(EnvelopeError::NotAnObject)
            ),
            "{input}"
        );
    }
}

#[test]
fn duplicates_are_rejected() {
    for input in [
        r#"{"specversion":"1.0","id":"1","id":"2","source":"/s","type":"t","tenantid":"t"}"#,
        r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","tenantid":"t","x":1,"x":2}"#,
        r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","tenantid":"t","i\u0064":"2"}"#,
    ] {
        let err = Envelope::parse(input.as_bytes()).unwrap_err();
        assert_eq!(err.code(), "duplicate_attribute", "{input}: {err:?}");
    }
}

#[test]
fn bad_extension_names_and_values() {
    for name in ["Upper", "with-dash", "with_underscore", ""] {
        let err = parse_with(|m| {
            m.insert(name.into(), "x".into());
        });
        assert_eq!(err.code(), "invalid_attribute_name", "{name}: {err:?}");
    }
    for (value, code) in [
        (serde_json::json!({}), "wrong_type"),
        (serde_json::json!([]), "wrong_type"),
        (serde_json::json!(1.5), "invalid_value"),
        (serde_json::json!(2_147_483_648_i64), "invalid_value"),
    ] {
        let err = parse_with(|m| {
            m.insert("myext".into(), value.clone());
        });
        assert_eq!(err.code(), code, "{value}: {err:?}");
        assert_eq!(err.attribute(), Some("myext"));
    }
}

#[test]
fn deep_nesting_in_data_does_not_overflow_the_stack() {
    let mut input = String::from(
        r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","tenantid":"t","data":"#,
    );
    input.push_str(&"[".repeat(100_000));
    input.push_str(&"]".repeat(100_000));
    input.push('}');
    // Raw data is only scanned, not built, so depth costs nothing here...
    let e = Envelope::parse(input.as_bytes()).unwrap();
    assert_eq!(e.data_raw().unwrap().get().len(), 200_000);
    assert_eq!(Envelope::parse(&e.to_vec()).unwrap(), e);
    // ...and deserialising it hits serde_json's recursion limit instead of the stack's.
    let err = e.data_json::<serde_json::Value>().unwrap_err();
    assert_eq!(err.code(), "data_decode");

    let nested_attribute = format!("{{\"id\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(Envelope::parse(nested_attribute.as_bytes()).is_err());
}
