//! `EntraAuthenticator` against a fake JWKS endpoint on 127.0.0.1.

use std::sync::Arc;
use std::time::Duration;

use auth::entra::{EntraAuthenticator, JwksPolicy};
use auth::{AuthError, Authenticator as _, TokenError};
use chrono::{TimeZone as _, Utc};
use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::*;

fn invalid(e: TokenError) -> Result<(), AuthError> {
    Err(AuthError::Invalid(e))
}

async fn check(auth: &EntraAuthenticator, token: &str) -> Result<(), AuthError> {
    auth.authenticate(token).await.map(|_| ())
}

/// Cold authenticator with the default policy against a fresh endpoint serving key 1.
async fn setup() -> (Arc<FakeJwks>, EntraAuthenticator) {
    let fake = FakeJwks::start(jwks(&[jwk1()])).await;
    let auth = authenticator(&fake.uri, JwksPolicy::default());
    (fake, auth)
}

fn with(claims: &Value, key: &str, value: Value) -> Value {
    let mut c = claims.clone();
    c[key] = value;
    c
}

fn without(claims: &Value, key: &str) -> Value {
    let mut c = claims.clone();
    c.as_object_mut().unwrap().remove(key);
    c
}

#[tokio::test]
async fn a_valid_token_gives_the_principal() {
    let (fake, auth) = setup().await;
    let p = auth.authenticate(&token1(&claims())).await.unwrap();
    assert_eq!(p.tenant_id, TENANT);
    assert_eq!(p.subject, "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ");
    assert_eq!(p.roles, ["operator", "reader"]);
    assert!(p.has_role("operator"));
    // A second token uses the cached key.
    auth.authenticate(&token1(&claims())).await.unwrap();
    assert_eq!(fake.hits(), 1);
}

#[tokio::test]
async fn roles_are_optional_but_must_be_strings() {
    let (_fake, auth) = setup().await;
    let p = auth
        .authenticate(&token1(&without(&claims(), "roles")))
        .await
        .unwrap();
    assert!(p.roles.is_empty());
    let p = auth
        .authenticate(&token1(&with(&claims(), "roles", json!([]))))
        .await
        .unwrap();
    assert!(p.roles.is_empty());
    for bad in [json!("operator"), json!(["operator", 7])] {
        assert_eq!(
            check(&auth, &token1(&with(&claims(), "roles", bad))).await,
            invalid(TokenError::Malformed)
        );
    }
}

#[tokio::test]
async fn the_issuer_must_match_exactly() {
    let (_fake, auth) = setup().await;
    for iss in [
        json!("https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0/"),
        json!("https://sts.windows.net/9188040d-6c67-4c5b-b112-36a304b66dad/"),
        json!("https://login.microsoftonline.com/other-tenant/v2.0"),
        json!([ISSUER]),
    ] {
        assert_eq!(
            check(&auth, &token1(&with(&claims(), "iss", iss))).await,
            invalid(TokenError::WrongAudience)
        );
    }
    assert_eq!(
        check(&auth, &token1(&without(&claims(), "iss"))).await,
        invalid(TokenError::WrongAudience)
    );
}

#[tokio::test]
async fn the_audience_is_a_string_or_an_array() {
    let (_fake, auth) = setup().await;
    let c = claims();
    for aud in [
        json!(AUDIENCE),
        json!([AUDIENCE]),
        json!(["api://something-else", AUDIENCE]),
    ] {
        check(&auth, &token1(&with(&c, "aud", aud))).await.unwrap();
    }
    for aud in [
        json!("api://something-else"),
        json!(["api://something-else", "api://third"]),
        json!([]),
        json!(42),
        json!("API://INTEGRATION-PLATFORM"),
    ] {
        assert_eq!(
            check(&auth, &token1(&with(&c, "aud", aud.clone()))).await,
            invalid(TokenError::WrongAudience),
            "{aud}"
        );
    }
    assert_eq!(
        check(&auth, &token1(&without(&c, "aud"))).await,
        invalid(TokenError::WrongAudience)
    );

    // Several accepted audiences (AUTH_AUDIENCE is a list).
    let mut config = config(&_fake.uri);
    config.audiences = vec!["00000000-1111".into(), AUDIENCE.into()];
    let two = EntraAuthenticator::new(config).unwrap();
    check(&two, &token1(&with(&c, "aud", json!("00000000-1111"))))
        .await
        .unwrap();
}

