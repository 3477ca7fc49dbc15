use proptest::prelude::*;

use super::*;

#[test]
fn tenant_id_accepts_its_alphabet() {
    for ok in ["acme", "A", "tenant-1.eu_west", &"x".repeat(64)] {
        let id = TenantId::parse(ok).expect(ok);
        assert_eq!(id.as_str(), ok);
        assert!(!id.is_platform());
    }
}

#[test]
fn tenant_id_refuses_bad_input() {
    assert_eq!(
        TenantId::parse(""),
        Err(ParseError::Empty { what: "tenant id" })
    );
    assert_eq!(
        TenantId::parse(&"x".repeat(65)),
        Err(ParseError::TooLong {
            what: "tenant id",
            max: 64,
            len: 65
        })
    );
    assert_eq!(
        TenantId::parse("ac me"),
        Err(ParseError::InvalidChar {
            what: "tenant id",
            position: 2
        })
    );
    assert!(TenantId::parse("acme/other").is_err());
    assert!(TenantId::parse("café").is_err());
}

#[test]
fn platform_partition_is_parseable_but_not_a_customer_tenant() {
    let platform = TenantId::platform();
    assert_eq!(platform.as_str(), "platform");
    assert!(platform.is_platform());
    assert_eq!(TenantId::parse("platform"), Ok(platform));
    assert_eq!(
        TenantId::parse_tenant("platform"),
        Err(ParseError::Reserved {
            what: "tenant id",
            value: "platform"
        })
    );
    assert_eq!(
        TenantId::parse_tenant("acme").map(|t| t.is_platform()),
        Ok(false)
    );
    assert!(TenantId::parse_tenant("").is_err());
}

#[test]
fn provider_key_rules() {
    for ok in ["github", "azure-openai", "a", "x1-2", &"a".repeat(64)] {
        assert_eq!(
            ProviderKey::parse(ok).map(|k| k.to_string()),
            Ok(ok.to_owned())
        );
    }
    assert!(matches!(
        ProviderKey::parse("-github"),
        Err(ParseError::Malformed { .. })
    ));
    assert!(matches!(
        ProviderKey::parse("github-"),
        Err(ParseError::Malformed { .. })
    ));
    assert!(matches!(
        ProviderKey::parse("-"),
        Err(ParseError::Malformed { .. })
    ));
    assert!(matches!(
        ProviderKey::parse("GitHub"),
        Err(ParseError::InvalidChar { position: 0, .. })
    ));
    assert!(matches!(
        ProviderKey::parse("azure_openai"),
        Err(ParseError::InvalidChar { position: 5, .. })
    ));
    assert!(matches!(
        ProviderKey::parse(""),
        Err(ParseError::Empty { .. })
    ));
    assert!(matches!(
        ProviderKey::parse(&"a".repeat(65)),
        Err(ParseError::TooLong { .. })
    ));
}

#[test]
fn trace_id_rules() {
    let text = "4bf92f3577b34da6a3ce929d0e0e4736";
    let id = TraceId::parse(text).expect("w3c example");
    assert_eq!(id.to_string(), text);
    assert_eq!(id.as_bytes()[0], 0x4b);
    assert!(matches!(
        TraceId::parse(&"0".repeat(32)),
        Err(ParseError::Malformed { .. })
    ));
    assert!(matches!(
        TraceId::parse(&text.to_uppercase()),
        Err(ParseError::InvalidChar { .. })
    ));
    assert!(matches!(
        TraceId::parse(&text[..31]),
        Err(ParseError::Malformed { .. })
    ));
    assert!(matches!(
        TraceId::parse(&format!("{text}0")),
        Err(ParseError::TooLong { .. })
    ));
    assert!(matches!(TraceId::parse(""), Err(ParseError::Empty { .. })));
    assert!(TraceId::parse("4bf92f35-7b34da6a3ce929d0e0e47360").is_err());
    assert!(TraceId::from_bytes([0; 16]).is_err());
}

#[test]
fn generated_trace_ids_are_valid_and_distinct() {
    let a = TraceId::generate();
    let b = TraceId::generate();
    assert_ne!(a, b);
    assert_eq!(TraceId::parse(&a.to_string()), Ok(a));
}

