//! Conformance tests for the custom-handler protocol: the exact payloads the Functions host
//! sends (traps included), the replies it expects, the declarations it reads, and the
//! handler served over real HTTP.

mod declarations;
mod decode_errors;
mod decoding;
mod props;
mod replies;
mod routes;
mod server;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value, json};

use functions_runtime::encode::ServiceBusDelivery;

/// §4.3: a Service Bus message with body `{"runId":"r1","step":2}` and no `dataType`, exactly
/// as the reference shows it (double-encoded body, numbers as strings, seconds-precision
/// `DateTime`s, settlement objects, back-compat duplicates, merged body keys, `sys`).
pub(crate) const SB_STRING_EXAMPLE: &str = r#"{
  "Data": { "msg": "\"{\\\"runId\\\":\\\"r1\\\",\\\"step\\\":2}\"" },
  "Metadata": {
    "MessageReceiver": {}, "MessageSession": {}, "MessageActions": {}, "SessionActions": {},
    "DeliveryCount": "1",
    "LockToken": "\"7a1d0c1e-5b64-4a8b-9f0e-0d5c1a2b3c4d\"",
    "ExpiresAtUtc": "9999-12-31T23:59:59", "ExpiresAt": "9999-12-31T23:59:59+00:00",
    "EnqueuedTimeUtc": "2025-01-15T10:00:00", "EnqueuedTime": "2025-01-15T10:00:00+00:00",
    "MessageId": "\"run-r1-step-2\"",
    "ContentType": "\"application/json\"",
    "SequenceNumber": "42",
    "CorrelationId": "\"r1\"",
    "Subject": "\"step\"", "Label": "\"step\"",
    "ApplicationProperties": { "tenant": "t1" }, "UserProperties": { "tenant": "t1" },
    "runId": "\"r1\"", "step": "\"2\"",
    "sys": { "MethodName": "ProcessRun", "UtcNow": "2025-01-15T10:00:01.1234567Z", "RandGuid": "0f4737ff-5b49-4e1d-9639-e51aaca81bc6" }
  }
}"#;

/// The same message with `"dataType":"binary"`: base64 of the exact bytes, nothing merged.
pub(crate) const SB_BINARY_EXAMPLE: &str = r#"{
  "Data": { "msg": "eyJydW5JZCI6InIxIiwic3RlcCI6Mn0=" },
  "Metadata": {
    "MessageReceiver": {}, "MessageSession": {}, "MessageActions": {}, "SessionActions": {},
    "DeliveryCount": "1",
    "LockToken": "\"7a1d0c1e-5b64-4a8b-9f0e-0d5c1a2b3c4d\"",
    "ExpiresAtUtc": "9999-12-31T23:59:59", "ExpiresAt": "9999-12-31T23:59:59+00:00",
    "EnqueuedTimeUtc": "2025-01-15T10:00:00", "EnqueuedTime": "2025-01-15T10:00:00+00:00",
    "MessageId": "\"run-r1-step-2\"",
    "ContentType": "\"application/json\"",
    "SequenceNumber": "42",
    "CorrelationId": "\"r1\"",
    "Subject": "\"step\"", "Label": "\"step\"",
    "ApplicationProperties": { "tenant": "t1" }, "UserProperties": { "tenant": "t1" },
    "sys": { "MethodName": "ProcessRun", "UtcNow": "2025-01-15T10:00:01.1234567Z", "RandGuid": "0f4737ff-5b49-4e1d-9639-e51aaca81bc6" }
  }
}"#;

/// The body of the §4.3 example message.
pub(crate) const SB_EXAMPLE_BODY: &[u8] = br#"{"runId":"r1","step":2}"#;

/// §4.4: `POST /api/runs/r1?dry=1` with a JSON body, forwarding off.
pub(crate) const HTTP_EXAMPLE: &str = r#"{
  "Data": {
    "req": {
      "Url": "http://localhost:7071/api/runs/r1?dry=1",
      "Method": "POST",
      "Query": { "dry": "1" },
      "Headers": { "Content-Type": ["application/json"], "Content-Length": ["13"], "Host": ["localhost:7071"] },
      "Params": { "runId": "r1" },
      "Identities": [ { "AuthenticationType": null, "IsAuthenticated": false, "Actor": null, "BootstrapContext": null,
                        "Claims": [], "Label": null, "Name": null,
                        "NameClaimType": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
                        "RoleClaimType": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role" } ],
      "Body": "{\"steps\":[1]}"
    }
  },
  "Metadata": {
    "runId": "\"r1\"",
    "dry": "\"1\"",
    "Query": { "dry": "1" },
    "Headers": { "Content-Type": "application/json", "Content-Length": "13", "Host": "localhost:7071" },
    "sys": { "MethodName": "StartRun", "UtcNow": "2025-01-15T10:00:00.0000000Z", "RandGuid": "5d2c1f8e-3a4b-4c5d-8e6f-7a8b9c0d1e2f" }
  }
}"#;

/// §4.5: a timer invocation with monitoring on.
pub(crate) const TIMER_EXAMPLE: &str = r#"{
  "Data": { "timer": { "Schedule": { "AdjustForDST": true },
                       "ScheduleStatus": { "Last": "2025-01-15T09:55:00+00:00", "Next": "2025-01-15T10:05:00+00:00", "LastUpdated": "2025-01-15T10:00:00.1234567+00:00" },
                       "IsPastDue": false } },
  "Metadata": { "sys": { "MethodName": "Nightly", "UtcNow": "2025-01-15T10:00:00.1501234Z", "RandGuid": "0f4737ff-5b49-4e1d-9639-e51aaca81bc6" } }
}"#;

/// §4.5 as captured with monitoring off: `ScheduleStatus` is `null`.
pub(crate) const TIMER_NULL_STATUS: &str = r#"{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":true}},"Metadata":{"sys":{"MethodName":"Nightly","UtcNow":"2025-01-15T10:00:00.1501234Z","RandGuid":"0f4737ff-5b49-4e1d-9639-e51aaca81bc6"}}}"#;

pub(crate) fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .expect("valid instant")
}

pub(crate) fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("expected an object, got {other}"),
    }
}

/// The message of the §4.3 example, as the broker holds it.
pub(crate) fn example_delivery(body: &[u8]) -> ServiceBusDelivery<'_> {
    ServiceBusDelivery {
        body,
        message_id: "run-r1-step-2",
        delivery_count: 1,
        sequence_number: 42,
        lock_token: "7a1d0c1e-5b64-4a8b-9f0e-0d5c1a2b3c4d",
        enqueued_time: utc(2025, 1, 15, 10, 0, 0),
        expires_at: None,
        content_type: Some("application/json"),
        correlation_id: Some("r1"),
        session_id: None,
        subject: Some("step"),
        dead_letter_source: None,
        application_properties: object(json!({ "tenant": "t1" })),
    }
}
