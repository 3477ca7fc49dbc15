use super::*;

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;

#[test]
fn published_vector() {
    let secret = Secret::standard_webhooks(SECRET).unwrap();
    let sig = sign(
        &secret,
        "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
        1_649_367_553,
        BODY,
    )
    .unwrap();
    assert_eq!(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
}

#[test]
fn several_secrets_are_space_separated() {
    let a = Secret::standard_webhooks(SECRET).unwrap();
    let b = Secret::standard_webhooks(&generate_secret()).unwrap();
    let all = sign_all([&a, &b], "msg_1", 1, b"x").unwrap();
    let parts: Vec<_> = all.split(' ').collect();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0], sign(&a, "msg_1", 1, b"x").unwrap());
    assert_eq!(parts[1], sign(&b, "msg_1", 1, b"x").unwrap());
    assert_eq!(
        sign_all(std::iter::empty(), "m", 1, b"").unwrap_err(),
        VerifyError::BadSecret
    );
}

#[test]
fn generated_secret_shape() {
    let s = generate_secret();
    let b64 = s.strip_prefix("whsec_").unwrap();
    assert_eq!(STANDARD.decode(b64).unwrap().len(), 32);
    assert_ne!(s, generate_secret());
}

#[test]
fn public_key_cannot_sign() {
    let pk = Secret::ed25519_public_key(&[
        0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07,
        0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07,
        0x51, 0x1a,
    ])
    .unwrap();
    assert_eq!(sign(&pk, "m", 1, b"").unwrap_err(), VerifyError::BadSecret);
}