#[test]
fn trace_id_serde_round_trip() {
    let id = TraceId::parse("4bf92f3577b34da6a3ce929d0e0e4736").expect("valid");
    let json = serde_json::to_string(&id).expect("serialize");
    assert_eq!(json, "\"4bf92f3577b34da6a3ce929d0e0e4736\"");
    assert_eq!(
        serde_json::from_str::<TraceId>(&json).expect("deserialize"),
        id
    );
    assert!(serde_json::from_str::<TraceId>("\"00000000000000000000000000000000\"").is_err());
}

#[test]
fn idempotency_key_rules() {
    for ok in [
        "a",
        "order-42",
        "key with spaces",
        "~!@#$%^&*()",
        &"k".repeat(255),
    ] {
        assert_eq!(
            IdempotencyKey::parse(ok).map(String::from),
            Ok(ok.to_owned())
        );
    }
    assert!(matches!(
        IdempotencyKey::parse(""),
        Err(ParseError::Empty { .. })
    ));
    assert!(matches!(
        IdempotencyKey::parse(&"k".repeat(256)),
        Err(ParseError::TooLong { .. })
    ));
    assert!(matches!(
        IdempotencyKey::parse("tab\there"),
        Err(ParseError::InvalidChar { position: 3, .. })
    ));
    assert!(matches!(
        IdempotencyKey::parse("naïve"),
        Err(ParseError::InvalidChar { .. })
    ));
    assert!(matches!(
        IdempotencyKey::parse(" lead"),
        Err(ParseError::Malformed { .. })
    ));
    assert!(matches!(
        IdempotencyKey::parse("trail "),
        Err(ParseError::Malformed { .. })
    ));
}

