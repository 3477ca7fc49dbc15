//! SendGrid against a faithful fake over real HTTP (wiremock).

use std::time::{Duration, Instant};

use domain::FailureClassification;
use serde_json::json;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::providers::testing::{self, Harness, RUN, assert_no_secret, email};

const KEY: &str = "SG.test-key.s3cr3t";

fn harness_at(base: &str) -> Harness {
    Harness::new(
        "sendgrid",
        CredentialKind::ApiKey,
        json!({"apiKey": KEY}),
        json!({"from": "noreply@example.com", "baseUrl": base}),
    )
}

fn harness(server: &MockServer) -> Harness {
    harness_at(&server.uri())
}

fn sendgrid() -> SendGrid {
    SendGrid::new(testing::net())
}

async fn mount_send(server: &MockServer, answer: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .respond_with(answer)
        .mount(server)
        .await;
}

fn accepted() -> ResponseTemplate {
    ResponseTemplate::new(202).insert_header("X-Message-Id", "14c5d75ce93.dfd.64b469")
}

#[tokio::test]
async fn sends_the_v3_mail_send_shape() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(header("content-type", "application/json"))
        .and(body_partial_json(json!({
            "personalizations": [{
                "to": [{"email": "ada@example.com"}],
                "cc": [{"email": "grace@example.com"}],
                "bcc": [{"email": "alan@example.com"}],
                "custom_args": {"run_id": RUN},
            }],
            "from": {"email": "noreply@example.com"},
            "subject": "Hello",
            "attachments": [{"content": "aGVsbG8=", "filename": "note.txt", "type": "text/plain", "disposition": "attachment"}],
        })))
        .respond_with(accepted())
        .expect(1)
        .mount(&server)
        .await;
    let out = sendgrid()
        .execute(&harness(&server).call(), "send", &email())
        .await
        .expect("sent");
    assert_eq!(
        out.vendor_message_id.as_deref(),
        Some("14c5d75ce93.dfd.64b469")
    );
    assert_eq!(out.summary["status"], "accepted");
    assert_eq!(out.summary["attempts"], 1);
    let received = server.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(
        body["content"],
        json!([
            {"type": "text/plain", "value": "Plain body"},
            {"type": "text/html", "value": "<p>HTML body</p>"},
        ]),
        "text/plain comes first"
    );
    // An html-only message with `from` given, and no run: no custom_args.
    let server = MockServer::start().await;
    mount_send(&server, accepted()).await;
    let mut h = harness(&server);
    h.idempotency_key = None;
    let input = json!({"to": ["a@example.com"], "subject": "s", "html": "<b>x</b>", "from": "news@example.com"});
    sendgrid().execute(&h.call(), "send", &input).await.unwrap();
    let received = server.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(body["from"], json!({"email": "news@example.com"}));
    assert_eq!(
        body["content"],
        json!([{"type": "text/html", "value": "<b>x</b>"}])
    );
    assert!(body["personalizations"][0].get("custom_args").is_none());
    assert!(body["personalizations"][0].get("cc").is_none());
    assert!(body.get("attachments").is_none());
}

#[tokio::test]
async fn a_validation_error_carries_the_vendors_message_and_field() {
    let server = MockServer::start().await;
    mount_send(
        &server,
        ResponseTemplate::new(400).set_body_json(json!({"errors": [{
            "message": "Does not contain a valid address.",
            "field": "personalizations.0.to.0.email",
            "help": "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.personalizations.to"
        }]})),
    )
    .await;
    let e = sendgrid()
        .execute(&harness(&server).call(), "send", &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Validation);
    assert_eq!(e.failure.vendor_status, Some(400));
    assert!(
        e.failure
            .message
            .contains("Does not contain a valid address. (field personalizations.0.to.0.email)"),
        "{}",
        e.failure.message
    );
    assert_eq!(e.attempts, 1);
    assert!(!e.retryable);
}

#[tokio::test]
async fn an_auth_error_names_no_secret() {
    let server = MockServer::start().await;
    mount_send(
        &server,
        ResponseTemplate::new(401).set_body_json(json!({"errors": [{
            "message": "The provided authorization grant is invalid, expired, or revoked",
            "field": null
        }]})),
    )
    .await;
    let e = sendgrid()
        .execute(&harness(&server).call(), "send", &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Auth);
    assert_eq!(e.failure.vendor_status, Some(401));
    assert!(e.failure.message.contains("authorization grant is invalid"));
    assert_no_secret(&e, &[KEY, "s3cr3t"]);
}

