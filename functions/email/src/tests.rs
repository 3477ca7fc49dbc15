use super::*;
use serde_json::{Value, json};

fn ok() -> Value {
    json!({"to": ["a@example.com"], "subject": "Hi", "text": "Hello"})
}

fn with(field: &str, value: Value) -> Value {
    let mut v = ok();
    v[field] = value;
    v
}

fn parse(input: &Value) -> Result<Email, InputError> {
    integration_kit::parse_input::<Send>(input)
}

/// The refusal as `path: message` (the path empty for the input as a whole).
fn err(input: Value) -> String {
    let e = parse(&input).expect_err("refused");
    format!("{}: {}", e.path, e.message)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn a_full_message_is_read() {
    let email = parse(&json!({
        "to": ["a@example.com", "b@example.org"],
        "cc": ["c@example.com"],
        "bcc": ["d@example.com"],
        "subject": "Quarterly report",
        "text": "See attached.",
        "html": "<p>See attached.</p>",
        "from": "reports@example.com",
        "attachments": [{"name": "q3.pdf", "contentType": "Application/PDF", "contentBase64": b64(b"%PDF-1.7")}],
    }))
    .expect("valid");
    let strs = |l: &[Address]| l.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    assert_eq!(strs(&email.to), ["a@example.com", "b@example.org"]);
    assert_eq!(strs(&email.cc), ["c@example.com"]);
    assert_eq!(strs(&email.bcc), ["d@example.com"]);
    assert_eq!(email.recipients(), 4);
    assert_eq!(email.from.as_deref(), Some("reports@example.com"));
    assert_eq!(email.attachments.len(), 1);
    assert_eq!(email.attachments[0].size(), 8);
    assert_eq!(&*email.attachments[0].content_type, "application/pdf");
    assert_eq!(email.attachments[0].bytes(), b"%PDF-1.7");
    // Optional fields may be absent or null.
    let minimal = parse(
        &json!({"to": ["a@example.com"], "subject": "s", "html": "<b>x</b>", "cc": null, "attachments": null}),
    )
    .unwrap();
    assert!(minimal.cc.is_empty() && minimal.bcc.is_empty() && minimal.attachments.is_empty());
    assert_eq!(minimal.text, None);
}

fn path_of(input: Value) -> (String, String) {
    let e = parse(&input).expect_err("refused");
    (e.path, e.message)
}

#[test]
fn refusals_name_the_field() {
    assert_eq!(path_of(json!("hi")).0, "");
    assert_eq!(path_of(with("replyTo", json!("x"))).0, "replyTo");
    assert_eq!(
        path_of(with("to", json!(["a@example.com", "nobody"]))),
        (
            "to[1]".to_owned(),
            "is not an email address (local@domain, ASCII, no display name)".to_owned()
        )
    );
    assert_eq!(path_of(with("to", json!(["a@example.com", 5]))).0, "to[1]");
    assert_eq!(path_of(with("subject", json!(""))).0, "subject");
    assert_eq!(path_of(with("from", json!("nobody"))).0, "from");
    let (path, message) = path_of(with(
        "attachments",
        json!([{"name": "a/b", "contentType": "text/plain", "contentBase64": "aGk="}]),
    ));
    assert_eq!(path, "attachments[0].name");
    assert!(message.starts_with("must be a file name"), "{message}");
    let (path, _) = path_of(with(
        "attachments",
        json!([{"name": "a", "contentType": "text/plain", "contentBase64": "aGk=", "x": 1}]),
    ));
    assert_eq!(path, "attachments[0].x");
    // Rules across fields name no single field.
    assert_eq!(
        path_of(json!({"to": ["a@example.com"], "subject": "s"})).0,
        ""
    );
    assert_eq!(
        integration_kit::InputError::at("attachments[0].name", "x").pointer(),
        "/input/attachments/0/name"
    );
}

#[test]
fn the_shape_is_checked() {
    assert!(err(json!("hi")).starts_with(": invalid type"));
    assert!(err(with("replyTo", json!("x@example.com"))).contains("unknown field `replyTo`"));
    assert!(err(json!({"subject": "s", "text": "t"})).contains("missing field `to`"));
    assert_eq!(
        err(with("to", json!([]))),
        "to: must list at least one address"
    );
    assert!(err(with("to", json!("a@example.com"))).starts_with("to: invalid type"));
    assert!(err(with("cc", json!({}))).starts_with("cc: invalid type"));
    assert!(err(with("to", json!([5]))).starts_with("to[0]: invalid type"));
}

#[test]
fn addresses_follow_the_documented_rules() {
    for good in [
        "a@example.com",
        "first.last+tag@sub.example.co.uk",
        "o'brien@example.ie",
        "x_y-z@xn--bcher-kva.example",
        "1@example.io",
    ] {
        assert!(is_email_address(good), "{good} is accepted");
    }
    for bad in [
        "",
        "plain",
        "@example.com",
        "a@",
        "a@localhost",
        "a@example",
        "a@@example.com",
        "a@b@example.com",
        ".a@example.com",
        "a.@example.com",
        "a..b@example.com",
        "a b@example.com",
        "Name <a@example.com>",
        "\"quoted\"@example.com",
        "a@-example.com",
        "a@example-.com",
        "a@exa_mple.com",
        "a@example..com",
        "a@[127.0.0.1]",
        "a@127.0.0.1",
        "ü@example.com",
        "a@bücher.example",
        "a\r\nBcc: x@example.com@example.com",
    ] {
        assert!(!is_email_address(bad), "{bad:?} is refused");
    }
    let long_local = format!("{}@example.com", "a".repeat(65));
    assert!(!is_email_address(&long_local));
    let long_label = format!("a@{}.com", "b".repeat(64));
    assert!(!is_email_address(&long_label));
    let too_long = format!("a@{}.com", vec!["b".repeat(60); 5].join("."));
    assert!(too_long.len() > 254 && !is_email_address(&too_long));
    assert!(
        err(with("cc", json!(["not-an-address"]))).starts_with("cc[0]: is not an email address")
    );
    assert!(err(with("bcc", json!(["ok@example.com", "x@y"]))).starts_with("bcc[1]:"));
    assert!(err(with("from", json!("nobody"))).starts_with("from: is not an email address"));
    assert!(err(with("from", json!(7))).starts_with("from:"));
}

#[test]
fn an_address_appears_once_across_to_cc_and_bcc() {
    assert!(
        err(with("to", json!(["a@example.com", "a@example.com"])))
            .starts_with("to[1]: repeats an address")
    );
    let mut v = ok();
    v["cc"] = json!(["b@example.com"]);
    v["bcc"] = json!(["B@Example.com"]);
    assert!(err(v).starts_with("bcc[0]: repeats an address"));
    let mut v = ok();
    v["cc"] = json!(["A@EXAMPLE.COM"]);
    assert!(err(v).starts_with("cc[0]: repeats"));
}

#[test]
fn at_most_fifty_recipients_in_all() {
    let list = |prefix: &str, n: usize| -> Value {
        (0..n)
            .map(|i| json!(format!("{prefix}{i}@example.com")))
            .collect()
    };
    let mut v = ok();
    v["to"] = list("t", 20);
    v["cc"] = list("c", 20);
    v["bcc"] = list("b", 10);
    assert!(parse(&v).is_ok(), "exactly 50");
    v["bcc"] = list("b", 11);
    assert!(err(v).contains("at most 50 recipients"));
    assert!(err(with("to", list("t", 51))).contains("at most 50 recipients"));
}

#[test]
fn subject_and_bodies_are_checked() {
    let mut v = ok();
    v.as_object_mut().unwrap().remove("subject");
    assert!(err(v).contains("missing field `subject`"));
    assert!(err(with("subject", json!(""))).starts_with("subject: must be 1 to 998"));
    assert!(err(with("subject", json!("x".repeat(999)))).starts_with("subject:"));
    assert!(parse(&with("subject", json!("x".repeat(998)))).is_ok());
    assert!(
        err(with("subject", json!("Hi\r\nBcc: victim@example.com"))).contains("no line breaks")
    );
    assert!(err(with("subject", json!(1))).starts_with("subject:"));
    let mut v = ok();
    v.as_object_mut().unwrap().remove("text");
    assert_eq!(err(v), ": text or html (or both) is required");
    assert_eq!(
        err(with("text", json!(""))),
        "text: must be a non-empty string"
    );
    assert!(err(with("html", json!(3))).starts_with("html: invalid type"));
    assert!(parse(&with("html", json!("<p>both</p>"))).is_ok());
}

#[test]
fn attachments_are_checked_one_by_one() {
    let att = |name: Value, ct: Value, content: Value| {
        with(
            "attachments",
            json!([{"name": name, "contentType": ct, "contentBase64": content}]),
        )
    };
    let good = b64(b"hello");
    assert!(parse(&att(json!("a.txt"), json!("text/plain"), json!(good))).is_ok());
    assert!(err(with("attachments", json!("x"))).starts_with("attachments: invalid type"));
    assert!(err(with("attachments", json!([1]))).starts_with("attachments[0]: invalid type"));
    assert!(
        err(with(
            "attachments",
            json!([{"name": "a", "contentType": "text/plain", "contentBase64": good, "inline": true}])
        ))
        .contains("unknown field `inline`")
    );
    for name in [
        json!(""),
        json!("../etc/passwd"),
        json!("a\\b"),
        json!("a\nb"),
        json!(" padded"),
        json!(3),
        json!("n".repeat(256)),
    ] {
        assert!(
            err(att(name.clone(), json!("text/plain"), json!(good)))
                .starts_with("attachments[0].name:"),
            "{name}"
        );
    }
    for ct in [
        json!("text"),
        json!("text/"),
        json!("/plain"),
        json!("text/plain; charset=utf-8"),
        json!("te xt/plain"),
        json!(null),
    ] {
        assert!(
            err(att(json!("a.txt"), ct.clone(), json!(good)))
                .starts_with("attachments[0].contentType:"),
            "{ct}"
        );
    }
    for content in [
        json!(""),
        json!("not base64!"),
        json!("aGVsbG8"),
        json!("aGVs\nbG8="),
        json!(null),
    ] {
        assert!(
            err(att(json!("a.txt"), json!("text/plain"), content.clone()))
                .starts_with("attachments[0].contentBase64:"),
            "{content}"
        );
    }
}

#[test]
fn at_most_ten_attachments_and_seven_mebibytes() {
    let one = json!({"name": "a.bin", "contentType": "application/octet-stream", "contentBase64": b64(b"x")});
    assert!(parse(&with("attachments", json!(vec![one.clone(); 10]))).is_ok());
    assert!(err(with("attachments", json!(vec![one; 11]))).contains("at most 10 attachments"));
    // Exactly 7 MiB in two parts passes; one byte more does not.
    let half = MAX_ATTACHMENT_BYTES / 2;
    let part = |n: usize| json!({"name": "p.bin", "contentType": "application/octet-stream", "contentBase64": b64(&vec![0u8; n])});
    assert!(parse(&with("attachments", json!([part(half), part(half)]))).is_ok());
    assert!(
        err(with("attachments", json!([part(half), part(half + 1)])))
            .starts_with("attachments: attachments may hold at most 7340032 bytes")
    );
    // A single oversized attachment is refused before it is decoded.
    assert!(
        err(with(
            "attachments",
            json!([part(MAX_ATTACHMENT_BYTES + 10)])
        ))
        .contains("7 MiB")
    );
}

#[test]
fn mime_types_and_file_names() {
    assert!(is_mime_type(
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    ));
    assert!(is_mime_type("image/svg+xml"));
    assert!(!is_mime_type("image/svg+xml/extra"));
    assert!(is_file_name("Report (final) — 2026.pdf"));
    assert!(!is_file_name("dir/file"));
}