#[tokio::test]
async fn exp_and_nbf_are_checked_with_the_leeway() {
    let (_fake, auth) = setup().await;
    let t0 = 1_800_000_000;
    let at = |s: i64| Utc.timestamp_opt(s, 0).unwrap();
    let c = with(&with(&claims(), "nbf", json!(t0)), "exp", json!(t0 + 3600));
    let tok = token1(&c);
    auth.validate(&tok, at(t0 + 10)).await.unwrap();
    // Expired 30 s ago: inside the 60 s leeway; 61 s ago: outside.
    auth.validate(&tok, at(t0 + 3600 + 30)).await.unwrap();
    auth.validate(&tok, at(t0 + 3600 + 60)).await.unwrap();
    assert_eq!(
        auth.validate(&tok, at(t0 + 3600 + 61)).await,
        Err(AuthError::Invalid(TokenError::Expired))
    );
    // Valid in 30 s: inside the leeway; in 61 s: outside.
    auth.validate(&tok, at(t0 - 30)).await.unwrap();
    assert_eq!(
        auth.validate(&tok, at(t0 - 61)).await,
        Err(AuthError::Invalid(TokenError::NotYetValid))
    );
    // Through the trait (the clock): an hour-old token is expired.
    let old = with(&claims(), "exp", json!(now() - 3600));
    assert_eq!(
        check(&auth, &token1(&old)).await,
        invalid(TokenError::Expired)
    );
    let future = with(&claims(), "nbf", json!(now() + 3600));
    assert_eq!(
        check(&auth, &token1(&future)).await,
        invalid(TokenError::NotYetValid)
    );
    // `exp` is required, `nbf` is not; fractional NumericDates are fine.
    assert_eq!(
        check(&auth, &token1(&without(&claims(), "exp"))).await,
        invalid(TokenError::Malformed)
    );
    check(&auth, &token1(&without(&claims(), "nbf")))
        .await
        .unwrap();
    let frac = with(&claims(), "exp", json!(now() as f64 + 100.5));
    check(&auth, &token1(&frac)).await.unwrap();

    // A narrower leeway is honoured.
    let mut config = config(&_fake.uri);
    config.leeway = Duration::from_secs(5);
    let strict = EntraAuthenticator::new(config).unwrap();
    assert_eq!(
        strict.validate(&tok, at(t0 + 3600 + 30)).await,
        Err(AuthError::Invalid(TokenError::Expired))
    );
}

#[tokio::test]
async fn only_rs256_is_accepted_and_never_fetches_for_others() {
    let (fake, auth) = setup().await;
    let c = claims();
    // alg none, with and without a signature.
    let none = json!({ "alg": "none", "kid": KID1 });
    assert_eq!(
        check(&auth, &jwt(&none, &c, |_| Vec::new())).await,
        invalid(TokenError::BadSignature)
    );
    assert_eq!(
        check(&auth, &jwt(&none, &c, rs256(KEY1_PEM))).await,
        invalid(TokenError::BadSignature)
    );
    // Algorithm confusion: HS256 keyed with the public key (PEM bytes and the JWK modulus).
    let hs = json!({ "alg": "HS256", "kid": KID1 });
    let hmac_with = |secret: Vec<u8>| {
        move |input: &[u8]| {
            let mut mac = Hmac::<Sha256>::new_from_slice(&secret).unwrap();
            mac.update(input);
            mac.finalize().into_bytes().to_vec()
        }
    };
    assert_eq!(
        check(
            &auth,
            &jwt(&hs, &c, hmac_with(KEY1_PUB_PEM.as_bytes().to_vec()))
        )
        .await,
        invalid(TokenError::BadSignature)
    );
    let n = jwk1()["n"].as_str().unwrap().as_bytes().to_vec();
    assert_eq!(
        check(&auth, &jwt(&hs, &c, hmac_with(n))).await,
        invalid(TokenError::BadSignature)
    );
    // Other RSA flavours and lookalikes: a correct RS256 signature labelled otherwise.
    for alg in ["RS384", "RS512", "PS256", "ES256", "rs256", "RS256 "] {
        let h = json!({ "alg": alg, "kid": KID1 });
        assert_eq!(
            check(&auth, &jwt(&h, &c, rs256(KEY1_PEM))).await,
            invalid(TokenError::BadSignature),
            "{alg}"
        );
    }
    assert_eq!(
        fake.hits(),
        0,
        "a refused algorithm must not reach the JWKS"
    );
}

