//! RFC 9457 problem details, the error body of every platform response.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// The longest `detail` sent, in characters: a detail may quote what the caller sent (a
/// parser's message names the offending value), and no answer echoes more than a bounded
/// prefix of it.
pub const MAX_DETAIL_CHARS: usize = 300;

/// `detail` cut to [`MAX_DETAIL_CHARS`], marked with `…` when cut.
fn bounded(detail: &str) -> std::borrow::Cow<'_, str> {
    match detail.char_indices().nth(MAX_DETAIL_CHARS) {
        Some((cut, _)) => format!("{}…", &detail[..cut]).into(),
        None => detail.into(),
    }
}

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
        "detail": bounded(detail),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_detail_echoes_a_bounded_prefix_of_what_was_sent() {
        let sent = "é".repeat(10_000);
        let response = problem(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            &format!("unknown variant `{sent}`"),
        );
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let detail = problem["detail"].as_str().unwrap();
        assert_eq!(detail.chars().count(), MAX_DETAIL_CHARS + 1);
        assert!(detail.starts_with("unknown variant `é") && detail.ends_with('…'));
        assert_eq!(bounded("short"), "short");
    }
}
