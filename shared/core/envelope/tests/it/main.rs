//! Integration tests of the envelope crate's public API, one binary with a module per concern.

mod builder;
mod data;
mod errors;
mod props;
mod roundtrip;

/// A complete platform envelope with every attribute set and JSON data containing whitespace.
pub(crate) const FULL: &str = r#"{
  "specversion": "1.0",
  "id": "evt_0190b6f2-7c3e-7d4a-9b1e-3f2a1c0d9e8f",
  "source": "/integration/github",
  "type": "connectsoft.integration.run.completed.v1",
  "subject": "run_42",
  "time": "2024-05-01T12:30:05.120Z",
  "datacontenttype": "application/json",
  "dataschema": "https://schemas.example.com/run-completed.v1.json",
  "tenantid": "tenant-42",
  "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
  "correlationid": "corr-1",
  "causationid": "evt_cause",
  "data": { "runId" : "run_42",
            "status":"succeeded",   "usage": {"tokens": 12, "cost": 1.50e0},
            "note": "caf\u00e9 \"quoted\"" }
}"#;

/// The smallest envelope the platform accepts.
pub(crate) const MINIMAL: &str =
    r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","tenantid":"t1"}"#;