#[tokio::test]
async fn header_problems_are_malformed() {
    let (fake, auth) = setup().await;
    let c = claims();
    let no_kid = json!({ "alg": "RS256", "typ": "JWT" });
    assert_eq!(
        check(&auth, &jwt(&no_kid, &c, rs256(KEY1_PEM))).await,
        invalid(TokenError::Malformed)
    );
    let empty_kid = json!({ "alg": "RS256", "kid": "" });
    assert_eq!(
        check(&auth, &jwt(&empty_kid, &c, rs256(KEY1_PEM))).await,
        invalid(TokenError::Malformed)
    );
    let no_alg = json!({ "kid": KID1 });
    assert_eq!(
        check(&auth, &jwt(&no_alg, &c, rs256(KEY1_PEM))).await,
        invalid(TokenError::Malformed)
    );
    let crit = json!({ "alg": "RS256", "kid": KID1, "crit": ["exp"], "exp": 1 });
    assert_eq!(
        check(&auth, &jwt(&crit, &c, rs256(KEY1_PEM))).await,
        invalid(TokenError::Malformed)
    );
    let good = token1(&c);
    for bad in [
        String::new(),
        "not a token".into(),
        "a.b.c".into(),
        format!("{good}.extra"),
        good.rsplit_once('.').unwrap().0.to_owned(),
        format!("{good}!"),
        "x".repeat(40 * 1024),
    ] {
        assert_eq!(
            check(&auth, &bad).await,
            invalid(TokenError::Malformed),
            "{bad:.40}"
        );
    }
    // A payload that is not JSON is refused before any key lookup.
    let h = b64(json!({ "alg": "RS256", "kid": KID1 })
        .to_string()
        .as_bytes());
    let garbage = format!("{h}.{}.{}", b64(b"not json"), b64(b"sig"));
    assert_eq!(check(&auth, &garbage).await, invalid(TokenError::Malformed));
    assert_eq!(fake.hits(), 0);
}

#[tokio::test]
async fn signatures_must_match_the_named_key() {
    let (_fake, auth) = setup().await;
    let good = token1(&claims());
    // Tampered payload: another tenant, the original signature.
    let evil = token1(&with(&claims(), "tid", json!("evil-tenant")));
    let parts: Vec<&str> = good.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        evil.split('.').nth(1).unwrap(),
        parts[2]
    );
    assert_eq!(
        check(&auth, &forged).await,
        invalid(TokenError::BadSignature)
    );
    // Signed with key 2 but claiming key 1's kid.
    assert_eq!(
        check(&auth, &token(KEY2_PEM, KID1, &claims())).await,
        invalid(TokenError::BadSignature)
    );
    // A truncated signature.
    let short = format!("{}.{}.{}", parts[0], parts[1], &parts[2][..40]);
    assert_eq!(
        check(&auth, &short).await,
        invalid(TokenError::BadSignature)
    );
    check(&auth, &good).await.unwrap();
}

#[tokio::test]
async fn an_unknown_kid_is_a_bad_signature_after_one_refetch() {
    let fake = FakeJwks::start(jwks(&[jwk1()])).await;
    let auth = authenticator(&fake.uri, quick(Duration::from_millis(300)));
    assert_eq!(
        check(&auth, &token(KEY2_PEM, KID2, &claims())).await,
        invalid(TokenError::BadSignature)
    );
    assert_eq!(fake.hits(), 1);
}

#[tokio::test]
async fn the_tenant_comes_from_the_configured_claim() {
    let (fake, auth) = setup().await;
    assert_eq!(
        check(&auth, &token1(&without(&claims(), "tid"))).await,
        invalid(TokenError::NoTenant)
    );
    assert_eq!(
        check(&auth, &token1(&with(&claims(), "tid", json!("")))).await,
        invalid(TokenError::NoTenant)
    );
    for bad in [
        json!("has space"),
        json!("x".repeat(65)),
        json!("."),
        json!(".."),
        json!("platform"),
        json!("tenant/../other"),
        json!("tenänt"),
        json!(7),
        json!(["a"]),
    ] {
        assert_eq!(
            check(&auth, &token1(&with(&claims(), "tid", bad))).await,
            invalid(TokenError::BadTenant)
        );
    }
    // A custom claim: `tid` alone is then not enough.
    let mut config = config(&fake.uri);
    config.tenant_claim = "extn.platformTenant".into();
    config.roles_claim = "platform_roles".into();
    let custom = EntraAuthenticator::new(config).unwrap();
    assert_eq!(
        check(&custom, &token1(&claims())).await,
        invalid(TokenError::NoTenant)
    );
    let c = with(
        &with(&claims(), "extn.platformTenant", json!("acme")),
        "platform_roles",
        json!(["admin"]),
    );
    let p = custom.authenticate(&token1(&c)).await.unwrap();
    assert_eq!(p.tenant_id, "acme");
    assert_eq!(p.roles, ["admin"]);
}

