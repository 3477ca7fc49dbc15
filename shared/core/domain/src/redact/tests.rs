use proptest::prelude::*;

use super::*;

#[test]
fn known_secrets_are_removed_wherever_they_appear() {
    let text = RedactedText::redact(
        "vendor said: key s3cr3t-value is invalid (s3cr3t-value)",
        &["s3cr3t-value"],
    );
    assert_eq!(
        text.as_str(),
        "vendor said: key [redacted] is invalid ([redacted])"
    );
}

#[test]
fn empty_known_secrets_are_ignored() {
    let text = RedactedText::redact("nothing to hide", &[""]);
    assert_eq!(text.as_str(), "nothing to hide");
}

#[test]
fn bearer_and_basic_credentials_are_removed() {
    let text = RedactedText::redact(
        "sent Authorization: Bearer abc.def.ghi and Basic dXNlcjpwYXNz",
        &[],
    );
    assert!(!text.as_str().contains("abc.def.ghi"), "{text}");
    assert!(!text.as_str().contains("dXNlcjpwYXNz"), "{text}");
}

#[test]
fn key_value_secrets_are_removed() {
    let cases = [
        ("GET /x?api_key=AAAA1111&page=2", "AAAA1111", "page=2"),
        (
            "{\"password\": \"hunter2\", \"user\": \"bob\"}",
            "hunter2",
            "\"user\": \"bob\"",
        ),
        ("client_secret=xyz123; other=1", "xyz123", "other=1"),
        (
            "AccountKey=abc+def/==;EndpointSuffix=core",
            "abc+def/==",
            "EndpointSuffix=core",
        ),
        (
            "https://x.blob.core.windows.net/c?sv=1&sig=ZZZ%2Bq&se=2",
            "ZZZ%2Bq",
            "se=2",
        ),
        ("'token':'t0k3n'", "t0k3n", ""),
    ];
    for (raw, secret, kept) in cases {
        let text = RedactedText::redact(raw, &[]);
        assert!(!text.as_str().contains(secret), "{raw} -> {text}");
        assert!(text.as_str().contains("[redacted]"), "{raw} -> {text}");
        assert!(text.as_str().contains(kept), "{raw} -> {text} lost {kept}");
    }
}

#[test]
fn vendor_token_shapes_are_removed() {
    let raw = "keys sk-proj-abcdefghijkl ghp_ABCDEFGHIJKLMNOP whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw \
               eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig and sk_live_1234567890";
    let text = RedactedText::redact(raw, &[]);
    for secret in [
        "sk-proj-abcdefghijkl",
        "ghp_ABCDEFGHIJKLMNOP",
        "whsec_MfKQ9r8",
        "eyJhbGci",
        "sk_live_1234567890",
    ] {
        assert!(
            !text.as_str().contains(secret),
            "{secret} survived in {text}"
        );
    }
    assert!(text.as_str().starts_with("keys [redacted]"), "{text}");
}

#[test]
fn ordinary_text_is_left_alone() {
    let raw =
        "rate limit exceeded for task-1 (code: rate_limited); the design signs requests; sk-1";
    assert_eq!(RedactedText::redact(raw, &[]).as_str(), raw);
}

#[test]
fn already_masked_values_are_not_masked_twice() {
    let text = RedactedText::redact("token=abc123", &["abc123"]);
    assert_eq!(text.as_str(), "token=[redacted]");
}

#[test]
fn text_is_cut_to_the_maximum_on_a_char_boundary() {
    let long = "é".repeat(RedactedText::MAX_CHARS + 10);
    let text = RedactedText::from_redacted(long);
    assert_eq!(text.as_str().chars().count(), RedactedText::MAX_CHARS);
    let short = RedactedText::from_redacted("fixed message");
    assert_eq!(short.as_str(), "fixed message");
}

#[test]
fn redaction_happens_before_truncation() {
    let raw = format!(
        "{}password=hunter2",
        "x".repeat(RedactedText::MAX_CHARS - 20)
    );
    let text = RedactedText::redact(&raw, &[]);
    assert!(
        !text.as_str().contains("hunter"),
        "a cut must not leave part of a secret"
    );
}

#[test]
fn serde_is_a_plain_string() {
    let text = RedactedText::from_redacted("boom");
    assert_eq!(serde_json::to_string(&text).expect("serialize"), "\"boom\"");
    assert_eq!(
        serde_json::from_str::<RedactedText>("\"boom\"").expect("deserialize"),
        text
    );
}

proptest! {
    #[test]
    fn redact_never_panics_and_removes_known_secrets(
        raw in "\\PC{0,200}",
        secret in "[A-Za-z0-9]{6,20}",
    ) {
        prop_assume!(!MASK.contains(&secret));
        let with_secret = format!("{raw} {secret} {raw}");
        let text = RedactedText::redact(&with_secret, &[&secret]);
        prop_assert!(!text.as_str().contains(&secret));
        prop_assert!(text.as_str().chars().count() <= RedactedText::MAX_CHARS);
    }

    #[test]
    fn redact_handles_arbitrary_bytes_as_text(raw in ".{0,400}") {
        let _ = RedactedText::redact(&raw, &["x"]);
    }
}

#[test]
fn short_known_values_are_masked_only_as_whole_tokens() {
    let r = RedactedText::redact("could not sign in as u (user u: bad password)", &["u"]);
    assert_eq!(
        r.as_str(),
        "could not sign in as [redacted] (user [redacted]: bad password)"
    );
    let r = RedactedText::redact("app 42 not found; 4242 is another app", &["42"]);
    assert_eq!(r.as_str(), "app [redacted] not found; 4242 is another app");
    // Long values go wherever they are, inside words included.
    let r = RedactedText::redact("keyabcdef123456xyz echoed", &["abcdef123456"]);
    assert_eq!(r.as_str(), "key[redacted]xyz echoed");
}
