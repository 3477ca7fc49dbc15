//! The negative matrix, run for every scheme: tampered body, wrong secret, missing headers,
//! duplicated signature headers, oversized bodies, timestamps outside the tolerance.

use http::StatusCode;
use webhooks::{DEFAULT_BODY_LIMIT, VerifyError};

use crate::support::{ALL, Kind, NOW, Signed, at, signed};

fn sample_body(kind: Kind) -> Vec<u8> {
    match kind {
        Kind::TwilioForm | Kind::TwilioSha256 => {
            b"MessageSid=SM1&MessageStatus=delivered&To=%2B972501234567".to_vec()
        }
        Kind::EventGridQuery | Kind::EventGridHeader => {
            br#"[{"id":"e-1","eventType":"Microsoft.Communication.SMSReceived","data":{}}]"#
                .to_vec()
        }
        _ => br#"{"id":"evt_1","type":"thing.happened","event_id":"Ev1"}"#.to_vec(),
    }
}

fn fixture(kind: Kind) -> Signed {
    signed(kind, &sample_body(kind), NOW)
}

/// No error message may carry the secret or the signature.
fn assert_clean(s: &Signed, err: &VerifyError) {
    let msg = format!("{err} {err:?}");
    assert!(!msg.contains("test-secret-of-the-tenant"), "{msg}");
    for (_, v) in &s.headers {
        let v = v.to_str().unwrap();
        if v.len() > 16 {
            assert!(!msg.contains(v), "{msg} contains a header value");
        }
    }
}

#[test]
fn valid_requests_verify() {
    for &kind in ALL {
        let s = fixture(kind);
        let v = s.verify().unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert_eq!(v.body(), s.body.as_slice(), "{kind:?}");
        assert!(v.handshake().is_none());
        assert!(!v.delivery_id().is_empty());
    }
}

#[test]
fn tampered_body_fails() {
    for &kind in ALL {
        let s = fixture(kind);
        let tampered = match kind {
            // Shared-secret schemes do not sign the body: nothing to tamper with.
            Kind::AdoBasic | Kind::AdoHeader | Kind::EventGridQuery | Kind::EventGridHeader => {
                continue;
            }
            Kind::TwilioForm | Kind::TwilioSha256 => {
                b"MessageSid=SM1&MessageStatus=failed&To=%2B972501234567".to_vec()
            }
            _ => {
                let mut b = s.body.clone();
                b[3] ^= 0x01;
                b
            }
        };
        let err = s.with_body(tampered).verify().unwrap_err();
        assert_eq!(err, VerifyError::BadSignature, "{kind:?}");
        assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
        assert_clean(&s, &err);
        // Appending one byte fails too.
        if kind.binds_body_bytes() {
            let mut longer = s.body.clone();
            longer.push(b' ');
            let err = s.with_body(longer).verify().unwrap_err();
            assert_eq!(err, VerifyError::BadSignature, "{kind:?}");
        }
    }
}

#[test]
fn wrong_secret_fails() {
    for &kind in ALL {
        let mut s = fixture(kind);
        s.secret = kind.wrong_secret();
        let err = s.verify().unwrap_err();
        assert_eq!(err, VerifyError::BadSignature, "{kind:?}");
        assert_clean(&s, &err);
    }
}

#[test]
fn missing_headers_fail() {
    for &kind in ALL {
        for name in kind.required_headers() {
            let mut s = fixture(kind);
            s.headers.remove(*name);
            let err = s.verify().unwrap_err();
            // Either Shopify spelling is accepted; the error names the documented one.
            let expected = match kind {
                Kind::ShopifyUnprefixed => "x-shopify-hmac-sha256",
                _ => name,
            };
            match &err {
                VerifyError::MissingHeader(h) => {
                    assert!(
                        h.eq_ignore_ascii_case(expected),
                        "{kind:?}: {h} != {expected}"
                    );
                }
                other => panic!("{kind:?} without {name}: {other:?}"),
            }
            assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
        }
    }
    // Event Grid with the secret in the query: no query and no header.
    let mut s = fixture(Kind::EventGridQuery);
    s.url = s.url.split('?').next().unwrap().to_owned();
    assert!(matches!(
        s.verify().unwrap_err(),
        VerifyError::MissingHeader(_)
    ));
}

