use proptest::prelude::*;
use uuid::Uuid;

use super::*;

#[test]
fn new_ids_carry_their_prefix_and_parse_back() {
    let id = RunId::new();
    let text = id.to_string();
    assert!(text.starts_with("run_"), "{text}");
    assert_eq!(text.len(), "run_".len() + 32);
    assert_eq!(RunId::parse(&text), Ok(id));
    assert_eq!(id.as_uuid().get_version_num(), 7);
}

#[test]
fn every_id_type_uses_its_documented_prefix() {
    let uuid = Uuid::from_u128(0x0190_a5c4_e3b8_7c3a_9a0d_0000_0000_0001);
    let body = "0190a5c4e3b87c3a9a0d000000000001";
    assert_eq!(
        ConnectionId::from_uuid(uuid).to_string(),
        format!("conn_{body}")
    );
    assert_eq!(
        CredentialId::from_uuid(uuid).to_string(),
        format!("cred_{body}")
    );
    assert_eq!(RunId::from_uuid(uuid).to_string(), format!("run_{body}"));
    assert_eq!(
        FailureId::from_uuid(uuid).to_string(),
        format!("fail_{body}")
    );
    assert_eq!(
        SubscriptionId::from_uuid(uuid).to_string(),
        format!("sub_{body}")
    );
    assert_eq!(
        DeliveryId::from_uuid(uuid).to_string(),
        format!("dlv_{body}")
    );
    assert_eq!(SourceId::from_uuid(uuid).to_string(), format!("src_{body}"));
    assert_eq!(ClientId::from_uuid(uuid).to_string(), format!("cli_{body}"));
    assert_eq!(
        RotationId::from_uuid(uuid).to_string(),
        format!("rot_{body}")
    );
}

#[test]
fn new_ids_are_distinct_and_time_ordered() {
    let a = ConnectionId::new();
    let b = ConnectionId::new();
    assert_ne!(a, b);
    assert!(a < b, "v7 ids sort by creation");
}

#[test]
fn parse_refuses_another_types_id() {
    let run = RunId::new().to_string();
    assert!(matches!(
        ConnectionId::parse(&run),
        Err(ParseError::Malformed {
            reason: "wrong prefix",
            ..
        })
    ));
    // A prefix that merely starts the same way is still wrong.
    let body = RunId::new().as_uuid().simple().to_string();
    assert!(RunId::parse(&format!("runs_{body}")).is_err());
    assert!(ConnectionId::parse(&format!("con_{body}")).is_err());
}

#[test]
fn parse_refuses_malformed_bodies() {
    let body = "0190a5c4e3b87c3a9a0d000000000001";
    assert_eq!(RunId::parse(""), Err(ParseError::Empty { what: "run id" }));
    assert!(matches!(
        RunId::parse("run_"),
        Err(ParseError::Malformed { .. })
    ));
    assert!(matches!(
        RunId::parse(&format!("run_{}", &body[..31])),
        Err(ParseError::Malformed { .. })
    ));
    assert!(matches!(
        RunId::parse(&format!("run_{body}0")),
        Err(ParseError::TooLong { .. })
    ));
    // Uppercase would give the same id two spellings.
    assert_eq!(
        RunId::parse(&format!("run_{}", body.to_uppercase())),
        Err(ParseError::InvalidChar {
            what: "run id",
            position: 4 + 4
        })
    );
    assert!(matches!(
        RunId::parse(&format!("run_{}g", &body[..31])),
        Err(ParseError::InvalidChar { .. })
    ));
    // Hyphenated uuids are not the canonical form.
    assert!(RunId::parse(&format!("run_{}", Uuid::nil().hyphenated())).is_err());
    assert!(RunId::parse(&format!("run-{body}")).is_err());
    assert!(RunId::parse(&format!(" run_{body}")).is_err());
}

#[test]
fn serde_is_the_plain_string() {
    let id = DeliveryId::from_uuid(Uuid::from_u128(42));
    let json = serde_json::to_string(&id).expect("serialize");
    assert_eq!(json, format!("\"{id}\""));
    assert_eq!(
        serde_json::from_str::<DeliveryId>(&json).expect("deserialize"),
        id
    );
    assert!(
        serde_json::from_str::<DeliveryId>("\"sub_0000000000000000000000000000002a\"").is_err()
    );
    assert!(serde_json::from_str::<DeliveryId>("42").is_err());
}

#[test]
fn debug_names_the_type() {
    let id = SourceId::from_uuid(Uuid::from_u128(1));
    assert_eq!(format!("{id:?}"), format!("SourceId({id})"));
}

#[test]
fn from_str_and_try_from_agree_with_parse() {
    let text = CredentialId::new().to_string();
    let a: CredentialId = text.parse().expect("from_str");
    let b = CredentialId::try_from(text.clone()).expect("try_from");
    assert_eq!(a, b);
    assert_eq!(String::from(a), text);
}

proptest! {
    #[test]
    fn format_then_parse_round_trips(n in any::<u128>()) {
        let id = FailureId::from_uuid(Uuid::from_u128(n));
        prop_assert_eq!(FailureId::parse(&id.to_string()), Ok(id));
    }

    #[test]
    fn parse_never_panics(s in ".{0,64}") {
        let _ = RunId::parse(&s);
        let _ = ConnectionId::parse(&s);
    }

    #[test]
    fn parsed_ids_format_to_their_input(s in "sub_[0-9a-f]{32}") {
        let id = SubscriptionId::parse(&s).expect("canonical form parses");
        prop_assert_eq!(id.to_string(), s);
    }
}
