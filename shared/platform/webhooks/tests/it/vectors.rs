//! Published and computed vectors from the vendors' documentation.

use http::{HeaderMap, Method};
use webhooks::{Handshake, Scheme, Secret, Unverified, VerifyError};

use crate::support::at;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    h
}

const URL: &str = "https://hooks.example.com/api/webhooks/inbound/src_1";

#[test]
fn github_published() {
    let h = headers(&[
        (
            "X-Hub-Signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        ),
        ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ("X-GitHub-Event", "issues"),
    ]);
    let secret = Secret::for_scheme(&Scheme::Github, "It's a Secret to Everybody").unwrap();
    let req = Unverified::new(Method::POST, URL, &h, b"Hello, World!");
    let v = req.verify(&Scheme::Github, &secret, at(0)).unwrap();
    assert_eq!(v.delivery_id(), "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    assert!(!v.delivery_id_is_fallback());
    assert_eq!(v.event_type(), Some("issues"));
    assert_eq!(v.body(), b"Hello, World!");
    assert_eq!(v.scheme(), "github");
}

#[test]
fn github_without_a_usable_delivery_id_or_event_is_malformed() {
    let signature = (
        "X-Hub-Signature-256",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    );
    let delivery = ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    let event = ("X-GitHub-Event", "issues");
    let long = "d".repeat(129);
    let secret = Secret::from_bytes("It's a Secret to Everybody").unwrap();
    for (pairs, header) in [
        (vec![signature, event], "X-GitHub-Delivery"),
        (
            vec![signature, ("X-GitHub-Delivery", ""), event],
            "X-GitHub-Delivery",
        ),
        (
            vec![signature, ("X-GitHub-Delivery", "a b"), event],
            "X-GitHub-Delivery",
        ),
        (
            vec![signature, ("X-GitHub-Delivery", long.as_str()), event],
            "X-GitHub-Delivery",
        ),
        (vec![signature, delivery], "X-GitHub-Event"),
        (
            vec![signature, delivery, ("X-GitHub-Event", "")],
            "X-GitHub-Event",
        ),
    ] {
        let h = headers(&pairs);
        let e = Unverified::new(Method::POST, URL, &h, b"Hello, World!")
            .verify(&Scheme::Github, &secret, at(0))
            .unwrap_err();
        assert_eq!(e, VerifyError::Malformed(header), "{pairs:?}");
        assert_eq!(e.status(), http::StatusCode::BAD_REQUEST);
    }
    // Non-ASCII bytes in the id.
    let mut h = headers(&[signature, event]);
    h.insert(
        "X-GitHub-Delivery",
        http::HeaderValue::from_bytes(b"id-\xe9").unwrap(),
    );
    let e = Unverified::new(Method::POST, URL, &h, b"Hello, World!")
        .verify(&Scheme::Github, &secret, at(0))
        .unwrap_err();
    assert_eq!(e, VerifyError::Malformed("X-GitHub-Delivery"));
    // A bad signature is still a 401 first: nothing about the delivery is read before.
    let h = headers(&[("X-Hub-Signature-256", "sha256=00"), event]);
    let e = Unverified::new(Method::POST, URL, &h, b"Hello, World!")
        .verify(&Scheme::Github, &secret, at(0))
        .unwrap_err();
    assert_ne!(e, VerifyError::Malformed("X-GitHub-Delivery"));
}

#[test]
fn stripe_computed() {
    let body = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;
    let h = headers(&[(
        "Stripe-Signature",
        "t=1700000000,v1=22d8dc182f5c588077683bd378368e29765bfe5df2560112b4f28fef120f0e31",
    )]);
    let scheme = Scheme::stripe();
    let secret = Secret::for_scheme(&scheme, "whsec_test_secret").unwrap();
    let v = Unverified::new(Method::POST, URL, &h, body)
        .verify(&scheme, &secret, at(1_700_000_100))
        .unwrap();
    assert_eq!(v.delivery_id(), "evt_1");
    assert_eq!(v.event_type(), Some("payment_intent.succeeded"));
    assert_eq!(v.signed_at(), Some(at(1_700_000_000)));
    let err = Unverified::new(Method::POST, URL, &h, body)
        .verify(&scheme, &secret, at(1_700_000_301))
        .unwrap_err();
    assert_eq!(err, VerifyError::TimestampOutOfTolerance);
}

#[test]
fn stripe_one_valid_among_several_v1() {
    let body = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;
    let h = headers(&[(
        "Stripe-Signature",
        "t=1700000000,v1=00d8dc182f5c588077683bd378368e29765bfe5df2560112b4f28fef120f0e31,v1=nothex,v0=abc,v1=22d8dc182f5c588077683bd378368e29765bfe5df2560112b4f28fef120f0e31",
    )]);
    let secret = Secret::from_bytes("whsec_test_secret").unwrap();
    let req = Unverified::new(Method::POST, URL, &h, body);
    req.verify(&Scheme::stripe(), &secret, at(1_700_000_000))
        .unwrap();
    let only_v0 = headers(&[("Stripe-Signature", "t=1700000000,v0=22d8dc18")]);
    let err = Unverified::new(Method::POST, URL, &only_v0, body)
        .verify(&Scheme::stripe(), &secret, at(1_700_000_000))
        .unwrap_err();
    assert_eq!(err, VerifyError::BadSignature);
    let two_t = headers(&[("Stripe-Signature", "t=1700000000,t=1700000001,v1=22")]);
    let err = Unverified::new(Method::POST, URL, &two_t, body)
        .verify(&Scheme::stripe(), &secret, at(1_700_000_000))
        .unwrap_err();
    assert!(matches!(err, VerifyError::Malformed(_)));
}

#[test]
fn twilio_published() {
    let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    let body = b"To=%2B18005551212&CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1234&From=%2B12349013030";
    let h = headers(&[
        ("X-Twilio-Signature", "0/KCTR6DLpKmkAf8muzZqo1nDgQ="),
        (
            "Content-Type",
            "application/x-www-form-urlencoded; charset=utf-8",
        ),
    ]);
    let scheme: Scheme = serde_json::from_str(r#"{"kind":"twilio"}"#).unwrap();
    let secret = Secret::for_scheme(&scheme, "12345").unwrap();
    let v = Unverified::new(Method::POST, url, &h, body)
        .verify(&scheme, &secret, at(0))
        .unwrap();
    // No MessageSid in a voice callback: the body hash is the dedupe key.
    assert!(v.delivery_id_is_fallback());
    // The URL Twilio signed matters: another host fails.
    let err = Unverified::new(
        Method::POST,
        "https://mycompany.com/myapp.php?foo=1",
        &h,
        body,
    )
    .verify(&scheme, &secret, at(0))
    .unwrap_err();
    assert_eq!(err, VerifyError::BadSignature);
}

#[test]
fn twilio_status_callback_dedupe_key() {
    use crate::support::{Kind, signed};
    let body = b"MessageSid=SMxxxxxxxx&SmsSid=SMxxxxxxxx&MessageStatus=delivered&SmsStatus=delivered&AccountSid=ACxxxxxxxx&From=%2B1555&To=%2B972501234567&ApiVersion=2010-04-01";
    let s = signed(Kind::TwilioForm, body, 0);
    let v = s.verify().unwrap();
    assert_eq!(v.delivery_id(), "SMxxxxxxxx:delivered");
    assert_eq!(v.event_type(), Some("delivered"));
    let mut with_token = s.clone();
    with_token
        .headers
        .insert("I-Twilio-Idempotency-Token", "idem-1".parse().unwrap());
    assert_eq!(with_token.verify().unwrap().delivery_id(), "idem-1");
}

#[test]
fn twilio_unsigned_body_is_refused() {
    use crate::support::{Kind, signed};
    let mut s = signed(Kind::TwilioForm, b"", 0);
    s.headers
        .insert("Content-Type", "application/json".parse().unwrap());
    s.body = br#"{"a":1}"#.to_vec();
    assert!(matches!(s.verify().unwrap_err(), VerifyError::Malformed(_)));
}

#[test]
fn standard_webhooks_published() {
    let body = br#"{"email":"test@example.com","username":"test_user"}"#;
    let h = headers(&[
        ("webhook-id", "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk"),
        ("webhook-timestamp", "1649367553"),
        (
            "webhook-signature",
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
        ),
    ]);
    let scheme = Scheme::standard_webhooks();
    let secret = Secret::for_scheme(&scheme, "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
    let v = Unverified::new(Method::POST, URL, &h, body)
        .verify(&scheme, &secret, at(1_649_367_553))
        .unwrap();
    assert_eq!(v.delivery_id(), "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk");
    assert_eq!(v.event_type(), None);
}

#[test]
fn standard_webhooks_rotation_any_match_passes() {
    let body = br#"{"email":"test@example.com","username":"test_user"}"#;
    let valid = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
    let others = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= v1a,Zm9v v2,bar v1,***";
    let secret = Secret::standard_webhooks("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
    for sig in [
        format!("{others} {valid}"),
        format!("{valid} {others}"),
        format!("{others}  {valid}  v1,x"),
    ] {
        let h = headers(&[
            ("webhook-id", "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk"),
            ("webhook-timestamp", "1649367553"),
            ("webhook-signature", &sig),
        ]);
        Unverified::new(Method::POST, URL, &h, body)
            .verify(&Scheme::standard_webhooks(), &secret, at(1_649_367_553))
            .unwrap();
    }
    let h = headers(&[
        ("webhook-id", "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk"),
        ("webhook-timestamp", "1649367553"),
        ("webhook-signature", others),
    ]);
    let err = Unverified::new(Method::POST, URL, &h, body)
        .verify(&Scheme::standard_webhooks(), &secret, at(1_649_367_553))
        .unwrap_err();
    assert_eq!(err, VerifyError::BadSignature);
}

#[test]
fn standard_webhooks_v1a_generated_key() {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use ed25519_dalek::Signer as _;
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let public = format!("whpk_{}", STANDARD.encode(key.verifying_key().as_bytes()));
    let secret = Secret::standard_webhooks(&public).unwrap();
    let body = br#"{"type":"invoice.paid","data":{}}"#;
    let sig = key.sign(b"msg_2.1649367553.{\"type\":\"invoice.paid\",\"data\":{}}");
    let v1_noise = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
    let h = headers(&[
        ("webhook-id", "msg_2"),
        ("webhook-timestamp", "1649367553"),
        (
            "webhook-signature",
            &format!("{v1_noise} v1a,{}", STANDARD.encode(sig.to_bytes())),
        ),
    ]);
    let v = Unverified::new(Method::POST, URL, &h, body)
        .verify(&Scheme::standard_webhooks(), &secret, at(1_649_367_553))
        .unwrap();
    assert_eq!(v.event_type(), Some("invoice.paid"));
    // The same signature as `v1` (wrong version) does not count.
    let h = headers(&[
        ("webhook-id", "msg_2"),
        ("webhook-timestamp", "1649367553"),
        (
            "webhook-signature",
            &format!("v1,{}", STANDARD.encode(sig.to_bytes())),
        ),
    ]);
    let err = Unverified::new(Method::POST, URL, &h, body)
        .verify(&Scheme::standard_webhooks(), &secret, at(1_649_367_553))
        .unwrap_err();
    assert_eq!(err, VerifyError::BadSignature);
}

#[test]
fn slack_computed() {
    let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J";
    let h = headers(&[
        ("X-Slack-Request-Timestamp", "1531420618"),
        (
            "X-Slack-Signature",
            "v0=bca5eef5dd737ed259b428b18cd24f679baa18c3fc5f1cb2a6ac9f03e717969a",
        ),
    ]);
    let secret = Secret::from_bytes("8f742231b10e8888abcd99yyyzzz85a5").unwrap();
    let v = Unverified::new(Method::POST, URL, &h, body)
        .verify(&Scheme::slack(), &secret, at(1_531_420_618))
        .unwrap();
    // A form body has no event_id: the signature's hash is the key.
    assert_eq!(v.delivery_id().len(), 64);
    assert!(!v.delivery_id_is_fallback());
}

#[test]
fn slack_event_id_and_type() {
    use crate::support::{Kind, signed};
    let body = br#"{"type":"event_callback","event_id":"Ev123","event":{"type":"app_mention"}}"#;
    let v = signed(Kind::Slack, body, crate::support::NOW);
    let v = v.verify().unwrap();
    assert_eq!(v.delivery_id(), "Ev123");
    assert_eq!(v.event_type(), Some("app_mention"));
    let s = signed(
        Kind::Slack,
        br#"{"type":"url_verification","challenge":"c"}"#,
        crate::support::NOW,
    );
    assert_eq!(s.verify().unwrap().event_type(), Some("url_verification"));
}

#[test]
fn shopify_computed() {
    let h = headers(&[
        (
            "X-Shopify-Hmac-SHA256",
            "1GxccvotnkOedTjSm8S0m/VA3yAUKshyqT52ccNYHj4=",
        ),
        ("X-Shopify-Webhook-Id", "wh-1"),
        ("X-Shopify-Topic", "orders/create"),
    ]);
    let secret = Secret::from_bytes("shpss_test").unwrap();
    let v = Unverified::new(Method::POST, URL, &h, br#"{"id":1}"#)
        .verify(&Scheme::Shopify, &secret, at(0))
        .unwrap();
    assert_eq!(v.delivery_id(), "wh-1");
    assert_eq!(v.event_type(), Some("orders/create"));
    let h = headers(&[(
        "Shopify-Hmac-Sha256",
        "1GxccvotnkOedTjSm8S0m/VA3yAUKshyqT52ccNYHj4=",
    )]);
    Unverified::new(Method::POST, URL, &h, br#"{"id":1}"#)
        .verify(&Scheme::Shopify, &secret, at(0))
        .unwrap();
}

#[test]
fn sendgrid_published() {
    let h = headers(&[
        (
            "X-Twilio-Email-Event-Webhook-Signature",
            "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0=",
        ),
        ("X-Twilio-Email-Event-Webhook-Timestamp", "1588788367"),
    ]);
    let scheme = Scheme::sendgrid();
    let secret = Secret::for_scheme(&scheme, "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==").unwrap();
    let body = br#"{"category":"example_payload","event":"test_event","message_id":"message_id"}"#;
    let v = Unverified::new(Method::POST, URL, &h, body)
        .verify(&scheme, &secret, at(1_588_788_367))
        .unwrap();
    assert_eq!(v.event_type(), Some("test_event"));
    let err = Unverified::new(Method::POST, URL, &h, b"payload")
        .verify(&scheme, &secret, at(1_588_788_367))
        .unwrap_err();
    assert_eq!(err, VerifyError::BadSignature);
    let wrong = Secret::sendgrid_public_key("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8REntlo7aNDthvj+y7GjUuFDb/R1NGe1OPzpA==").unwrap();
    let err = Unverified::new(Method::POST, URL, &h, body)
        .verify(&scheme, &wrong, at(1_588_788_367))
        .unwrap_err();
    assert_eq!(err, VerifyError::BadSignature);
}

#[test]
fn sendgrid_batch_meta() {
    use crate::support::{Kind, NOW, signed};
    let one = br#"[{"email":"a@example.com","event":"delivered","sg_event_id":"ZGVs"}]"#;
    let v = signed(Kind::SendGrid, one, NOW);
    let v = v.verify().unwrap();
    assert_eq!(v.delivery_id(), "ZGVs");
    assert_eq!(v.event_type(), Some("delivered"));
    let two = br#"[{"event":"delivered","sg_event_id":"a"},{"event":"open","sg_event_id":"b"}]"#;
    let s = signed(Kind::SendGrid, two, NOW);
    let v = s.verify().unwrap();
    assert!(v.delivery_id_is_fallback());
    assert_eq!(v.event_type(), None);
}

#[test]
fn azure_devops_basic_and_envelope() {
    use crate::support::{Kind, signed};
    let body = br#"{"subscriptionId":"s","notificationId":1,"id":"03c164c2-8912-4d5e-8009-3707d5f83734","eventType":"git.pullrequest.created","publisherId":"tfs"}"#;
    let s = signed(Kind::AdoBasic, body, 0);
    let v = s.verify().unwrap();
    assert_eq!(v.delivery_id(), "03c164c2-8912-4d5e-8009-3707d5f83734");
    assert_eq!(v.event_type(), Some("git.pullrequest.created"));
    // Right password, wrong user.
    let mut wrong_user = s.clone();
    use base64::Engine as _;
    let creds = base64::engine::general_purpose::STANDARD.encode("eve:test-secret-of-the-tenant");
    wrong_user
        .headers
        .insert("Authorization", format!("Basic {creds}").parse().unwrap());
    assert_eq!(wrong_user.verify().unwrap_err(), VerifyError::BadSignature);
    let mut bearer = s.clone();
    bearer
        .headers
        .insert("Authorization", "Bearer abc".parse().unwrap());
    assert!(matches!(
        bearer.verify().unwrap_err(),
        VerifyError::Malformed(_)
    ));
    let h = signed(Kind::AdoHeader, body, 0);
    assert_eq!(
        h.verify().unwrap().delivery_id(),
        "03c164c2-8912-4d5e-8009-3707d5f83734"
    );
}

const VALIDATION: &[u8] = br#"[{"id":"2d1781af-3a4c-4d7c-bd0c-e34b19da4e66","topic":"/subscriptions/x","subject":"","data":{"validationCode":"512d38b6-c7b8-40c8-89fe-f46f9e9622b6","validationUrl":"https://rp-eastus2.eventgrid.azure.net:553/eventsubscriptions/x/validate?id=1&t=2&apiVersion=2018-05-01-preview&token=3"},"eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","eventTime":"2018-01-25T22:12:19.4556811Z","metadataVersion":"1","dataVersion":"1"}]"#;

#[test]
fn event_grid_handshake() {
    let h = headers(&[("aeg-event-type", "SubscriptionValidation")]);
    let secret = Secret::from_bytes("grid-key").unwrap();
    let with_code = format!("{URL}?code=grid-key");
    let v = Unverified::new(Method::POST, &with_code, &h, VALIDATION)
        .verify(&Scheme::event_grid(), &secret, at(0))
        .unwrap();
    let hs = v.handshake().unwrap();
    assert!(matches!(
        hs,
        Handshake::EventGridValidation {
            validation_url: Some(_),
            ..
        }
    ));
    assert_eq!(
        hs.response_body(),
        serde_json::json!({"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"})
    );
    assert_eq!(v.delivery_id(), "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66");
    // Without the secret the handshake is refused by default...
    let err = Unverified::new(Method::POST, URL, &h, VALIDATION)
        .verify(&Scheme::event_grid(), &secret, at(0))
        .unwrap_err();
    assert_eq!(err, VerifyError::MissingHeader("x-webhook-key".into()));
    // ...and answered when configured so.
    let relaxed = Scheme::EventGrid {
        handshake_requires_secret: false,
    };
    let v = Unverified::new(Method::POST, URL, &h, VALIDATION)
        .verify(&relaxed, &secret, at(0))
        .unwrap();
    assert!(v.handshake().is_some());
    // A handshake without a validation code is malformed.
    let err = Unverified::new(Method::POST, &with_code, &h, b"[]")
        .verify(&Scheme::event_grid(), &secret, at(0))
        .unwrap_err();
    assert!(matches!(err, VerifyError::Malformed(_)));
}

#[test]
fn event_grid_notification() {
    let h = headers(&[
        ("aeg-event-type", "Notification"),
        ("x-webhook-key", "grid-key"),
    ]);
    let secret = Secret::from_bytes("grid-key").unwrap();
    let body = br#"[{"id":"e-1","eventType":"Microsoft.Communication.SMSDeliveryReportReceived","data":{}}]"#;
    let v = Unverified::new(Method::POST, URL, &h, body)
        .verify(&Scheme::event_grid(), &secret, at(0))
        .unwrap();
    assert!(v.handshake().is_none());
    assert_eq!(v.delivery_id(), "e-1");
    assert_eq!(
        v.event_type(),
        Some("Microsoft.Communication.SMSDeliveryReportReceived")
    );
    // Both credentials presented: both must match.
    let wrong_code = format!("{URL}?code=nope");
    let err = Unverified::new(Method::POST, &wrong_code, &h, body)
        .verify(&Scheme::event_grid(), &secret, at(0))
        .unwrap_err();
    assert_eq!(err, VerifyError::BadSignature);
}

#[test]
fn generic_several_signatures() {
    use crate::support::{Kind, NOW, signed};
    let mut s = signed(Kind::Generic, b"{}", NOW);
    let valid = s.headers["x-signature"].to_str().unwrap().to_owned();
    s.headers.insert(
        "x-signature",
        format!("sha256=00ff, {valid} md5=abc").parse().unwrap(),
    );
    let v = s.verify().unwrap();
    assert_eq!(v.delivery_id(), "evt_generic_1");
    assert_eq!(v.event_type(), Some("thing.happened"));
    s.headers.insert("x-signature", "md5=abc".parse().unwrap());
    assert!(matches!(s.verify().unwrap_err(), VerifyError::Malformed(_)));
}

#[test]
fn public_key_with_hmac_scheme_is_bad_secret() {
    use crate::support::{Kind, NOW, signed};
    let mut s = signed(Kind::Github, b"x", NOW);
    s.secret = Kind::StandardV1a.secret();
    let err = s.verify().unwrap_err();
    assert_eq!(err, VerifyError::BadSecret);
    assert_eq!(err.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut s = signed(Kind::SendGrid, b"x", NOW);
    s.secret = Kind::Github.secret();
    assert_eq!(s.verify().unwrap_err(), VerifyError::BadSecret);
}

#[test]
fn status_mapping() {
    use http::StatusCode;
    assert_eq!(VerifyError::BadSignature.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        VerifyError::TimestampOutOfTolerance.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        VerifyError::MissingHeader("x".into()).status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        VerifyError::DuplicateHeader("x".into()).status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        VerifyError::Malformed("x").status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        VerifyError::TooLarge { limit: 1 }.status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

/// A Zendesk ticket event signed outside Rust (Python's `hmac`, base64 of HMAC-SHA256 over
/// the ISO 8601 timestamp followed by the body).
#[test]
fn zendesk_computed() {
    let body = br#"{"type":"zen:event-type:ticket.status_changed","account_id":22129848,"id":"a8b9c1d2-3e4f-5a6b-7c8d-9e0f1a2b3c4d","time":"2024-04-17T17:18:09Z","subject":"zen:ticket:5158","detail":{"id":"5158","status":"SOLVED"},"event":{"current":"SOLVED","previous":"OPEN"}}"#;
    let h = headers(&[
        (
            "X-Zendesk-Webhook-Signature",
            "TwnNJrxabyO7QYDpMOZpbIphlC2B27P8siHqjaMbdmw=",
        ),
        (
            "X-Zendesk-Webhook-Signature-Timestamp",
            "2024-04-17T17:18:10Z",
        ),
    ]);
    let secret = Secret::from_bytes("dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ").unwrap();
    let now = at(1_713_374_290);
    let v = Unverified::new(Method::POST, URL, &h, body)
        .verify(&Scheme::zendesk(), &secret, now)
        .unwrap();
    assert_eq!(v.delivery_id(), "a8b9c1d2-3e4f-5a6b-7c8d-9e0f1a2b3c4d");
    assert_eq!(v.event_type(), Some("zen:event-type:ticket.status_changed"));
    // One byte of the body changed.
    let mut tampered = body.to_vec();
    tampered[body.len() - 3] = b'D';
    assert_eq!(
        Unverified::new(Method::POST, URL, &h, &tampered)
            .verify(&Scheme::zendesk(), &secret, now)
            .unwrap_err(),
        VerifyError::BadSignature
    );
}

/// A HubSpot v3 delivery signed outside Rust (Python's `hmac`: base64 HMAC-SHA256 over
/// `POST` + the URL + the body + the millisecond timestamp).
#[test]
fn hubspot_computed() {
    let body = br#"[{"eventId":100,"subscriptionId":12345,"portalId":62515,"occurredAt":1764000000000,"subscriptionType":"contact.propertyChange","attemptNumber":0,"objectId":123,"propertyName":"email","propertyValue":"ada@example.org","changeSource":"CRM"}]"#;
    let h = headers(&[
        (
            "X-HubSpot-Signature-v3",
            "/fWwJpcNDBEDFmce3tD5Zvo7kkXqk0TvQAXo9BACdpE=",
        ),
        ("X-HubSpot-Request-Timestamp", "1764000000123"),
    ]);
    let secret = Secret::from_bytes("hubspot-client-secret-0123456789abcdef").unwrap();
    let now = at(1_764_000_060);
    let v = Unverified::new(Method::POST, URL, &h, body)
        .verify(&Scheme::hubspot(), &secret, now)
        .unwrap();
    assert_eq!(v.delivery_id(), "100");
    assert_eq!(v.event_type(), Some("contact.propertyChange"));
    // Another URL (the URI is signed), or six minutes later: refused.
    assert_eq!(
        Unverified::new(Method::POST, "https://hooks.example.com/other", &h, body)
            .verify(&Scheme::hubspot(), &secret, now)
            .unwrap_err(),
        VerifyError::BadSignature
    );
    assert_eq!(
        Unverified::new(Method::POST, URL, &h, body)
            .verify(&Scheme::hubspot(), &secret, at(1_764_000_360))
            .unwrap_err(),
        VerifyError::TimestampOutOfTolerance
    );
}

/// Adyen's published HMAC example: the key is hex (decoded before use), the signed string the
/// item's fields joined by colons (`originalReference` empty).
const ADYEN_KEY: &str = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056";
const ADYEN_SIGNATURE: &str = "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0=";

fn adyen_item(signature: &str) -> serde_json::Value {
    serde_json::json!({"NotificationRequestItem": {
        "eventCode": "AUTHORISATION", "success": "true", "pspReference": "7914073381342284",
        "originalReference": "", "merchantAccountCode": "TestMerchant",
        "merchantReference": "TestPayment-1407325143704",
        "amount": {"value": 1130, "currency": "EUR"}, "eventDate": "2019-05-06T17:15:34.121+02:00",
        "additionalData": {"hmacSignature": signature}}})
}

fn adyen(items: Vec<serde_json::Value>) -> Result<(Option<String>, String), VerifyError> {
    let body = serde_json::json!({"live": "false", "notificationItems": items}).to_string();
    let secret = Secret::for_scheme(&Scheme::Adyen, ADYEN_KEY).unwrap();
    let h = HeaderMap::new();
    let req = Unverified::new(Method::POST, URL, &h, body.as_bytes());
    req.verify(&Scheme::Adyen, &secret, at(0)).map(|v| {
        (
            v.event_type().map(str::to_owned),
            v.delivery_id().to_owned(),
        )
    })
}

#[test]
fn adyen_published() {
    let (event, delivery) = adyen(vec![adyen_item(ADYEN_SIGNATURE)]).unwrap();
    assert_eq!(event.as_deref(), Some("AUTHORISATION"));
    // Adyen's dedupe key: the same notification sent again is the same delivery.
    assert_eq!(delivery, "7914073381342284:AUTHORISATION:true");
}

#[test]
fn adyen_refuses_a_changed_field_a_missing_signature_or_one_bad_item() {
    let mut changed = adyen_item(ADYEN_SIGNATURE);
    changed["NotificationRequestItem"]["amount"]["value"] = serde_json::json!(1131);
    assert!(matches!(
        adyen(vec![changed.clone()]),
        Err(VerifyError::BadSignature)
    ));
    let mut unsigned = adyen_item(ADYEN_SIGNATURE);
    unsigned["NotificationRequestItem"]["additionalData"] = serde_json::json!({});
    assert!(matches!(
        adyen(vec![unsigned]),
        Err(VerifyError::BadSignature)
    ));
    assert!(matches!(
        adyen(vec![adyen_item("not base64!")]),
        Err(VerifyError::BadSignature)
    ));
    // Every item must verify: a good one does not carry a bad one.
    assert!(matches!(
        adyen(vec![adyen_item(ADYEN_SIGNATURE), changed]),
        Err(VerifyError::BadSignature)
    ));
    // Two good items: one delivery of no single id (the body's hash stands in).
    let (_, delivery) = adyen(vec![
        adyen_item(ADYEN_SIGNATURE),
        adyen_item(ADYEN_SIGNATURE),
    ])
    .unwrap();
    assert_ne!(delivery, "7914073381342284:AUTHORISATION:true");
    assert!(matches!(adyen(vec![]), Err(VerifyError::Malformed(_))));
    let secret = Secret::for_scheme(&Scheme::Adyen, ADYEN_KEY).unwrap();
    let h = HeaderMap::new();
    for body in [&b"[accepted]"[..], b"{}", b"{\"notificationItems\": [1]}"] {
        let req = Unverified::new(Method::POST, URL, &h, body);
        assert!(matches!(
            req.verify(&Scheme::Adyen, &secret, at(0)),
            Err(VerifyError::Malformed(_))
        ));
    }
}

#[test]
fn adyen_keys_are_hex_of_enough_bytes() {
    // The hex text itself is not the key: signing with it fails the published vector.
    let as_text = Secret::for_scheme(&Scheme::Github, ADYEN_KEY).unwrap();
    let body = serde_json::json!({"notificationItems": [adyen_item(ADYEN_SIGNATURE)]}).to_string();
    let h = HeaderMap::new();
    let req = Unverified::new(Method::POST, URL, &h, body.as_bytes());
    assert!(req.verify(&Scheme::Adyen, &as_text, at(0)).is_err());
    assert!(Secret::for_scheme(&Scheme::Adyen, "not hex at all").is_err());
    assert!(Secret::for_scheme(&Scheme::Adyen, "abc").is_err());
    let short = Secret::for_scheme(&Scheme::Adyen, "0011223344556677").unwrap();
    assert!(short.check_strength(&Scheme::Adyen).is_err(), "8 bytes");
    let key = Secret::for_scheme(&Scheme::Adyen, ADYEN_KEY).unwrap();
    assert!(key.check_strength(&Scheme::Adyen).is_ok());
}

/// BILL: the raw body's base64 HMAC-SHA256 with the subscription's security key (computed
/// here with the RustCrypto HMAC, not the code under test); the event's id and type.
#[test]
fn bill_reads_its_event_id_and_type() {
    use base64::Engine as _;
    use hmac::Mac as _;
    let key = "bill-subscription-security-key-0123";
    let body = br#"{"metadata":{"eventId":"evt_9x","subscriptionId":"sub_1","organizationId":"00801","eventType":"payment.updated","version":"1"},"payment":{"id":"stp01","status":"SENT"}}"#;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let h = headers(&[("x-bill-sha-signature", &signature)]);
    let secret = Secret::for_scheme(&Scheme::Bill, key).unwrap();
    let v = Unverified::new(Method::POST, URL, &h, body)
        .verify(&Scheme::Bill, &secret, at(0))
        .unwrap();
    assert_eq!(v.delivery_id(), "evt_9x");
    assert_eq!(v.event_type(), Some("payment.updated"));
    let other = Secret::for_scheme(&Scheme::Bill, "another-security-key-456789").unwrap();
    assert!(matches!(
        Unverified::new(Method::POST, URL, &h, body).verify(&Scheme::Bill, &other, at(0)),
        Err(VerifyError::BadSignature)
    ));
}
