use proptest::prelude::*;

use super::*;
use crate::testkit::{at, tenant};

fn source() -> WebhookSource {
    WebhookSource::new(
        NewSource {
            tenant_id: tenant(),
            id: SourceId::new(),
            scheme: WebhookScheme::Github,
            secret: SecretRef::new("src-github", "1").expect("valid"),
            connection_id: Some(ConnectionId::new()),
        },
        at(0),
    )
}

#[test]
fn scheme_names_match_the_design_and_parse_back() {
    let names: Vec<&str> = WebhookScheme::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        names,
        [
            "github",
            "stripe",
            "twilio",
            "standard-webhooks",
            "slack",
            "shopify",
            "azure-devops",
            "event-grid",
            "generic-hmac",
            // Beyond the design's list: the support app's Zendesk webhooks, the crm app's
            // HubSpot ones, the payment app's Adyen and BILL notifications.
            "zendesk",
            "hubspot",
            "adyen",
            "bill"
        ]
    );
    for scheme in WebhookScheme::ALL {
        assert_eq!(
            serde_json::to_value(scheme).expect("serialize"),
            scheme.as_str()
        );
        assert_eq!(scheme.as_str().parse::<WebhookScheme>(), Ok(scheme));
        assert_eq!(scheme.to_string(), scheme.as_str());
    }
    assert!("GitHub".parse::<WebhookScheme>().is_err());
    assert!("standard_webhooks".parse::<WebhookScheme>().is_err());
}

#[test]
fn received_builds_the_normalised_event() {
    let src = source();
    let payload = PayloadRef::parse("inbound/acme/src/1.json").expect("valid");
    let event = src.received(
        InboundWebhook {
            vendor_delivery_id: Some("72d3162e-cc78-11e3-81ab-4c9367dc0958".into()),
            vendor_event_type: Some("pull_request".into()),
            content_type: Some("application/json".into()),
        },
        payload.clone(),
        at(9),
    );
    match event {
        DomainEvent::WebhookReceived(e) => {
            assert_eq!(e.source_id, src.id());
            assert_eq!(e.tenant_id, tenant());
            assert_eq!(e.scheme, WebhookScheme::Github);
            assert_eq!(e.connection_id, src.connection_id());
            assert_eq!(
                e.vendor_delivery_id.as_deref(),
                Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
            );
            assert_eq!(e.vendor_event_type.as_deref(), Some("pull_request"));
            assert_eq!(e.payload_ref, payload);
            assert_eq!(e.occurred_at, at(9));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn vendor_strings_are_cleaned_and_bounded() {
    let src = source();
    let event = src.received(
        InboundWebhook {
            vendor_delivery_id: Some(format!("id\r\n{}", "x".repeat(1000))),
            vendor_event_type: None,
            content_type: None,
        },
        PayloadRef::parse("p").expect("valid"),
        at(0),
    );
    match event {
        DomainEvent::WebhookReceived(e) => {
            let id = e.vendor_delivery_id.expect("kept");
            assert!(!id.contains('\r') && !id.contains('\n'));
            assert_eq!(id.chars().count(), WebhookSource::MAX_VENDOR_FIELD);
            assert!(id.starts_with("idxx"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn replace_secret_bumps_the_version() {
    let mut src = source();
    let new = SecretRef::new("src-github", "2").expect("valid");
    src.replace_secret(new.clone(), at(5));
    assert_eq!(src.secret(), &new);
    assert_eq!(src.version(), 2);
    assert_eq!(src.updated_at(), at(5));
}

#[test]
fn document_round_trips() {
    let src = source();
    let json = serde_json::to_value(&src).expect("serialize");
    assert_eq!(json["scheme"], "github");
    let back: WebhookSource = serde_json::from_value(json).expect("deserialize");
    assert_eq!(back, src);
}

proptest! {
    #[test]
    fn scheme_parse_never_panics(s in "\\PC{0,32}") {
        let _ = s.parse::<WebhookScheme>();
    }
}
