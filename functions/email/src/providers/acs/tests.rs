//! ACS Email against a faithful fake over real HTTP (wiremock): request shape and signature,
//! the polling sequence, and each class of failure.

use base64::Engine as _;
use std::time::{Duration, Instant};

use serde_json::json;
use wiremock::matchers::{body_partial_json, header, header_exists, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::*;
use crate::providers::testing::{self, Harness, Perform as _, RUN, assert_no_secret, email};

/// 32 × '0', base64: the key of the computed vector.
const KEY: &str = "MDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDA=";
const EMPTY_SHA256: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

fn harness(server: &MockServer) -> Harness {
    testing::harness(
        "acs-email",
        CredentialKind::ApiKey,
        json!({"apiKey": KEY}),
        json!({"endpoint": server.uri(), "senderAddress": "DoNotReply@contoso.example"}),
    )
}

fn acs() -> Acs {
    Acs::new(testing::net())
}

fn op() -> String {
    operation_id(Some(RUN))
}

fn operation(status: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"id": op(), "status": status}))
}

fn accepted(retry_after: &str) -> ResponseTemplate {
    ResponseTemplate::new(202)
        .insert_header(
            "Operation-Location",
            // Another origin: never followed.
            format!(
                "https://elsewhere.example/emails/operations/{}?api-version={API_VERSION}",
                op()
            )
            .as_str(),
        )
        .insert_header("retry-after", retry_after)
        .set_body_json(json!({"id": op(), "status": "Running"}))
}

async fn mount_send(server: &MockServer, answer: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/emails:send"))
        .and(query_param("api-version", API_VERSION))
        .respond_with(answer)
        .mount(server)
        .await;
}

async fn mount_poll(server: &MockServer, answer: ResponseTemplate, times: Option<u64>) {
    let mock = Mock::given(method("GET"))
        .and(path(format!("/emails/operations/{}", op())))
        .and(query_param("api-version", API_VERSION))
        .respond_with(answer);
    match times {
        Some(n) => mock.up_to_n_times(n).mount(server).await,
        None => mock.mount(server).await,
    }
}

fn header_of<'a>(r: &'a Request, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("{name} is sent"))
}

/// Checks a received request's signature independently of the code that made it (but for
/// the HMAC, which the vector test pins).
fn assert_signed(r: &Request) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let content = header_of(r, "x-ms-content-sha256");
    assert_eq!(content, b64.encode(Sha256::digest(&r.body)));
    let date = header_of(r, "x-ms-date");
    assert!(httpdate::parse_http_date(date).is_ok(), "an RFC 1123 date");
    let host = header_of(r, "host");
    let pq = match r.url.query() {
        Some(q) => format!("{}?{q}", r.url.path()),
        None => r.url.path().to_owned(),
    };
    let expected = integration_kit::acs::sign(
        &b64.decode(KEY).unwrap(),
        r.method.as_str(),
        &pq,
        host,
        date,
        &r.body,
    );
    assert_eq!(header_of(r, "authorization"), expected.authorization);
}

#[test]
fn operation_ids_are_uuids_derived_from_the_run() {
    let id = operation_id(Some("run_a"));
    let parsed = uuid::Uuid::parse_str(&id).expect("a UUID");
    assert_eq!(parsed.get_version_num(), 8);
    assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
    assert_eq!(id, operation_id(Some("run_a")));
    assert_ne!(id, operation_id(Some("run_b")));
    assert_ne!(operation_id(None), operation_id(None));
}

