use super::*;

fn settings(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

const BASE: &[(&str, &str)] = &[
    ("AUTH_ISSUER", "https://login.microsoftonline.com/t1/v2.0"),
    ("AUTH_AUDIENCE", " api://platform , 00000000-aaaa ,, "),
    (
        "AUTH_JWKS_URI",
        "https://login.microsoftonline.com/t1/discovery/v2.0/keys",
    ),
];

#[test]
fn settings_give_a_config_with_defaults() {
    let c = EntraConfig::from_settings(settings(BASE)).unwrap();
    assert_eq!(c.issuer, "https://login.microsoftonline.com/t1/v2.0");
    assert_eq!(c.audiences, ["api://platform", "00000000-aaaa"]);
    assert_eq!(c.tenant_claim, "tid");
    assert_eq!(c.roles_claim, "roles");
    assert_eq!(c.leeway, Duration::from_secs(60));

    let mut custom = BASE.to_vec();
    custom.push(("AUTH_TENANT_CLAIM", "extension_platformTenant"));
    custom.push(("AUTH_ROLES_CLAIM", "platform_roles"));
    let c = EntraConfig::from_settings(settings(&custom)).unwrap();
    assert_eq!(c.tenant_claim, "extension_platformTenant");
    assert_eq!(c.roles_claim, "platform_roles");
}

#[test]
fn missing_settings_are_named() {
    for name in ["AUTH_ISSUER", "AUTH_AUDIENCE", "AUTH_JWKS_URI"] {
        let without: Vec<_> = BASE.iter().copied().filter(|(k, _)| *k != name).collect();
        let err = EntraConfig::from_settings(settings(&without)).unwrap_err();
        assert!(matches!(err, ConfigError::Missing(n) if n == name), "{err}");
        assert!(err.to_string().contains(name));
        // Blank is missing too.
        let mut blank = without.clone();
        blank.push((
            name,
            if name == "AUTH_AUDIENCE" {
                " , ,"
            } else {
                "  "
            },
        ));
        let err = EntraConfig::from_settings(settings(&blank)).unwrap_err();
        assert_eq!(err, ConfigError::Missing(name));
    }
}

#[test]
fn jwks_uri_must_be_https_except_on_loopback() {
    let with_uri = |uri: &'static str| {
        let mut s: Vec<_> = BASE
            .iter()
            .copied()
            .filter(|(k, _)| *k != "AUTH_JWKS_URI")
            .collect();
        s.push(("AUTH_JWKS_URI", uri));
        EntraConfig::from_settings(settings(&s))
    };
    for ok in [
        "http://127.0.0.1:8080/keys",
        "http://localhost/keys",
        "http://[::1]:9/keys",
    ] {
        assert!(with_uri(ok).is_ok(), "{ok}");
    }
    for bad in [
        "http://login.microsoftonline.com/t/keys",
        "http://10.0.0.1/keys",
        "ftp://127.0.0.1/keys",
        "not a url",
    ] {
        let err = with_uri(bad).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    setting: "AUTH_JWKS_URI",
                    ..
                }
            ),
            "{bad}: {err}"
        );
    }
}

#[test]
fn numeric_dates_accept_integers_and_fractions() {
    assert_eq!(
        numeric_date(&serde_json::json!(1_700_000_000)),
        Some(1_700_000_000)
    );
    assert_eq!(
        numeric_date(&serde_json::json!(1_700_000_000.7)),
        Some(1_700_000_000)
    );
    assert_eq!(numeric_date(&serde_json::json!("1700000000")), None);
    assert_eq!(numeric_date(&serde_json::json!(null)), None);
}

#[test]
fn debug_shows_the_config() {
    let a = EntraAuthenticator::new(EntraConfig::new(
        "https://sts.windows.net/t1/",
        vec!["api://platform".into()],
        "http://127.0.0.1:1/keys",
    ))
    .unwrap();
    let d = format!("{a:?}");
    assert!(d.contains("sts.windows.net"), "{d}");
}
