use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, Utc};

fn tokens() -> DevTokens {
    DevTokens::from_key(vec![7u8; 32]).unwrap()
}

#[test]
fn issued_tokens_verify_with_tenant_and_roles() {
    let t = tokens();
    let now = Utc::now();
    let tok = t
        .issue("acme", &["operator".into()], Duration::hours(1), now)
        .unwrap();
    let p = t.verify(&tok, now).unwrap();
    assert_eq!(p.tenant_id, "acme");
    assert!(p.has_role("operator"));
    assert!(!p.has_role("admin"));
}

#[test]
fn tampering_wrong_keys_and_times_are_refused() {
    let t = tokens();
    let now = Utc::now();
    let tok = t.issue("acme", &[], Duration::hours(1), now).unwrap();
    // Swap the payload for one naming another tenant, keeping the signature.
    let other = t.issue("evil", &[], Duration::hours(1), now).unwrap();
    let parts: Vec<&str> = tok.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        other.split('.').nth(1).unwrap(),
        parts[2]
    );
    assert_eq!(t.verify(&forged, now), Err(TokenError::BadSignature));
    let stranger = DevTokens::from_key(vec![8u8; 32]).unwrap();
    assert_eq!(stranger.verify(&tok, now), Err(TokenError::BadSignature));
    assert_eq!(
        t.verify(&tok, now + Duration::hours(2)),
        Err(TokenError::Expired)
    );
    assert_eq!(
        t.verify(&tok, now - Duration::hours(1)),
        Err(TokenError::NotYetValid)
    );
    assert_eq!(t.verify("not a token", now), Err(TokenError::Malformed));
    assert_eq!(t.verify("a.b.c.d", now), Err(TokenError::Malformed));
    // alg=none is refused even with an empty signature.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
        parts[1]
    );
    assert_eq!(t.verify(&none, now), Err(TokenError::BadSignature));
}

#[test]
fn bad_tenants_are_refused_at_issue() {
    let now = Utc::now();
    assert_eq!(
        tokens().issue("", &[], Duration::hours(1), now),
        Err(TokenError::BadTenant)
    );
    for bad in [
        "a/b",
        ".",
        "..",
        "platform",
        &"x".repeat(65),
        "a b",
        "tenänt",
    ] {
        assert_eq!(
            tokens().issue(bad, &[], Duration::hours(1), now),
            Err(TokenError::BadTenant),
            "{bad}"
        );
    }
    for good in ["a", "tenant-a", "t.1_x", ".hidden", "a..b", &"x".repeat(64)] {
        assert!(
            tokens().issue(good, &[], Duration::hours(1), now).is_ok(),
            "{good}"
        );
    }
}

#[test]
fn the_key_file_is_created_once_private_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let a = DevTokens::load_or_create(dir.path()).unwrap();
    let b = DevTokens::load_or_create(dir.path()).unwrap();
    let now = Utc::now();
    let tok = a.issue("t", &[], Duration::hours(1), now).unwrap();
    assert!(
        b.verify(&tok, now).is_ok(),
        "a second load uses the same key"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(
        !format!("{a:?}").contains(&STANDARD.encode(&a.key)),
        "Debug hides the key"
    );
}
