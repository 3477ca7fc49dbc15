//! Properties: verification never panics, a correctly signed body always verifies, and any
//! single-byte change fails.

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use proptest::prelude::*;
use webhooks::Unverified;

use crate::support::{ALL, NOW, now, signed};

const NAMES: &[&str] = &[
    "x-hub-signature-256",
    "stripe-signature",
    "x-twilio-signature",
    "content-type",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-slack-signature",
    "x-slack-request-timestamp",
    "x-shopify-hmac-sha256",
    "shopify-hmac-sha256",
    "authorization",
    "x-ado-key",
    "aeg-event-type",
    "x-webhook-key",
    "x-signature",
    "x-timestamp",
    "x-twilio-email-event-webhook-signature",
    "x-twilio-email-event-webhook-timestamp",
    "x-bill-sha-signature",
    "x-other",
];

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..80),
        "(v1,|v1a,|sha256=|v0=|t=[0-9]{1,12},v1=|Basic )[A-Za-z0-9+/=, ]{0,90}"
            .prop_map(String::into_bytes),
        "[0-9-]{0,20}".prop_map(String::into_bytes),
    ]
}

fn headers() -> impl Strategy<Value = Vec<(usize, Vec<u8>)>> {
    proptest::collection::vec((0..NAMES.len(), header_value()), 0..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn verify_never_panics(
        pairs in headers(),
        body in proptest::collection::vec(any::<u8>(), 0..512),
        url in "https://[a-z]{1,8}\\.example/[a-z]{0,8}(\\?(code|bodySHA256|a)=[A-Za-z0-9%]{0,70}(&code=x)?)?",
        ts in any::<i64>(),
    ) {
        let mut h = HeaderMap::new();
        for (i, v) in &pairs {
            if let Ok(v) = HeaderValue::from_bytes(v) {
                h.append(HeaderName::from_static(NAMES[*i]), v);
            }
        }
        let at = chrono::DateTime::from_timestamp(ts % 100_000_000_000, 0).unwrap_or_else(now);
        for &kind in ALL {
            let req = Unverified::new(Method::POST, &url, &h, &body);
            let _ = req.verify(&kind.scheme(), &kind.secret(), at);
        }
        // Adyen signs inside the body: any body at all is read or refused.
        let adyen = webhooks::Secret::for_scheme(&webhooks::Scheme::Adyen, "00112233445566778899aabbccddeeff").unwrap();
        let _ = Unverified::new(Method::POST, &url, &h, &body).verify(&webhooks::Scheme::Adyen, &adyen, at);
    }

    /// Adyen notifications of any shape (items with fields of any JSON type, any signature)
    /// are read or refused, never with a panic, and never accepted unsigned.
    #[test]
    fn adyen_notifications_of_any_shape_never_panic(
        items in proptest::collection::vec(
            proptest::collection::btree_map(
                "(pspReference|eventCode|success|amount|merchantReference|additionalData|x)",
                prop_oneof![
                    Just(serde_json::json!(null)),
                    any::<i64>().prop_map(|n| serde_json::json!(n)),
                    "[ -~]{0,20}".prop_map(|s| serde_json::json!(s)),
                    Just(serde_json::json!({"value": 1, "currency": "EUR", "hmacSignature": "AAAA"})),
                    Just(serde_json::json!([1, 2])),
                ],
                0..6,
            ),
            0..4,
        ),
    ) {
        let body = serde_json::json!({"notificationItems": items.iter()
            .map(|i| serde_json::json!({"NotificationRequestItem": i})).collect::<Vec<_>>()})
            .to_string();
        let h = HeaderMap::new();
        let key = webhooks::Secret::for_scheme(&webhooks::Scheme::Adyen, "00112233445566778899aabbccddeeff").unwrap();
        let verified = Unverified::new(Method::POST, "https://a.example/x", &h, body.as_bytes())
            .verify(&webhooks::Scheme::Adyen, &key, now())
            .is_ok();
        prop_assert!(!verified, "an unsigned notification verified: {body}");
    }

    #[test]
    fn signed_bodies_verify_and_single_byte_changes_fail(
        body in proptest::collection::vec(any::<u8>(), 1..1024),
        index in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        for &kind in ALL {
            let s = signed(kind, &body, NOW);
            prop_assert!(s.verify().is_ok(), "{kind:?} did not verify");
            if kind.binds_body_bytes() {
                let mut changed = body.clone();
                changed[index.index(body.len())] ^= flip;
                prop_assert!(s.with_body(changed).verify().is_err(), "{kind:?} accepted a change");
            }
        }
    }

    #[test]
    fn mangled_signed_headers_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..256),
        which in 0usize..4,
        value in header_value(),
    ) {
        for &kind in ALL {
            let mut s = signed(kind, &body, NOW);
            let names: Vec<HeaderName> = s.headers.keys().cloned().collect();
            if let (Some(name), Ok(v)) = (names.get(which % names.len().max(1)), HeaderValue::from_bytes(&value)) {
                s.headers.insert(name.clone(), v);
            }
            let _ = s.verify();
        }
    }
}