#[tokio::test]
async fn a_429_is_retried_after_retry_after_even_though_the_send_is_unsafe() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_send(&server, accepted()).await;
    let started = Instant::now();
    let out = sendgrid()
        .execute(&harness(&server).call(), "send", &email())
        .await
        .unwrap();
    assert_eq!(out.summary["attempts"], 2);
    assert!(started.elapsed() >= Duration::from_secs(1));
    // The reset header alone is honoured too.
    let server = MockServer::start().await;
    mount_send(
        &server,
        ResponseTemplate::new(429).insert_header("X-RateLimit-Reset", "60"),
    )
    .await;
    let e = sendgrid()
        .execute(&harness(&server).call(), "send", &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::RateLimited);
    assert_eq!(e.failure.retry_after, Some(Duration::from_secs(60)));
    assert!(e.retryable);
}

#[tokio::test]
async fn a_5xx_is_not_repeated_since_sendgrid_may_have_sent() {
    let server = MockServer::start().await;
    mount_send(&server, ResponseTemplate::new(502)).await;
    let e = sendgrid()
        .execute(&harness(&server).call(), "send", &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Transient);
    assert_eq!(e.failure.vendor_status, Some(502));
    assert_eq!(e.attempts, 1);
    assert!(!e.retryable, "no idempotency key: not safe to repeat");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_timeout_is_not_repeated_either() {
    let server = MockServer::start().await;
    mount_send(&server, accepted().set_delay(Duration::from_secs(3))).await;
    let e = sendgrid()
        .execute(&harness(&server).call(), "send", &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Timeout);
    assert_eq!(e.attempts, 1);
    assert!(!e.retryable);
}

#[tokio::test]
async fn a_refused_connection_is_repeated_since_nothing_was_sent() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let h = harness_at(&format!("http://127.0.0.1:{port}"));
    let e = sendgrid()
        .execute(&h.call(), "send", &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Transient);
    assert_eq!(e.attempts, 3);
    assert!(e.retryable);
}

#[tokio::test]
async fn odd_answers_are_read_without_guessing() {
    // An error body that is not JSON classifies by status.
    let server = MockServer::start().await;
    mount_send(
        &server,
        ResponseTemplate::new(400).set_body_string("<html>Bad Request</html>"),
    )
    .await;
    let e = sendgrid()
        .execute(&harness(&server).call(), "send", &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Validation);
    assert_eq!(e.failure.message, "the vendor answered 400 Bad Request");
    // A 2xx without X-Message-Id still sent the message.
    let server = MockServer::start().await;
    mount_send(
        &server,
        ResponseTemplate::new(202).set_body_string("garbage"),
    )
    .await;
    let out = sendgrid()
        .execute(&harness(&server).call(), "send", &email())
        .await
        .unwrap();
    assert_eq!(out.vendor_message_id, None);
    assert_eq!(out.summary["messageId"], Value::Null);
}

#[tokio::test]
async fn the_connection_test_reads_the_scopes() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v3/scopes"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"scopes": ["mail.send"]})))
        .expect(1)
        .mount(&server)
        .await;
    sendgrid()
        .test_connection(&harness(&server).call())
        .await
        .expect("fine");
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"errors": [{"field": null, "message": "access forbidden"}]})),
        )
        .mount(&server)
        .await;
    let e = sendgrid()
        .test_connection(&harness(&server).call())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Auth);
    assert_no_secret(&e, &[KEY]);
}

#[test]
fn config_is_checked() {
    let config = |v: Value| v.as_object().unwrap().clone();
    let strict = SendGrid::new(Net::strict());
    assert!(
        strict
            .validate_config(&config(json!({"from": "noreply@example.com"})))
            .is_ok()
    );
    assert!(
        strict
            .validate_config(&config(
                json!({"from": "noreply@example.com", "baseUrl": "https://api.eu.sendgrid.com"})
            ))
            .is_ok()
    );
    assert!(
        strict
            .validate_config(&config(json!({})))
            .unwrap_err()
            .contains("from")
    );
    assert!(
        strict
            .validate_config(&config(json!({"from": "x"})))
            .is_err()
    );
    assert!(
        strict
            .validate_config(&config(
                json!({"from": "noreply@example.com", "baseUrl": "https://10.0.0.1"})
            ))
            .is_err()
    );
}