#[test]
fn secret_ref_rules_and_serde() {
    let r = SecretRef::new("conn-github-acme", "0f1e2d3c4b5a69788796a5b4c3d2e1f0").expect("valid");
    assert_eq!(r.name(), "conn-github-acme");
    assert_eq!(r.version(), "0f1e2d3c4b5a69788796a5b4c3d2e1f0");
    assert_eq!(
        r.to_string(),
        "conn-github-acme/0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    );
    let json = serde_json::to_value(&r).expect("serialize");
    assert_eq!(
        json,
        serde_json::json!({"name": "conn-github-acme", "version": "0f1e2d3c4b5a69788796a5b4c3d2e1f0"})
    );
    assert_eq!(
        serde_json::from_value::<SecretRef>(json).expect("deserialize"),
        r
    );

    assert!(SecretRef::new("", "1").is_err());
    assert!(SecretRef::new("name", "").is_err());
    assert!(SecretRef::new("has_underscore", "1").is_err());
    assert!(SecretRef::new(&"n".repeat(128), "1").is_err());
    assert!(SecretRef::new("n", &"1".repeat(65)).is_err());
    assert!(SecretRef::new("n", "v/1").is_err());
    assert!(
        serde_json::from_value::<SecretRef>(
            serde_json::json!({"name": "bad name", "version": "1"})
        )
        .is_err()
    );
}

#[test]
fn http_url_rules() {
    for ok in [
        "https://api.github.com",
        "http://127.0.0.1:8080/hook?x=1",
        "HTTPS://Example.com/path#frag",
        "https://[::1]:443/",
    ] {
        assert_eq!(
            HttpUrl::parse(ok).map(String::from),
            Ok(ok.to_owned()),
            "{ok}"
        );
    }
    let url = HttpUrl::parse("https://hooks.example.com:8443/in?a=b").expect("valid");
    assert!(url.is_https());
    assert_eq!(url.host(), "hooks.example.com");
    assert_eq!(
        HttpUrl::parse("https://[::1]:443/").expect("valid").host(),
        "[::1]"
    );
    assert!(
        !HttpUrl::parse("http://localhost")
            .expect("valid")
            .is_https()
    );

    for bad in [
        "",
        "ftp://example.com",
        "example.com",
        "https://",
        "https:///path",
        "https://user:pass@example.com/",
        "https://exa mple.com",
        "https://[::1/",
        "https://:443/",
        "javascript://alert",
    ] {
        assert!(HttpUrl::parse(bad).is_err(), "{bad:?} should be refused");
    }
    assert!(matches!(
        HttpUrl::parse(&format!("https://e.com/{}", "a".repeat(2048))),
        Err(ParseError::TooLong { .. })
    ));
}

#[test]
fn payload_ref_display_name_and_operation_rules() {
    assert!(PayloadRef::parse("raw/acme/2025/01/01/dlv_1.json").is_ok());
    assert!(PayloadRef::parse("with space inside").is_ok());
    assert!(PayloadRef::parse("").is_err());
    assert!(PayloadRef::parse(" lead").is_err());
    assert!(PayloadRef::parse("line\nbreak").is_err());
    assert!(PayloadRef::parse(&"p".repeat(1025)).is_err());

    assert!(DisplayName::parse("GitHub (acme org)").is_ok());
    assert!(DisplayName::parse("Ünïcödé ok").is_ok());
    assert!(DisplayName::parse("").is_err());
    assert!(DisplayName::parse("trailing ").is_err());
    assert!(DisplayName::parse("bell\u{7}").is_err());
    assert!(DisplayName::parse(&"n".repeat(201)).is_err());

    for ok in [
        "repos.get",
        "chat.completions",
        "pullRequests.open",
        "deployments:status",
        "a/b-c_d",
    ] {
        assert!(OperationName::parse(ok).is_ok(), "{ok}");
    }
    assert!(OperationName::parse("").is_err());
    assert!(OperationName::parse("has space").is_err());
    assert!(OperationName::parse(&"o".repeat(129)).is_err());
}

#[test]
fn string_values_serialize_as_strings_and_validate_on_the_way_in() {
    let key = ProviderKey::parse("github").expect("valid");
    assert_eq!(
        serde_json::to_string(&key).expect("serialize"),
        "\"github\""
    );
    assert_eq!(
        serde_json::from_str::<ProviderKey>("\"github\"").expect("deserialize"),
        key
    );
    assert!(serde_json::from_str::<ProviderKey>("\"GitHub\"").is_err());
    assert!(serde_json::from_str::<TenantId>("\"\"").is_err());
    assert!(serde_json::from_str::<HttpUrl>("\"ftp://x\"").is_err());
}

proptest! {
    #[test]
    fn parsers_never_panic(s in "\\PC{0,80}|.{0,300}") {
        let _ = TenantId::parse(&s);
        let _ = TenantId::parse_tenant(&s);
        let _ = ProviderKey::parse(&s);
        let _ = TraceId::parse(&s);
        let _ = IdempotencyKey::parse(&s);
        let _ = SecretRef::new(&s, &s);
        let _ = HttpUrl::parse(&s);
        let _ = PayloadRef::parse(&s);
        let _ = DisplayName::parse(&s);
        let _ = OperationName::parse(&s);
    }

    #[test]
    fn valid_tenant_ids_round_trip(s in "[A-Za-z0-9._-]{1,64}") {
        if s == "." || s == ".." {
            prop_assert!(TenantId::parse(&s).is_err(), "dots alone are refused");
            return Ok(());
        }
        let id = TenantId::parse(&s).expect("alphabet is allowed");
        prop_assert_eq!(id.as_str(), s.as_str());
        let json = serde_json::to_string(&id).expect("serialize");
        prop_assert_eq!(serde_json::from_str::<TenantId>(&json).expect("deserialize"), id);
    }

    #[test]
    fn provider_keys_are_accepted_iff_they_follow_the_rules(s in "[a-z0-9-]{1,64}") {
        let expected = !s.starts_with('-') && !s.ends_with('-');
        prop_assert_eq!(ProviderKey::parse(&s).is_ok(), expected);
    }

    #[test]
    fn trace_ids_round_trip(bytes in any::<[u8; 16]>()) {
        prop_assume!(bytes != [0; 16]);
        let id = TraceId::from_bytes(bytes).expect("non-zero");
        prop_assert_eq!(TraceId::parse(&id.to_string()), Ok(id));
    }
}
