use super::*;
use crate::aggregate::Aggregate;
use crate::testkit::at;

fn new_provider() -> NewProvider {
    NewProvider {
        key: ProviderKey::parse("github").expect("valid"),
        display_name: DisplayName::parse("GitHub").expect("valid"),
        category: ProviderCategory::SourceControl,
        auth_scheme: AuthScheme::GithubApp,
        base_url: HttpUrl::parse("https://api.github.com").expect("valid"),
        rate_limit_hints: Some(RateLimitHints {
            remaining_header: Some("x-ratelimit-remaining".into()),
            limit_header: Some("x-ratelimit-limit".into()),
            reset_header: Some("x-ratelimit-reset".into()),
            reset_format: ResetFormat::UnixSeconds,
            retry_after_header: Some("retry-after".into()),
            requests_per_second: None,
        }),
    }
}

#[test]
fn register_puts_the_provider_in_the_platform_partition_and_emits_the_event() {
    let (provider, event) = IntegrationProvider::register(new_provider(), at(0));
    assert!(provider.tenant_id().is_platform());
    assert_eq!(provider.key().as_str(), "github");
    assert_eq!(provider.document_id(), "github");
    assert_eq!(provider.version(), 1);
    assert_eq!(provider.created_at(), at(0));
    assert_eq!(provider.updated_at(), at(0));
    assert_eq!(provider.auth_scheme(), AuthScheme::GithubApp);
    assert_eq!(provider.category(), ProviderCategory::SourceControl);
    assert_eq!(provider.base_url().as_str(), "https://api.github.com");
    assert_eq!(
        provider
            .rate_limit_hints()
            .and_then(|h| h.remaining_header.as_deref()),
        Some("x-ratelimit-remaining")
    );
    match event {
        DomainEvent::IntegrationProviderRegistered(e) => {
            assert!(e.tenant_id.is_platform());
            assert_eq!(e.provider_key, *provider.key());
            assert_eq!(e.display_name.as_str(), "GitHub");
            assert_eq!(e.occurred_at, at(0));
        }
        other => panic!("unexpected event {other:?}"),
    }
}

#[test]
fn provider_json_is_camel_case_and_round_trips() {
    let (provider, _) = IntegrationProvider::register(new_provider(), at(0));
    let json = serde_json::to_value(&provider).expect("serialize");
    assert_eq!(json["tenantId"], "platform");
    assert_eq!(json["id"], "github");
    assert_eq!(json["authScheme"], "githubApp");
    assert_eq!(json["category"], "sourceControl");
    assert_eq!(json["rateLimitHints"]["resetFormat"], "unixSeconds");
    assert_eq!(json["rateLimitHints"]["retryAfterHeader"], "retry-after");
    let back: IntegrationProvider = serde_json::from_value(json).expect("deserialize");
    assert_eq!(back, provider);
}

#[test]
fn auth_scheme_names_match_the_design() {
    let names: Vec<String> = [
        AuthScheme::None,
        AuthScheme::ApiKey,
        AuthScheme::Oauth2ClientCredentials,
        AuthScheme::Oauth2RefreshToken,
        AuthScheme::ManagedIdentity,
    ]
    .iter()
    .map(|s| {
        serde_json::to_value(s)
            .expect("serialize")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    })
    .collect();
    assert_eq!(
        names,
        [
            "none",
            "apiKey",
            "oauth2ClientCredentials",
            "oauth2RefreshToken",
            "managedIdentity"
        ]
    );
}

#[test]
fn stored_provider_with_a_bad_key_is_refused() {
    let (provider, _) = IntegrationProvider::register(new_provider(), at(0));
    let mut json = serde_json::to_value(&provider).expect("serialize");
    json["id"] = "Not A Key".into();
    assert!(serde_json::from_value::<IntegrationProvider>(json).is_err());
}

fn new_client() -> NewApiClient {
    NewApiClient {
        id: ClientId::new(),
        provider_key: ProviderKey::parse("github").expect("valid"),
        name: DisplayName::parse("rest").expect("valid"),
        version: semver::Version::new(2022, 11, 28),
        base_url: HttpUrl::parse("https://api.github.com").expect("valid"),
    }
}

#[test]
fn register_client_emits_the_event_and_exposes_a_natural_key() {
    let new = new_client();
    let id = new.id;
    let (client, event) = ExternalApiClient::register(new, at(5));
    assert!(client.tenant_id().is_platform());
    assert_eq!(client.id(), id);
    assert_eq!(client.version(), 1);
    assert_eq!(client.api_version(), &semver::Version::new(2022, 11, 28));
    assert_eq!(client.natural_key(), "github/rest/2022.11.28");
    assert_eq!(client.document_id(), id.to_string());
    match event {
        DomainEvent::ExternalApiClientRegistered(e) => {
            assert_eq!(e.client_id, id);
            assert_eq!(e.version.to_string(), "2022.11.28");
            assert_eq!(e.provider_key.as_str(), "github");
            assert_eq!(e.occurred_at, at(5));
        }
        other => panic!("unexpected event {other:?}"),
    }
}

#[test]
fn client_json_round_trips_with_the_semver_as_a_string() {
    let (client, _) = ExternalApiClient::register(new_client(), at(0));
    let json = serde_json::to_value(&client).expect("serialize");
    assert_eq!(json["apiVersion"], "2022.11.28");
    assert_eq!(json["version"], 1);
    assert_eq!(json["providerKey"], "github");
    let back: ExternalApiClient = serde_json::from_value(json.clone()).expect("deserialize");
    assert_eq!(back, client);
    let mut bad = json;
    bad["apiVersion"] = "2022.11".into();
    assert!(serde_json::from_value::<ExternalApiClient>(bad).is_err());
}
