//! Our Standard Webhooks signer and verifier against the `standardwebhooks` crate, both ways.

use http::Method;
use proptest::prelude::*;
use webhooks::{Scheme, Secret, Unverified, outbound};

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

fn our_signed_theirs_verify(secret: &str, msg_id: &str, body: &str) {
    let ts = chrono::Utc::now().timestamp();
    let ours = Secret::standard_webhooks(secret).unwrap();
    let headers = outbound::signed_headers([&ours], msg_id, ts, body.as_bytes()).unwrap();
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(body.as_bytes(), &headers)
        .unwrap();
}

fn their_signed_ours_verify(secret: &str, msg_id: &str, ts: i64, body: &str) {
    let sig = standardwebhooks::Webhook::new(secret)
        .unwrap()
        .sign(msg_id, ts, body.as_bytes())
        .unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert("webhook-id", msg_id.parse().unwrap());
    headers.insert("webhook-timestamp", ts.into());
    headers.insert("webhook-signature", sig.parse().unwrap());
    let secret = Secret::standard_webhooks(secret).unwrap();
    let at = chrono::DateTime::from_timestamp(ts, 0).unwrap();
    Unverified::new(
        Method::POST,
        "https://x.example/",
        &headers,
        body.as_bytes(),
    )
    .verify(&Scheme::standard_webhooks(), &secret, at)
    .unwrap();
}

#[test]
fn both_ways_fixed() {
    let body = r#"{"email":"test@example.com","username":"test_user"}"#;
    our_signed_theirs_verify(SECRET, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", body);
    their_signed_ours_verify(
        SECRET,
        "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
        1_649_367_553,
        body,
    );
    let generated = outbound::generate_secret();
    our_signed_theirs_verify(&generated, "msg_2", body);
    their_signed_ours_verify(&generated, "msg_2", 1_700_000_000, body);
}

#[test]
fn rotation_list_verifies_with_either_secret_in_theirs() {
    let old = outbound::generate_secret();
    let new = outbound::generate_secret();
    let secrets = [
        Secret::standard_webhooks(&old).unwrap(),
        Secret::standard_webhooks(&new).unwrap(),
    ];
    let ts = chrono::Utc::now().timestamp();
    let headers = outbound::signed_headers(&secrets, "msg_rot", ts, b"{}").unwrap();
    for s in [&old, &new] {
        standardwebhooks::Webhook::new(s)
            .unwrap()
            .verify(b"{}", &headers)
            .unwrap();
    }
    let third = outbound::generate_secret();
    assert!(
        standardwebhooks::Webhook::new(&third)
            .unwrap()
            .verify(b"{}", &headers)
            .is_err()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn both_ways_arbitrary(
        key in proptest::collection::vec(any::<u8>(), 24..64),
        msg_id in "msg_[A-Za-z0-9]{1,30}",
        body in ".{0,300}",
        ts in 1_000_000_000i64..4_000_000_000,
    ) {
        use base64::Engine as _;
        let secret = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(&key));
        our_signed_theirs_verify(&secret, &msg_id, &body);
        their_signed_ours_verify(&secret, &msg_id, ts, &body);
        let ours = outbound::sign(&Secret::standard_webhooks(&secret).unwrap(), &msg_id, ts, body.as_bytes()).unwrap();
        let theirs = standardwebhooks::Webhook::new(&secret).unwrap().sign(&msg_id, ts, body.as_bytes()).unwrap();
        prop_assert_eq!(ours, theirs);
    }
}
