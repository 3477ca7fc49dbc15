use super::*;

fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Base64 of "not-a-real-key-just-a-test", with the '=' padding a real key has.
const KEY: &str = "bm90LWEtcmVhbC1rZXktanVzdC1hLXRlc3Q=";

fn setting_error(s: &BTreeMap<String, String>) -> (&'static str, String) {
    match CosmosConfig::from_settings(s) {
        Err(Error::Setting { setting, reason }) => (setting, reason),
        other => panic!("expected a setting error, got {other:?}"),
    }
}

#[test]
fn nothing_or_blank_is_not_configured() {
    assert!(
        CosmosConfig::from_settings(&settings(&[]))
            .unwrap()
            .is_none()
    );
    let blank = settings(&[(ENDPOINT_SETTING, "  "), (CONNECTION_SETTING, "")]);
    assert!(CosmosConfig::from_settings(&blank).unwrap().is_none());
}

#[test]
fn a_connection_string_uses_the_key_and_the_default_database() {
    let s = settings(&[(
        CONNECTION_SETTING,
        &format!("accountendpoint=https://127.0.0.1:8081;AccountKey={KEY};Database=ignored;"),
    )]);
    let config = CosmosConfig::from_settings(&s).unwrap().unwrap();
    assert_eq!(config.endpoint(), "https://127.0.0.1:8081/");
    assert_eq!(config.database(), DEFAULT_DATABASE);
    assert!(config.uses_account_key());
    match config.auth() {
        Auth::Key(key) => assert_eq!(key.secret(), KEY, "split at the first '=' only"),
        Auth::Identity { .. } => panic!("expected key auth"),
    }
    let debug = format!("{config:?}");
    assert!(
        debug.contains("account key") && !debug.contains(KEY),
        "{debug}"
    );
}

#[test]
fn the_endpoint_wins_and_chooses_the_identity() {
    let s = settings(&[
        (ENDPOINT_SETTING, "https://acct.documents.azure.com:443/"),
        (
            CONNECTION_SETTING,
            &format!("AccountEndpoint=https://localhost:8081/;AccountKey={KEY}"),
        ),
        (DATABASE_SETTING, "platform-dev"),
    ]);
    let config = CosmosConfig::from_settings(&s).unwrap().unwrap();
    assert_eq!(config.endpoint(), "https://acct.documents.azure.com/");
    assert_eq!(config.database(), "platform-dev");
    assert!(!config.uses_account_key());
    assert!(matches!(
        config.auth(),
        Auth::Identity {
            managed: false,
            client_id: None
        }
    ));
}

#[test]
fn managed_identity_when_azure_says_so() {
    let endpoint = (ENDPOINT_SETTING, "https://acct.documents.azure.com/");
    for extra in [
        (CREDENTIAL_SETTING, "ManagedIdentity"),
        (
            azure_credential::IDENTITY_ENDPOINT,
            "http://localhost:42356/msi/token",
        ),
    ] {
        let config = CosmosConfig::from_settings(&settings(&[endpoint, extra]))
            .unwrap()
            .unwrap();
        assert!(
            matches!(
                config.auth(),
                Auth::Identity {
                    managed: true,
                    client_id: None
                }
            ),
            "{extra:?}"
        );
    }
    let config = CosmosConfig::from_settings(&settings(&[endpoint, (CLIENT_ID_SETTING, "c-1")]))
        .unwrap()
        .unwrap();
    assert!(matches!(
        config.auth(),
        Auth::Identity { managed: true, client_id: Some(id) } if id == "c-1"
    ));
    assert!(format!("{config:?}").contains("managed identity"));
}

#[test]
fn bad_settings_name_the_setting_and_never_echo_the_key() {
    let cases = [
        (
            ENDPOINT_SETTING,
            "http://acct.documents.azure.com/".to_owned(),
            "https",
        ),
        (
            ENDPOINT_SETTING,
            "acct.documents.azure.com".to_owned(),
            "not a URL",
        ),
        (
            ENDPOINT_SETTING,
            "https://acct.documents.azure.com/?x=1".to_owned(),
            "query",
        ),
        (
            CONNECTION_SETTING,
            format!("AccountKey={KEY}"),
            "AccountEndpoint",
        ),
        (
            CONNECTION_SETTING,
            "AccountEndpoint=https://h/;".to_owned(),
            "AccountKey",
        ),
        (
            CONNECTION_SETTING,
            format!("AccountEndpoint=https://h/;AccountKey={KEY}!!"),
            "base64",
        ),
        (
            CONNECTION_SETTING,
            format!("AccountEndpoint=http://h/;AccountKey={KEY}"),
            "https",
        ),
        (
            CONNECTION_SETTING,
            format!("AccountEndpoint=https://h/;AccountKey={KEY};junk"),
            "Name=value",
        ),
    ];
    for (setting, value, says) in cases {
        let (named, reason) = setting_error(&settings(&[(setting, &value)]));
        assert_eq!(named, setting, "{value}");
        assert!(reason.contains(says), "{value}: {reason}");
        let message = Error::Setting {
            setting: named,
            reason,
        }
        .to_string();
        assert!(
            !message.contains(KEY) && !message.contains("bm90"),
            "{message}"
        );
    }
    let (named, _) = setting_error(&settings(&[
        (ENDPOINT_SETTING, "https://acct.documents.azure.com/"),
        (DATABASE_SETTING, "a/b"),
    ]));
    assert_eq!(named, DATABASE_SETTING);
}
