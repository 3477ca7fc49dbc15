use super::*;

const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn parses_and_displays_the_w3c_example() {
    let tp = TraceParent::parse(VALID).unwrap();
    assert_eq!(tp.to_string(), VALID);
    assert_eq!(
        tp.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(tp.parent_id().to_string(), "00f067aa0ba902b7");
    assert_eq!(tp.flags(), 1);
    assert!(tp.is_sampled());
}

#[test]
fn rejects_malformed_values() {
    let cases = [
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-+1",
        "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01",
    ];
    for case in cases {
        let err = TraceParent::parse(case).unwrap_err();
        assert_eq!(err.attribute(), Some("traceparent"), "{case}");
        assert_eq!(err.code(), "invalid_value", "{case}");
    }
}

#[test]
fn root_is_sampled_and_child_keeps_the_trace() {
    let root = TraceParent::new_root();
    assert!(root.is_sampled());
    let child = root.child();
    assert_eq!(child.trace_id(), root.trace_id());
    assert_ne!(child.parent_id(), root.parent_id());
    assert_eq!(child.flags(), root.flags());
    assert_ne!(TraceParent::new_root().trace_id(), root.trace_id());
    assert_eq!(TraceParent::parse(&child.to_string()).unwrap(), child);
}

#[test]
fn serde_uses_the_header_form() {
    let tp = TraceParent::parse(VALID).unwrap();
    let json = serde_json::to_string(&tp).unwrap();
    assert_eq!(json, format!("\"{VALID}\""));
    assert_eq!(serde_json::from_str::<TraceParent>(&json).unwrap(), tp);
    assert!(serde_json::from_str::<TraceParent>("\"00-bad\"").is_err());
}
