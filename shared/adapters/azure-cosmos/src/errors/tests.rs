use azure_core::http::StatusCode;
use azure_data_cosmos::CosmosStatus;
use serde_json::json;

use super::*;

fn synthetic(status: u16) -> CosmosError {
    CosmosError::builder()
        .with_status(CosmosStatus::new(StatusCode::from(status)))
        .with_message("test")
        .build()
}

#[test]
fn statuses_mean_what_the_port_says() {
    let hint = Some(Duration::from_millis(120));
    let table = [
        (404, Class::NotFound),
        (409, Class::Conflict),
        (412, Class::PreconditionFailed),
        (429, Class::Throttled(hint)),
        (401, Class::Unauthenticated),
        (403, Class::Unauthenticated),
        (408, Class::Timeout),
        (413, Class::TooLarge),
        (400, Class::BadRequest),
        (449, Class::Backend),
        (500, Class::Backend),
        (503, Class::Backend),
    ];
    for (status, class) in table {
        assert_eq!(classify(status, hint), class, "{status}");
    }
}

#[test]
fn sdk_errors_map_onto_the_port() {
    assert!(matches!(to_port(synthetic(409)), PortError::AlreadyExists));
    assert!(matches!(
        to_port(synthetic(412)),
        PortError::PreconditionFailed
    ));
    assert!(matches!(to_port(synthetic(404)), PortError::NotFound));
    // Without a wire response there is no server hint to pass on.
    assert!(matches!(
        to_port(synthetic(429)),
        PortError::Throttled { retry_after: None }
    ));
    assert!(matches!(
        to_port(synthetic(403)),
        PortError::Unauthenticated
    ));
    assert!(matches!(to_port(synthetic(408)), PortError::Timeout));
    let backend = to_port(synthetic(503));
    assert!(backend.is_transient());
    assert!(matches!(
        backend,
        PortError::Backend {
            backend: "cosmos",
            ..
        }
    ));
}

fn results(json: serde_json::Value) -> Vec<OpResult> {
    serde_json::from_value(json).unwrap()
}

#[test]
fn a_committed_batch_gives_every_etag() {
    let ok = results(json!([
        {"statusCode": 201, "requestCharge": 5.71, "eTag": "\"e1\"", "resourceBody": {"id": "a"}},
        {"statusCode": 200, "eTag": "\"e2\""},
        {"statusCode": 204, "requestCharge": 1.0}
    ]));
    assert_eq!(
        batch_outcome(200, &ok, 3),
        Ok(vec![Some("\"e1\"".into()), Some("\"e2\"".into()), None])
    );
    // An answer that does not match what was sent blames nobody.
    assert_eq!(
        batch_outcome(200, &ok, 4),
        Err(BatchFailure {
            index: None,
            status: 500,
            retry_after: None
        })
    );
}

#[test]
fn a_refused_batch_names_the_operation_that_failed() {
    // Cosmos DB: the failing operation's status, 424 for the ones rolled back with it.
    let cosmos = results(json!([
        {"statusCode": 424}, {"statusCode": 412, "substatusCode": 0}, {"statusCode": 424}
    ]));
    assert_eq!(
        batch_outcome(412, &cosmos, 3),
        Err(BatchFailure {
            index: Some(1),
            status: 412,
            retry_after: None
        })
    );
    // A 2xx answer with a failure inside (a server that does not roll back) is a failure.
    let partial = results(json!([{"statusCode": 201, "eTag": "e"}, {"statusCode": 409}]));
    assert_eq!(batch_outcome(200, &partial, 2).unwrap_err().index, Some(1));
    // A throttled operation keeps its hint.
    let throttled =
        results(json!([{"statusCode": 429, "retryAfterMilliseconds": 250}, {"statusCode": 424}]));
    let failure = batch_outcome(429, &throttled, 2).unwrap_err();
    assert!(matches!(
        batch_failure_to_port(&failure),
        PortError::Throttled { retry_after: Some(d) } if d == Duration::from_millis(250)
    ));
    // Only 424s: blame the first rather than report success.
    let odd = results(json!([{"statusCode": 424}, {"statusCode": 424}]));
    assert_eq!(batch_outcome(424, &odd, 2).unwrap_err().index, Some(0));
}

#[test]
fn batch_failures_map_onto_the_port() {
    let failure = |status| BatchFailure {
        index: Some(2),
        status,
        retry_after: None,
    };
    assert!(matches!(
        batch_failure_to_port(&failure(409)),
        PortError::AlreadyExists
    ));
    assert!(matches!(
        batch_failure_to_port(&failure(412)),
        PortError::PreconditionFailed
    ));
    assert!(matches!(
        batch_failure_to_port(&failure(404)),
        PortError::NotFound
    ));
    assert!(matches!(
        batch_failure_to_port(&failure(400)),
        PortError::Invalid(m) if m.contains("operation 2")
    ));
    assert!(matches!(
        batch_failure_to_port(&failure(413)),
        PortError::Invalid(_)
    ));
    assert!(matches!(
        batch_failure_to_port(&failure(500)),
        PortError::Backend { .. }
    ));
}