#[test]
fn duplicate_signature_headers_fail() {
    for &kind in ALL {
        let Some(name) = kind.signature_header() else {
            continue;
        };
        let mut s = fixture(kind);
        let value = s.headers[name].clone();
        s.headers.append(name, value);
        let err = s.verify().unwrap_err();
        assert!(
            matches!(&err, VerifyError::DuplicateHeader(h) if h.eq_ignore_ascii_case(name)),
            "{kind:?}: {err:?}"
        );
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }
    // Every timestamp header twice is ambiguous too.
    for &kind in ALL.iter().filter(|k| k.timestamped()) {
        let name = kind.timestamp_header().unwrap();
        let mut s = fixture(kind);
        let value = s.headers[name].clone();
        s.headers.append(name, value);
        assert!(
            matches!(s.verify().unwrap_err(), VerifyError::DuplicateHeader(_)),
            "{kind:?}"
        );
    }
    // Shopify's two header spellings at once are ambiguous.
    let mut s = fixture(Kind::Shopify);
    let value = s.headers["x-shopify-hmac-sha256"].clone();
    s.headers.insert("shopify-hmac-sha256", value);
    assert!(matches!(
        s.verify().unwrap_err(),
        VerifyError::DuplicateHeader(_)
    ));
    // Event Grid's `code` twice.
    let mut s = fixture(Kind::EventGridQuery);
    s.url.push_str("&code=other");
    assert!(matches!(s.verify().unwrap_err(), VerifyError::Malformed(_)));
}

#[test]
fn oversized_body_is_refused_before_hashing() {
    for &kind in ALL {
        let s = fixture(kind);
        let limit = s.body.len() - 1;
        let err = s
            .request()
            .with_body_limit(limit)
            .verify(&s.scheme, &s.secret, crate::support::now())
            .unwrap_err();
        assert_eq!(err, VerifyError::TooLarge { limit }, "{kind:?}");
        assert_eq!(err.status(), StatusCode::PAYLOAD_TOO_LARGE);
        // Exactly at the limit passes.
        s.request()
            .with_body_limit(s.body.len())
            .verify(&s.scheme, &s.secret, crate::support::now())
            .unwrap();
    }
    let big = vec![b'a'; DEFAULT_BODY_LIMIT + 1];
    let s = signed(Kind::Github, &big, NOW);
    assert_eq!(
        s.verify().unwrap_err(),
        VerifyError::TooLarge {
            limit: DEFAULT_BODY_LIMIT
        }
    );
}

#[test]
fn timestamps_outside_tolerance_fail() {
    for &kind in ALL.iter().filter(|k| k.timestamped()) {
        let body = sample_body(kind);
        for offset in [-301, 301, -100_000, 100_000] {
            let s = signed(kind, &body, NOW + offset);
            let err = s.verify().unwrap_err();
            assert_eq!(
                err,
                VerifyError::TimestampOutOfTolerance,
                "{kind:?} {offset}"
            );
            assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
        }
        for offset in [-300, -299, 0, 299, 300] {
            let s = signed(kind, &body, NOW + offset);
            let v = s
                .verify()
                .unwrap_or_else(|e| panic!("{kind:?} {offset}: {e}"));
            assert_eq!(v.signed_at(), Some(at(NOW + offset)));
        }
        // A timestamp that is not a number.
        let mut s = signed(kind, &body, NOW);
        let name = kind.timestamp_header().unwrap();
        if name != "stripe-signature" {
            s.headers.insert(name, "yesterday".parse().unwrap());
            assert!(
                matches!(s.verify().unwrap_err(), VerifyError::Malformed(_)),
                "{kind:?}"
            );
        }
    }
}

#[test]
fn schemes_without_timestamp_ignore_the_clock() {
    for &kind in ALL.iter().filter(|k| !k.timestamped()) {
        let s = fixture(kind);
        s.request()
            .verify(&s.scheme, &s.secret, at(NOW + 10 * 365 * 86_400))
            .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
    }
}