#[tokio::test]
async fn key_rollover_is_picked_up_with_one_refetch() {
    let fake = FakeJwks::start(jwks(&[jwk1()])).await;
    let auth = authenticator(&fake.uri, quick(Duration::from_millis(200)));
    check(&auth, &token1(&claims())).await.unwrap();
    assert_eq!(fake.hits(), 1);
    // The issuer rolls over to key 2 and drops key 1.
    fake.set_jwks(jwks(&[jwk2()]));
    tokio::time::sleep(Duration::from_millis(250)).await;
    let new = token(KEY2_PEM, KID2, &claims());
    check(&auth, &new).await.unwrap();
    assert_eq!(fake.hits(), 2);
    check(&auth, &new).await.unwrap();
    assert_eq!(fake.hits(), 2);
    // Key 1 is gone with the new set (a withdrawn key is not trusted any more).
    assert_eq!(
        check(&auth, &token1(&claims())).await,
        invalid(TokenError::BadSignature)
    );
}

#[tokio::test]
async fn unknown_kids_refetch_at_most_once_per_interval() {
    let fake = FakeJwks::start(jwks(&[jwk1()])).await;
    let interval = Duration::from_secs(1);
    let auth = authenticator(&fake.uri, quick(interval));
    check(&auth, &token1(&claims())).await.unwrap();
    assert_eq!(fake.hits(), 1);
    let flood = |round: usize| {
        let auth = &auth;
        async move {
            for i in 0..50 {
                let kid = format!("random-{round}-{i}");
                assert_eq!(
                    check(auth, &token(KEY1_PEM, &kid, &claims())).await,
                    invalid(TokenError::BadSignature)
                );
            }
        }
    };
    // Right after a fetch: none.
    flood(0).await;
    assert_eq!(fake.hits(), 1);
    // After the interval: one for the whole flood.
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    flood(1).await;
    assert_eq!(fake.hits(), 2);
    flood(2).await;
    assert_eq!(fake.hits(), 2);
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    flood(3).await;
    assert_eq!(fake.hits(), 3);
    // Known keys never wait for the limit.
    check(&auth, &token1(&claims())).await.unwrap();
    assert_eq!(fake.hits(), 3);
}

#[tokio::test]
async fn the_default_policy_limits_refetches_to_one_per_30_seconds() {
    let (fake, auth) = setup().await;
    check(&auth, &token1(&claims())).await.unwrap();
    for i in 0..200 {
        let _ = check(&auth, &token(KEY1_PEM, &format!("k{i}"), &claims())).await;
    }
    assert_eq!(fake.hits(), 1);
}

#[tokio::test]
async fn a_cached_key_keeps_working_while_the_endpoint_is_down() {
    let fake = FakeJwks::start(jwks(&[jwk1()])).await;
    let policy = JwksPolicy {
        min_refetch_interval: Duration::from_millis(100),
        max_age: Duration::from_millis(100),
        fetch_timeout: Duration::from_secs(5),
    };
    let auth = authenticator(&fake.uri, policy);
    check(&auth, &token1(&claims())).await.unwrap();
    fake.set_up(false);
    tokio::time::sleep(Duration::from_millis(150)).await;
    // Old keys: still used while a background refresh fails.
    check(&auth, &token1(&claims())).await.unwrap();
    fake.wait_for_hits(2).await;
    assert_eq!(fake.hits(), 2, "one background refresh attempt");
    check(&auth, &token1(&claims())).await.unwrap();
    // A key we do not hold cannot be checked: unavailable, not invalid.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        check(&auth, &token(KEY2_PEM, KID2, &claims())).await,
        Err(AuthError::KeysUnavailable)
    );
    check(&auth, &token1(&claims())).await.unwrap();
    // Back up: the new key is found at the next allowed attempt.
    fake.set_up(true);
    fake.set_jwks(jwks(&[jwk1(), jwk2()]));
    tokio::time::sleep(Duration::from_millis(150)).await;
    check(&auth, &token(KEY2_PEM, KID2, &claims()))
        .await
        .unwrap();
    check(&auth, &token1(&claims())).await.unwrap();
}