#[tokio::test]
async fn sends_signed_then_polls_until_succeeded() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/emails:send"))
        .and(query_param("api-version", API_VERSION))
        .and(header("operation-id", op().as_str()))
        .and(header("content-type", "application/json"))
        .and(header_exists("x-ms-date"))
        .and(header_exists("x-ms-content-sha256"))
        .and(header_exists("authorization"))
        .and(body_partial_json(json!({
            "senderAddress": "DoNotReply@contoso.example",
            "recipients": {
                "to": [{"address": "ada@example.com"}],
                "cc": [{"address": "grace@example.com"}],
                "bcc": [{"address": "alan@example.com"}],
            },
            "content": {"subject": "Hello", "plainText": "Plain body", "html": "<p>HTML body</p>"},
            "attachments": [{"name": "note.txt", "contentType": "text/plain", "contentInBase64": "aGVsbG8="}],
            "userEngagementTrackingDisabled": true,
        })))
        .respond_with(accepted("0"))
        .expect(1)
        .mount(&server)
        .await;
    mount_poll(&server, operation("Running"), Some(1)).await;
    mount_poll(&server, operation("Succeeded"), None).await;
    let h = harness(&server);
    let out = acs().perform(&h.call(), &email()).await.expect("sent");
    assert_eq!(out.summary["status"], "Succeeded");
    assert_eq!(out.summary["polls"], 2);
    assert_eq!(out.summary["attempts"], 1);
    assert_eq!(out.vendor_message_id, Some(op()));
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 3, "one send, two polls, nothing elsewhere");
    for r in &received {
        assert_signed(r);
    }
    assert_eq!(header_of(&received[1], "x-ms-content-sha256"), EMPTY_SHA256);
    // `from` in the input wins over the connection's sender.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_partial_json(
            json!({"senderAddress": "news@contoso.example"}),
        ))
        .respond_with(
            ResponseTemplate::new(202).set_body_json(json!({"id": op(), "status": "Succeeded"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let mut input = email();
    input["from"] = json!("news@contoso.example");
    let out = acs()
        .perform(&harness(&server).call(), &input)
        .await
        .unwrap();
    assert_eq!(out.summary["status"], "Succeeded");
    assert_eq!(out.summary["polls"], 0);
}

#[tokio::test]
async fn a_failed_operation_is_unprocessable_with_the_vendor_code() {
    let server = MockServer::start().await;
    mount_send(&server, accepted("0")).await;
    mount_poll(&server, operation("Running"), Some(1)).await;
    mount_poll(
        &server,
        ResponseTemplate::new(200).set_body_json(json!({
            "id": op(), "status": "Failed",
            "error": {"code": "EmailDropped", "message": "Email was dropped after several attempts to deliver."}
        })),
        None,
    )
    .await;
    let e = acs()
        .perform(&harness(&server).call(), &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Unprocessable);
    assert_eq!(e.failure.vendor_code.as_deref(), Some("EmailDropped"));
    assert!(
        e.failure.message.contains("dropped"),
        "{}",
        e.failure.message
    );
    assert!(!e.retryable);
    assert_no_secret(&e, &[KEY]);
}

#[tokio::test]
async fn an_operation_still_running_after_the_polls_succeeds_as_running() {
    let server = MockServer::start().await;
    mount_send(&server, accepted("0")).await;
    mount_poll(
        &server,
        operation("Running").insert_header("retry-after", "0"),
        None,
    )
    .await;
    let out = acs()
        .perform(&harness(&server).call(), &email())
        .await
        .expect("accepted is success");
    assert_eq!(out.summary["status"], "Running");
    assert_eq!(out.summary["polls"], MAX_POLLS);
    // A retry-after beyond the deadline: no poll at all (the fake's hint is honoured).
    let server = MockServer::start().await;
    mount_send(&server, accepted("30")).await;
    let started = Instant::now();
    let out = acs()
        .perform(&harness(&server).call(), &email())
        .await
        .unwrap();
    assert_eq!(out.summary["status"], "Running");
    assert_eq!(out.summary["polls"], 0);
    assert!(started.elapsed() < Duration::from_secs(2));
    // A poll that fails leaves the accepted message running.
    let server = MockServer::start().await;
    mount_send(&server, accepted("0")).await;
    mount_poll(&server, ResponseTemplate::new(401), None).await;
    let out = acs()
        .perform(&harness(&server).call(), &email())
        .await
        .unwrap();
    assert_eq!(out.summary["status"], "Running");
    assert_eq!(out.summary["polls"], 1);
}

#[tokio::test]
async fn polls_wait_for_the_vendors_retry_after() {
    let server = MockServer::start().await;
    mount_send(&server, accepted("1")).await;
    mount_poll(&server, operation("Succeeded"), None).await;
    let started = Instant::now();
    let out = acs()
        .perform(&harness(&server).call(), &email())
        .await
        .unwrap();
    assert_eq!(out.summary["status"], "Succeeded");
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn a_validation_error_carries_the_vendor_code_and_is_not_retried() {
    let server = MockServer::start().await;
    mount_send(
        &server,
        ResponseTemplate::new(400).set_body_json(json!({
            "error": {"code": "BadRequest", "message": "Invalid format for email address."}
        })),
    )
    .await;
    let e = acs()
        .perform(&harness(&server).call(), &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Validation);
    assert_eq!(e.failure.vendor_status, Some(400));
    assert_eq!(e.failure.vendor_code.as_deref(), Some("BadRequest"));
    assert!(e.failure.message.contains("Invalid format"));
    assert_eq!(e.attempts, 1);
    assert!(!e.retryable);
}

#[tokio::test]
async fn an_auth_error_names_no_secret() {
    let server = MockServer::start().await;
    mount_send(
        &server,
        ResponseTemplate::new(401).set_body_json(json!({
            "error": {"code": "Denied", "message": "Denied by the resource provider."}
        })),
    )
    .await;
    let e = acs()
        .perform(&harness(&server).call(), &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Auth);
    assert_eq!(e.failure.vendor_status, Some(401));
    assert_eq!(e.failure.vendor_code.as_deref(), Some("Denied"));
    assert_eq!(e.attempts, 1);
    assert_no_secret(&e, &[KEY, "0000000000000000"]);
    // A key that is not base64 fails before any call.
    let server = MockServer::start().await;
    let mut h = harness(&server);
    h.credential = custody::SecretMaterial::new(
        CredentialKind::ApiKey,
        json!({"apiKey": "not*base64"}).as_object().unwrap().clone(),
    )
    .unwrap();
    let e = acs().perform(&h.call(), &email()).await.unwrap_err();
    assert_eq!(e.class(), FailureClassification::Auth);
    assert_no_secret(&e, &["not*base64"]);
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_429_is_retried_after_the_vendors_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_send(
        &server,
        ResponseTemplate::new(202).set_body_json(json!({"id": op(), "status": "Succeeded"})),
    )
    .await;
    let started = Instant::now();
    let out = acs()
        .perform(&harness(&server).call(), &email())
        .await
        .unwrap();
    assert_eq!(out.summary["attempts"], 2);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited for Retry-After"
    );
    let sends = server.received_requests().await.unwrap();
    assert_eq!(
        header_of(&sends[0], "operation-id"),
        header_of(&sends[1], "operation-id"),
        "the retry names the same operation"
    );
    // A hint past the deadline: rate limited, with the hint kept for the run's retry.
    let server = MockServer::start().await;
    mount_send(
        &server,
        ResponseTemplate::new(429).insert_header("Retry-After", "30"),
    )
    .await;
    let e = acs()
        .perform(&harness(&server).call(), &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::RateLimited);
    assert_eq!(e.failure.retry_after, Some(Duration::from_secs(30)));
    assert_eq!(e.attempts, 1);
    assert!(e.retryable);
}

#[tokio::test]
async fn a_5xx_is_retried_with_the_same_operation_id() {
    let server = MockServer::start().await;
    mount_send(&server, ResponseTemplate::new(503)).await;
    let e = acs()
        .perform(&harness(&server).call(), &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Transient);
    assert_eq!(e.failure.vendor_status, Some(503));
    assert_eq!(e.attempts, 3);
    assert!(e.retryable);
    let sends = server.received_requests().await.unwrap();
    assert_eq!(sends.len(), 3);
    assert!(sends.iter().all(|r| header_of(r, "operation-id") == op()));
}

#[tokio::test]
async fn a_silent_vendor_times_out() {
    let server = MockServer::start().await;
    mount_send(
        &server,
        ResponseTemplate::new(202)
            .set_body_json(json!({"id": op(), "status": "Running"}))
            .set_delay(Duration::from_secs(3)),
    )
    .await;
    let e = acs()
        .perform(&harness(&server).call(), &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Timeout);
    assert_eq!(e.attempts, 3, "idempotent, so retried");
}

#[tokio::test]
async fn a_malformed_answer_is_not_retried() {
    let server = MockServer::start().await;
    mount_send(
        &server,
        ResponseTemplate::new(202).set_body_string("<html>accepted?</html>"),
    )
    .await;
    let e = acs()
        .perform(&harness(&server).call(), &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::VendorError);
    assert!(e.failure.message.contains("malformed"));
    assert!(!e.retryable);
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    // An error body that is not JSON still classifies by status.
    let server = MockServer::start().await;
    mount_send(&server, ResponseTemplate::new(400).set_body_string("oops")).await;
    let e = acs()
        .perform(&harness(&server).call(), &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Validation);
    assert_eq!(e.failure.vendor_code, None);
}

#[tokio::test]
async fn the_connection_test_reads_an_unknown_operation() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex(
            "^/emails/operations/[0-9a-f-]{36}$",
        ))
        .and(query_param("api-version", API_VERSION))
        .and(header_exists("authorization"))
        .respond_with(ResponseTemplate::new(404).set_body_json(
            json!({"error": {"code": "NotFound", "message": "Operation not found"}}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    acs()
        .test_connection(&harness(&server).call())
        .await
        .expect("404 proves the key");
    let received = server.received_requests().await.unwrap();
    assert_signed(&received[0]);
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(403))
        .mount(&server)
        .await;
    let e = acs()
        .test_connection(&harness(&server).call())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Auth);
    assert_eq!(e.failure.vendor_status, Some(403));
}

#[test]
fn config_is_checked() {
    let check = |v: Value| {
        integration_kit::config_of::<AcsEmailConfig>(v.as_object().unwrap())
            .map(drop)
            .map_err(|e| format!("{}: {}", e.path, e.message))
    };
    assert!(
        check(json!({
            "endpoint": "https://contoso.communication.azure.com",
            "senderAddress": "DoNotReply@contoso.example"
        }))
        .is_ok()
    );
    assert!(
        check(json!({"senderAddress": "DoNotReply@contoso.example"}))
            .unwrap_err()
            .contains("endpoint")
    );
    assert!(
        check(json!({
            "endpoint": "https://contoso.communication.azure.com/emails",
            "senderAddress": "DoNotReply@contoso.example"
        }))
        .unwrap_err()
        .starts_with("endpoint")
    );
    assert!(
        check(json!({
            "endpoint": "https://contoso.communication.azure.com",
            "senderAddress": "nobody"
        }))
        .unwrap_err()
        .starts_with("senderAddress")
    );
    // https and internal addresses are the kit's to refuse (`https_required`,
    // `url_refused`), for every provider's `endpoint`.
}

/// ACS Email in its documented shapes (a send, then its operation's status), for the kit's
/// conformance suite.
struct AcsEmailScript;

impl integration_kit::testing::VendorScript for AcsEmailScript {
    fn reply(
        &self,
        case: integration_kit::testing::Case,
        request: &integration_kit::testing::Recorded,
    ) -> Result<integration_kit::testing::Reply, &'static str> {
        use integration_kit::testing::{Case, Reply, THROTTLE_SECS};
        let error = |status: u16, code: &str, message: &str| {
            Reply::json(status, json!({"error": {"code": code, "message": message}}))
        };
        if request.method == "GET" {
            return Ok(Reply::json(200, json!({"id": op(), "status": "Succeeded"})));
        }
        Ok(match case {
            Case::Success => Reply::json(202, json!({"id": op(), "status": "Running"}))
                .header("retry-after", "0"),
            Case::Invalid => error(400, "BadRequest", "The recipient address is not valid."),
            Case::Unauthorized => error(401, "Denied", "Denied by the resource provider."),
            Case::Throttled => error(429, "TooManyRequests", "Too many requests.")
                .header("retry-after", &THROTTLE_SECS.to_string()),
            Case::ServerError => error(503, "ServiceUnavailable", "Try again later."),
            Case::Malformed => Reply::text(202, "{\"id\": "),
        })
    }
}

#[tokio::test]
async fn conforms_to_the_provider_suite() {
    let skipped = integration_kit::testing::conformance::<crate::Send, _, _>(
        &acs(),
        AcsEmailScript,
        |base| {
            testing::harness(
                "acs-email",
                CredentialKind::ApiKey,
                json!({"apiKey": KEY}),
                json!({"endpoint": base, "senderAddress": "DoNotReply@contoso.example"}),
            )
        },
        email(),
        &[KEY],
        true,
    )
    .await;
    assert!(skipped.is_empty(), "{skipped:?}");
}
