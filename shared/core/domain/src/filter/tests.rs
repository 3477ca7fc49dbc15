use proptest::prelude::*;

use super::*;

#[test]
fn parse_recognises_the_three_forms() {
    assert_eq!(EventTypeFilter::parse("*"), Ok(EventTypeFilter::All));
    assert_eq!(
        EventTypeFilter::parse("integration.run.*"),
        Ok(EventTypeFilter::Prefix("integration.run".into()))
    );
    assert_eq!(
        EventTypeFilter::parse("integration.run.completed"),
        Ok(EventTypeFilter::Exact("integration.run.completed".into()))
    );
}

#[test]
fn parse_refuses_misplaced_wildcards_and_bad_names() {
    for bad in [
        "", ".*", "*.*", "a*", "a.*.b", "*.run", "a..b", ".a", "a.", "a.b.", "a b", "a.b.**",
        "a/b", "a.*x",
    ] {
        assert!(
            EventTypeFilter::parse(bad).is_err(),
            "{bad:?} should be refused"
        );
    }
    assert!(matches!(
        EventTypeFilter::parse(&"a".repeat(129)),
        Err(ParseError::TooLong { .. })
    ));
}

#[test]
fn exact_filter_matches_only_the_same_name() {
    let f = EventTypeFilter::parse("integration.run.completed").expect("valid");
    assert!(f.matches("integration.run.completed"));
    assert!(!f.matches("integration.run.completed.v2"));
    assert!(!f.matches("integration.run"));
    assert!(!f.matches("Integration.run.completed"));
}

#[test]
fn prefix_filter_matches_names_below_the_prefix() {
    let f = EventTypeFilter::parse("integration.run.*").expect("valid");
    assert!(f.matches("integration.run.completed"));
    assert!(f.matches("integration.run.attempt.started"));
    assert!(!f.matches("integration.run"));
    assert!(!f.matches("integration.run."));
    assert!(!f.matches("integration.runs.completed"));
    assert!(!f.matches("integration.webhook.delivered"));
}

#[test]
fn all_filter_matches_everything() {
    let f = EventTypeFilter::parse("*").expect("valid");
    assert!(f.matches("integration.run.completed"));
    assert!(f.matches("order.created"));
}

#[test]
fn display_round_trips() {
    for s in ["*", "integration.*", "order.created"] {
        assert_eq!(EventTypeFilter::parse(s).expect("valid").to_string(), s);
    }
}

#[test]
fn filters_need_at_least_one_and_drop_duplicates() {
    assert_eq!(
        EventTypeFilters::new(vec![]),
        Err(ParseError::Empty {
            what: "event type filters"
        })
    );
    let filters = EventTypeFilters::parse_all(["a.b", "a.*", "a.b"]).expect("valid");
    assert_eq!(filters.as_slice().len(), 2);
    assert!(filters.matches("a.b"));
    assert!(filters.matches("a.c"));
    assert!(!filters.matches("b.a"));
    assert!(EventTypeFilters::parse_all(["a.b", "bad*"]).is_err());
    let too_many: Vec<String> = (0..=EventTypeFilters::MAX)
        .map(|i| format!("e.{i}"))
        .collect();
    let e = EventTypeFilters::parse_all(&too_many).unwrap_err();
    assert!(matches!(e, ParseError::TooMany { .. }));
    // A count is entries, not characters.
    assert_eq!(
        e.to_string(),
        format!(
            "event type filters must have at most {} entries, got {}",
            EventTypeFilters::MAX,
            EventTypeFilters::MAX + 1
        )
    );
    assert!(EventTypeFilters::parse_all(&too_many[..EventTypeFilters::MAX]).is_ok());
}

#[test]
fn filters_serialize_as_a_string_array() {
    let filters = EventTypeFilters::parse_all(["integration.run.*", "*"]).expect("valid");
    let json = serde_json::to_value(&filters).expect("serialize");
    assert_eq!(json, serde_json::json!(["integration.run.*", "*"]));
    assert_eq!(
        serde_json::from_value::<EventTypeFilters>(json).expect("deserialize"),
        filters
    );
    assert!(serde_json::from_value::<EventTypeFilters>(serde_json::json!([])).is_err());
    assert!(serde_json::from_value::<EventTypeFilters>(serde_json::json!(["a.*.b"])).is_err());
}

#[test]
fn event_name_rules() {
    assert_eq!(
        EventName::parse("order.created").map(|n| n.to_string()),
        Ok("order.created".into())
    );
    assert!(EventName::parse("single").is_ok());
    assert!(EventName::parse("").is_err());
    assert!(EventName::parse("a.*").is_err());
    assert!(EventName::parse("a..b").is_err());
    assert!(serde_json::from_str::<EventName>("\"a b\"").is_err());
    assert_eq!(
        serde_json::from_str::<EventName>("\"a.b\"")
            .map(|n| n.as_str().to_owned())
            .ok(),
        Some("a.b".into())
    );
}

proptest! {
    #[test]
    fn parse_never_panics(s in "\\PC{0,140}") {
        let _ = EventTypeFilter::parse(&s);
        let _ = EventName::parse(&s);
    }

    #[test]
    fn an_exact_filter_matches_its_own_name(name in "[a-z]{1,8}(\\.[a-z0-9_-]{1,8}){0,4}") {
        let f = EventTypeFilter::parse(&name).expect("valid name");
        prop_assert!(f.matches(&name));
        prop_assert!(EventTypeFilter::All.matches(&name));
    }

    #[test]
    fn a_prefix_filter_matches_exactly_the_names_below_it(
        prefix in "[a-z]{1,6}(\\.[a-z]{1,6}){0,2}",
        rest in "[a-z]{1,6}(\\.[a-z]{1,6}){0,2}",
        other in "[a-z]{1,6}(\\.[a-z]{1,6}){0,4}",
    ) {
        let f = EventTypeFilter::parse(&format!("{prefix}.*")).expect("valid prefix");
        let below = format!("{prefix}.{rest}");
        prop_assert!(f.matches(&below));
        prop_assert!(!f.matches(&prefix));
        prop_assert_eq!(f.matches(&other), other.starts_with(&format!("{prefix}.")));
    }

    #[test]
    fn filter_display_parse_round_trips(s in "(\\*|[a-z]{1,6}(\\.[a-z]{1,6}){0,3}(\\.\\*)?)") {
        let f = EventTypeFilter::parse(&s).expect("valid");
        prop_assert_eq!(EventTypeFilter::parse(&f.to_string()), Ok(f));
    }
}

#[test]
fn the_platforms_event_names_are_reserved_in_any_case() {
    for name in [
        "integration.run.completed",
        "Integration.Run.Completed",
        "integration.anything.new",
        "integration",
        "IntegrationRunCompleted",
        "integrationfailed",
        "WebhookReceived",
        "crm.contact.changed",
        "Support.Ticket.Changed",
        "CrmDealChanged",
        "payment.succeeded",
        "PaymentDisputed",
    ] {
        assert!(EventName::parse(name).unwrap().is_reserved(), "{name}");
    }
    for name in [
        "order.created",
        "integrations.run",
        "run.completed",
        "webhook.received",
        "crm.contact.created",
        "support.ticket",
        "payment.created",
    ] {
        assert!(!EventName::parse(name).unwrap().is_reserved(), "{name}");
    }
}
