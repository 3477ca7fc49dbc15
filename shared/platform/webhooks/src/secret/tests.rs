use super::*;

#[test]
fn debug_is_redacted() {
    let s = Secret::from_bytes("super-secret-value").unwrap();
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("super"), "{dbg}");
    assert!(dbg.contains("redacted"));
}

#[test]
fn standard_webhooks_decodes_whsec() {
    let s = Secret::standard_webhooks("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
    assert_eq!(s.symmetric().unwrap().len(), 24);
    assert_eq!(
        Secret::standard_webhooks("whsec_not base64!").unwrap_err(),
        VerifyError::BadSecret
    );
}

#[test]
fn whpk_needs_32_bytes() {
    assert_eq!(
        Secret::standard_webhooks("whpk_AAAA").unwrap_err(),
        VerifyError::BadSecret
    );
    let s = Secret::standard_webhooks("whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=").unwrap();
    assert!(matches!(s.key(), Key::Ed25519(_)));
    assert!(s.symmetric().is_err());
}

#[test]
fn empty_secret_is_refused() {
    assert_eq!(Secret::from_bytes("").unwrap_err(), VerifyError::BadSecret);
}

#[test]
fn sendgrid_key_parses() {
    let k = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==";
    assert!(matches!(
        Secret::sendgrid_public_key(k).unwrap().key(),
        Key::P256(_)
    ));
    assert!(Secret::sendgrid_public_key("bm90IGEga2V5").is_err());
}
