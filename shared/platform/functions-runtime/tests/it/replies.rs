//! The reply envelope (§5.1) and the host's base64 sniffing of output strings (§5.2).

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use functions_runtime::declare::{FunctionDecl, OutputBinding};
use functions_runtime::wire::{InvocationResponse, dotnet_accepts_base64};

#[test]
fn default_reply_is_the_empty_envelope() {
    let bytes = InvocationResponse::default().to_bytes();
    assert_eq!(
        &bytes[..],
        br#"{"Outputs":{},"Logs":[],"ReturnValue":null}"#
    );
}

#[test]
fn reply_with_outputs_logs_and_return_value() {
    let mut outputs = Map::new();
    outputs.insert("outMsg".into(), json!({ "runId": "r1" }));
    outputs.insert("report".into(), json!("done"));
    let reply = InvocationResponse {
        outputs,
        logs: vec!["started".into(), "caf\u{e9} \"quoted\"".into()],
        return_value: json!(true),
    };
    let v: Value = serde_json::from_slice(&reply.to_bytes()).unwrap();
    assert_eq!(
        v,
        json!({
            "Outputs": { "outMsg": { "runId": "r1" }, "report": "done" },
            "Logs": ["started", "caf\u{e9} \"quoted\""],
            "ReturnValue": true,
        })
    );
}

proptest! {
    #[test]
    fn reply_is_never_empty_and_always_an_envelope(
        outputs in prop::collection::btree_map("[A-Za-z][A-Za-z0-9]{0,8}", any::<String>(), 0..4),
        logs in prop::collection::vec(any::<String>(), 0..4),
    ) {
        let reply = InvocationResponse {
            outputs: outputs.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect(),
            logs: logs.clone(),
            return_value: Value::Null,
        };
        let bytes = reply.to_bytes();
        prop_assert!(!bytes.is_empty());
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        let top = v.as_object().unwrap();
        prop_assert_eq!(top.len(), 3);
        prop_assert_eq!(top["Outputs"].as_object().unwrap().len(), outputs.len());
        prop_assert_eq!(&top["Logs"], &json!(logs));
        prop_assert_eq!(&top["ReturnValue"], &Value::Null);
    }

    /// `dotnet_accepts_base64` agrees with a decoder configured like .NET's
    /// `Convert.FromBase64String` (whitespace ignored, padding required, trailing bits
    /// tolerated).
    #[test]
    fn base64_sniffing_matches_a_lenient_decoder(s in "[A-Za-z0-9+/= \t\r\n!.-]{0,16}") {
        let lenient = GeneralPurpose::new(
            &alphabet::STANDARD,
            GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
        );
        let stripped: String = s.chars().filter(|c| !matches!(c, ' ' | '\t' | '\r' | '\n')).collect();
        prop_assert_eq!(dotnet_accepts_base64(&s), lenient.decode(stripped.as_bytes()).is_ok(), "{:?}", s);
    }
}

#[test]
fn base64_sniffing_on_the_reference_examples() {
    // Strings the host silently turns into bytes.
    for s in [
        "done",
        "true",
        "1234",
        "Hello from bar",
        " Hello\tfrom\r\nbar ",
        "abcd",
        "YQ==",
        "YWI=",
        "",
    ] {
        assert!(
            dotnet_accepts_base64(s),
            "{s:?} would be base64-decoded by the host"
        );
    }
    // Strings that survive as text.
    for s in [
        "hello!",
        "abc",
        "a=bc",
        "done.",
        "false",
        "12345",
        "YQ=",
        "Y===",
        "====",
        "ab=c",
        "Hello from bars",
    ] {
        assert!(!dotnet_accepts_base64(s), "{s:?} would stay text");
    }
}

#[test]
fn output_bindings_are_declared_binary() {
    let mut decl = FunctionDecl::queue("ProcessRun", "runs");
    let mut props = Map::new();
    props.insert("queueName".into(), json!("steps"));
    props.insert("connection".into(), json!("ServiceBusConnection"));
    decl.outputs.push(OutputBinding {
        name: "outMsg".into(),
        binding_type: "serviceBus".into(),
        properties: props,
    });
    let mut blob = Map::new();
    blob.insert("path".into(), json!("reports/{runId}.json"));
    blob.insert("dataType".into(), json!("string"));
    decl.outputs.push(OutputBinding {
        name: "report".into(),
        binding_type: "blob".into(),
        properties: blob,
    });

    let fj = decl.function_json();
    let bindings = fj["bindings"].as_array().unwrap();
    assert_eq!(bindings.len(), 3);
    assert_eq!(
        bindings[1],
        json!({
            "type": "serviceBus", "direction": "out", "name": "outMsg",
            "queueName": "steps", "connection": "ServiceBusConnection", "dataType": "binary",
        })
    );
    // An explicit dataType is respected.
    assert_eq!(bindings[2]["dataType"], "string");
    assert_eq!(bindings[2]["path"], "reports/{runId}.json");
    assert_eq!(bindings[2]["direction"], "out");
    // Every binding the generator emits for an output is binary unless told otherwise, so
    // `"done"` stays text.
    assert!(dotnet_accepts_base64("done"));
}
