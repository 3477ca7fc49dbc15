//! RFC 9457 problem details, the error body of every platform response.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem+json response with a stable machine `code` and a human `detail`.
pub fn problem(status: StatusCode, code: &str, detail: &str) -> Response {
    problem_with(status, code, detail, serde_json::Map::new())
}

/// A problem with extension members (RFC 9457 §3.2), such as the `pointer` of the field a
/// request got wrong.
pub fn problem_with(
    status: StatusCode,
    code: &str,
    detail: &str,
    extensions: serde_json::Map<String, serde_json::Value>,
) -> Response {
    let mut body = json!({
        "type": format!("urn:integration-platform:problem:{code}"),
        "title": status.canonical_reason().unwrap_or("error"),
        "status": status.as_u16(),
        "code": code,
        "detail": detail,
    });
    if let serde_json::Value::Object(m) = &mut body {
        for (k, v) in extensions {
            m.entry(k).or_insert(v);
        }
    }
    (
        status,
        [(header::CONTENT_TYPE, PROBLEM_JSON)],
        body.to_string(),
    )
        .into_response()
}
