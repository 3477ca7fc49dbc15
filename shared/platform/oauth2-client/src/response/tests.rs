use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};

use super::{Scrubber, classify_error, parse_token_response, retry_after};
use crate::OAuthError;

fn malformed(body: &str) -> String {
    match parse_token_response(body.as_bytes()) {
        Err(OAuthError::Malformed { reason }) => reason,
        Err(other) => panic!("expected Malformed, got {other:?}"),
        Ok(_) => panic!("expected Malformed, got a token"),
    }
}

#[test]
fn a_full_response_is_read() {
    let parsed = parse_token_response(
        br#"{"access_token":"at","token_type":"bearer","expires_in":3600,"scope":"a b","refresh_token":"rt"}"#,
    )
    .unwrap();
    assert_eq!(parsed.access_token.expose_secret(), "at");
    assert_eq!(parsed.token_type, "bearer");
    assert_eq!(parsed.expires_in, Some(Duration::from_secs(3600)));
    assert_eq!(parsed.scope.as_deref(), Some("a b"));
    assert_eq!(parsed.refresh_token.unwrap().expose_secret(), "rt");
}

#[test]
fn expires_in_may_be_a_string_or_a_float_or_absent() {
    let at = |extra: &str| {
        parse_token_response(
            format!(r#"{{"access_token":"at","token_type":"Bearer"{extra}}}"#).as_bytes(),
        )
        .unwrap()
        .expires_in
    };
    assert_eq!(
        at(r#","expires_in":"3599""#),
        Some(Duration::from_secs(3599))
    );
    assert_eq!(at(r#","expires_in":" 60 ""#), Some(Duration::from_secs(60)));
    assert_eq!(at(r#","expires_in":59.9"#), Some(Duration::from_secs(59)));
    assert_eq!(at(r#","expires_in":null"#), None);
    assert_eq!(at(""), None);
}

#[test]
fn a_missing_token_type_is_bearer() {
    let parsed = parse_token_response(br#"{"access_token":"at"}"#).unwrap();
    assert_eq!(parsed.token_type, "Bearer");
}

#[test]
fn unusable_bodies_are_malformed_without_quoting_them() {
    for (body, expected) in [
        ("not json at-secret", "the body is not JSON"),
        (r#"["at-secret"]"#, "the body is not a JSON object"),
        (r#"{"token_type":"Bearer"}"#, "access_token is missing"),
        (
            r#"{"access_token":"","token_type":"Bearer"}"#,
            "access_token is empty",
        ),
        (
            r#"{"access_token":12345,"token_type":"Bearer"}"#,
            "access_token is not a string",
        ),
        (
            r#"{"access_token":"at-secret","token_type":"mac"}"#,
            "token_type is not Bearer",
        ),
        (
            r#"{"access_token":"at-secret","token_type":"Bearer","expires_in":"soon at-secret"}"#,
            "expires_in is not a non-negative number of seconds",
        ),
        (
            r#"{"access_token":"at-secret","token_type":"Bearer","expires_in":-5}"#,
            "expires_in is not a non-negative number of seconds",
        ),
    ] {
        let reason = malformed(body);
        assert_eq!(reason, expected, "{body}");
        assert!(!reason.contains("at-secret") && !reason.contains("12345"));
    }
}

fn classify(status: u16, body: &str) -> OAuthError {
    classify_error(
        StatusCode::from_u16(status).unwrap(),
        &HeaderMap::new(),
        body.as_bytes(),
        &Scrubber::new([]),
    )
}

#[test]
fn error_responses_are_classified() {
    assert_eq!(
        classify(
            400,
            r#"{"error":"invalid_grant","error_description":"expired"}"#
        ),
        OAuthError::InvalidGrant {
            description: Some("expired".into())
        }
    );
    assert_eq!(
        classify(400, r#"{"error":"invalid_client"}"#),
        OAuthError::InvalidClient {
            status: 400,
            description: None
        }
    );
    assert_eq!(
        classify(401, "Unauthorized"),
        OAuthError::InvalidClient {
            status: 401,
            description: None
        }
    );
    assert!(matches!(classify(503, ""), OAuthError::Transient { .. }));
    assert!(matches!(
        classify(400, r#"{"error":"temporarily_unavailable"}"#),
        OAuthError::Transient { .. }
    ));
    assert_eq!(
        classify(
            400,
            r#"{"error":"invalid_scope","error_description":"nope"}"#
        ),
        OAuthError::Other {
            error: "invalid_scope".into(),
            description: Some("nope".into())
        }
    );
    assert_eq!(
        classify(403, "<html>forbidden</html>"),
        OAuthError::Other {
            error: "http_403".into(),
            description: None
        }
    );
}

#[test]
fn retry_after_reads_seconds_and_dates() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
    let header = |value: &'static str| {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static(value));
        retry_after(&headers, now)
    };
    assert_eq!(header("120"), Some(Duration::from_secs(120)));
    assert_eq!(
        header("Sun, 06 Nov 1994 08:50:07 GMT"),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        header("Sunday, 06-Nov-94 08:50:07 GMT"),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        header("Sun, 06 Nov 1994 08:00:00 GMT"),
        Some(Duration::ZERO)
    );
    assert_eq!(header("soon"), None);
    assert_eq!(header("-5"), None);
    assert_eq!(retry_after(&HeaderMap::new(), now), None);
}

#[test]
fn the_scrubber_removes_secrets_raw_and_encoded_and_truncates() {
    let secret = SecretString::from("s3cr3t/+=");
    let refresh = SecretString::from("rt-123");
    let scrub = Scrubber::new([Some(&secret), None, Some(&refresh)]);
    let cleaned = scrub.clean("bad secret s3cr3t/+= or s3cr3t%2F%2B%3D for rt-123\nnext");
    assert_eq!(
        cleaned,
        "bad secret [redacted] or [redacted] for [redacted] next"
    );
    let long = "x".repeat(500);
    assert_eq!(scrub.clean(&long).chars().count(), 201);
}
