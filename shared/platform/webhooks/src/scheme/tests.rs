use super::*;

#[test]
fn serde_shapes() {
    let s: Scheme = serde_json::from_str(r#"{"kind":"stripe"}"#).unwrap();
    assert_eq!(s, Scheme::stripe());
    let s: Scheme = serde_json::from_str(r#"{"kind":"github"}"#).unwrap();
    assert_eq!(s, Scheme::Github);
    let s: Scheme =
        serde_json::from_str(r#"{"kind":"azureDevOps","mode":{"type":"basic","username":"ado"}}"#)
            .unwrap();
    assert_eq!(
        s,
        Scheme::AzureDevOps {
            mode: AzureDevOpsAuth::Basic {
                username: "ado".into()
            }
        }
    );
    let s: Scheme = serde_json::from_str(r#"{"kind":"twilio","variant":"sha256"}"#).unwrap();
    assert_eq!(
        s,
        Scheme::Twilio {
            variant: TwilioVariant::Sha256
        }
    );
    let s: Scheme = serde_json::from_str(
        r#"{"kind":"genericHmac","timestampHeader":null,"encoding":"base64"}"#,
    )
    .unwrap();
    let Scheme::GenericHmac(g) = s else {
        panic!("not generic")
    };
    assert_eq!(g.header, "X-Signature");
    assert_eq!(g.timestamp_header, None);
    assert_eq!(g.encoding, SignatureEncoding::Base64);
    let s: Scheme = serde_json::from_str(r#"{"kind":"eventGrid"}"#).unwrap();
    assert_eq!(s, Scheme::event_grid());
    let json = serde_json::to_value(Scheme::slack()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"kind":"slack","toleranceSecs":300})
    );
}

#[test]
fn generic_defaults() {
    let s: Scheme = serde_json::from_str(r#"{"kind":"genericHmac"}"#).unwrap();
    assert_eq!(s, Scheme::GenericHmac(GenericHmac::default()));
}