#[tokio::test]
async fn periodic_refresh_replaces_old_keys() {
    let fake = FakeJwks::start(jwks(&[jwk1()])).await;
    let policy = JwksPolicy {
        min_refetch_interval: Duration::from_millis(50),
        max_age: Duration::from_millis(500),
        fetch_timeout: Duration::from_secs(5),
    };
    let auth = authenticator(&fake.uri, policy);
    check(&auth, &token1(&claims())).await.unwrap();
    check(&auth, &token1(&claims())).await.unwrap();
    assert_eq!(fake.hits(), 1, "fresh keys are not refetched");
    fake.set_jwks(jwks(&[jwk2()]));
    tokio::time::sleep(Duration::from_millis(600)).await;
    // This request still uses the old key and refreshes in the background.
    check(&auth, &token1(&claims())).await.unwrap();
    fake.wait_for_hits(2).await;
    assert_eq!(fake.hits(), 2);
    assert_eq!(
        check(&auth, &token1(&claims())).await,
        invalid(TokenError::BadSignature)
    );
}

#[tokio::test]
async fn without_a_cached_key_a_down_endpoint_is_unavailable() {
    let fake = FakeJwks::start(jwks(&[jwk1()])).await;
    fake.set_up(false);
    let auth = authenticator(&fake.uri, quick(Duration::from_millis(500)));
    assert_eq!(
        check(&auth, &token1(&claims())).await,
        Err(AuthError::KeysUnavailable)
    );
    // Within the interval the endpoint is left alone.
    assert_eq!(
        check(&auth, &token1(&claims())).await,
        Err(AuthError::KeysUnavailable)
    );
    assert_eq!(fake.hits(), 1);
    fake.set_up(true);
    tokio::time::sleep(Duration::from_millis(600)).await;
    check(&auth, &token1(&claims())).await.unwrap();
    assert_eq!(fake.hits(), 2);
}

#[tokio::test]
async fn unreachable_or_useless_endpoints_are_unavailable() {
    // Nothing listens there any more.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let auth = authenticator(
        &format!("http://{closed}/keys"),
        quick(Duration::from_millis(200)),
    );
    assert_eq!(
        check(&auth, &token1(&claims())).await,
        Err(AuthError::KeysUnavailable)
    );
    // A JWKS without RSA signing keys, and a document that is not a JWKS.
    for doc in [
        jwks(&[json!({ "kty": "EC", "kid": KID1, "crv": "P-256", "x": "AA", "y": "AA" })]),
        json!({ "hello": "world" }),
    ] {
        let fake = FakeJwks::start(doc).await;
        let auth = authenticator(&fake.uri, JwksPolicy::default());
        assert_eq!(
            check(&auth, &token1(&claims())).await,
            Err(AuthError::KeysUnavailable)
        );
    }
}

#[tokio::test]
async fn a_slow_endpoint_times_out_as_unavailable() {
    let fake = FakeJwks::start(jwks(&[jwk1()])).await;
    fake.set_delay(Duration::from_secs(5));
    let policy = JwksPolicy {
        fetch_timeout: Duration::from_millis(200),
        ..JwksPolicy::default()
    };
    let auth = authenticator(&fake.uri, policy);
    let started = std::time::Instant::now();
    assert_eq!(
        check(&auth, &token1(&claims())).await,
        Err(AuthError::KeysUnavailable)
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cold_validations_share_one_fetch() {
    let fake = FakeJwks::start(jwks(&[jwk1()])).await;
    fake.set_delay(Duration::from_millis(150));
    let auth = Arc::new(authenticator(&fake.uri, JwksPolicy::default()));
    let tok = token1(&claims());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let auth = Arc::clone(&auth);
        let tok = tok.clone();
        tasks.spawn(async move { auth.authenticate(&tok).await });
    }
    while let Some(r) = tasks.join_next().await {
        assert_eq!(r.unwrap().unwrap().tenant_id, TENANT);
    }
    assert_eq!(fake.hits(), 1);
}

#[tokio::test]
async fn it_is_an_authenticator_object() {
    let (_fake, auth) = setup().await;
    let dyn_auth: Arc<dyn auth::Authenticator> = Arc::new(auth);
    let p = dyn_auth.authenticate(&token1(&claims())).await.unwrap();
    assert_eq!(p.tenant_id, TENANT);
}
