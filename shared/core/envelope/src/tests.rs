//! Unit tests of the crate's private rules and writer.

use crate::rules;
use crate::{Envelope, EnvelopeError};

#[test]
fn hand_written_strings_match_serde_json() {
    let samples = [
        "",
        "plain",
        "quote \" backslash \\ slash /",
        "\n\r\t\u{8}\u{c}\u{0}\u{1f}\u{7f}",
        "unicode é 🎉 \u{2028}",
    ];
    for s in samples {
        let env = Envelope::builder("/s", "t", "tenant")
            .id("evt_1")
            .subject(if s.is_empty() { "x" } else { s })
            .correlation_id(format!("c{s}"))
            .build()
            .unwrap();
        let ours = env.to_vec();
        let theirs = serde_json::to_vec(&env).unwrap();
        assert_eq!(
            String::from_utf8(ours).unwrap(),
            String::from_utf8(theirs).unwrap()
        );
    }
}

#[test]
fn uri_reference_rules() {
    for ok in [
        "/integration/github",
        "https://example.com/a?b=c#d",
        "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
        "cloudevents/spec/pull/123",
        "1-555-123-4567",
        "%2Fa",
    ] {
        rules::uri_reference("source", ok).unwrap();
    }
    for bad in [
        "",
        "has space",
        "/a%zz",
        "/a%2",
        "/é",
        "/a\"b",
        "/a<b>",
        "/a\\b",
    ] {
        let err = rules::uri_reference("source", bad).unwrap_err();
        assert_eq!(err.attribute(), Some("source"), "{bad}");
    }
}

#[test]
fn uri_needs_a_scheme() {
    rules::uri("dataschema", "https://schemas.example.com/run.json").unwrap();
    rules::uri("dataschema", "urn:x").unwrap();
    for bad in ["/relative", "1http://x", ":x", "", "no-colon"] {
        assert!(rules::uri("dataschema", bad).is_err(), "{bad}");
    }
}

#[test]
fn media_type_rules() {
    for ok in [
        "application/json",
        "application/vnd.github+json",
        "text/plain; charset=utf-8",
        "application/cloudevents+json",
    ] {
        rules::media_type("datacontenttype", ok).unwrap();
    }
    for bad in ["", "json", "/json", "application/", "a/b c", "a/b\n"] {
        assert!(
            rules::media_type("datacontenttype", bad).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn json_media_types() {
    assert!(rules::is_json_media_type(None));
    assert!(rules::is_json_media_type(Some("application/json")));
    assert!(rules::is_json_media_type(Some(
        "Application/JSON; charset=utf-8"
    )));
    assert!(rules::is_json_media_type(Some(
        "application/vnd.github+json"
    )));
    assert!(!rules::is_json_media_type(Some("text/plain")));
    assert!(!rules::is_json_media_type(Some("application/octet-stream")));
}

#[test]
fn id_length_counts_utf16_units() {
    rules::id(&"a".repeat(128)).unwrap();
    assert!(matches!(
        rules::id(&"a".repeat(129)),
        Err(EnvelopeError::InvalidValue { .. })
    ));
    // 64 astral characters are 128 UTF-16 units; 65 are too many for a MessageId.
    rules::id(&"🎉".repeat(64)).unwrap();
    assert!(rules::id(&"🎉".repeat(65)).is_err());
}

#[test]
fn error_excerpts_are_bounded() {
    let long = "x".repeat(10_000);
    let err = crate::TraceParent::parse(&long).unwrap_err();
    assert!(err.to_string().len() < 300, "{err}");
}
