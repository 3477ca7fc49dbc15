//! Errors in OpenAI's shape: `{"error":{"message","type","param","code"}}` with the status
//! OpenAI would answer, so the official SDKs raise their usual exceptions (a 404
//! `model_not_found` is `NotFoundError`, a 429 is `RateLimitError` and retried after
//! `retry-after`).

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::FailureClassification;
use resilience::CallError;
use serde_json::json;

/// OpenAI's code for an account out of credit: a 429 that no wait cures.
pub const INSUFFICIENT_QUOTA: &str = "insufficient_quota";

/// An error answered on the OpenAI-compatible routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAiError {
    pub status: StatusCode,
    pub message: String,
    /// OpenAI's `type`: `invalid_request_error`, `authentication_error`,
    /// `rate_limit_error`, `api_error`.
    pub kind: &'static str,
    pub param: Option<&'static str>,
    pub code: Option<String>,
    /// Seconds, sent as `retry-after`.
    pub retry_after: Option<u64>,
    /// OpenAI's `x-ratelimit-*` headers of a refusal by the gateway's own quotas (boxed:
    /// most errors have none).
    pub rate_headers: Option<Box<Vec<(&'static str, String)>>>,
}

impl OpenAiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        OpenAiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after: None,
            rate_headers: None,
        }
    }

    /// Refused by the tenant's quotas: a rate limit is 429 `rate_limit_exceeded` with
    /// `retry-after` (the window's end) and the `x-ratelimit-*` headers OpenAI sends (what
    /// the SDKs read before retrying); a spend budget is 429 `insufficient_quota`, which no
    /// short wait cures.
    pub fn over_limit(refusal: &crate::quota::Refusal) -> Self {
        let secs = refusal.reset_in.as_secs() + u64::from(refusal.reset_in.subsec_nanos() > 0);
        if refusal.unit == "spend" {
            return OpenAiError {
                code: Some(INSUFFICIENT_QUOTA.into()),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    INSUFFICIENT_QUOTA,
                    format!(
                        "You exceeded {} spend budget; it resets in {secs} s.",
                        refusal.scope
                    ),
                )
            };
        }
        OpenAiError {
            code: Some("rate_limit_exceeded".into()),
            retry_after: Some(secs.max(1)),
            rate_headers: Some(Box::new(vec![
                (
                    if refusal.unit == "requests" {
                        "x-ratelimit-limit-requests"
                    } else {
                        "x-ratelimit-limit-tokens"
                    },
                    refusal.limit.to_string(),
                ),
                (
                    if refusal.unit == "requests" {
                        "x-ratelimit-remaining-requests"
                    } else {
                        "x-ratelimit-remaining-tokens"
                    },
                    "0".to_owned(),
                ),
                (
                    if refusal.unit == "requests" {
                        "x-ratelimit-reset-requests"
                    } else {
                        "x-ratelimit-reset-tokens"
                    },
                    format!("{secs}s"),
                ),
            ])),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                format!(
                    "Rate limit reached: {} {} per minute ({}); retry in {secs} s.",
                    refusal.scope, refusal.unit, refusal.limit
                ),
            )
        }
    }

    /// A request the caller must change (400).
    pub fn invalid(param: Option<&'static str>, message: impl Into<String>) -> Self {
        OpenAiError {
            param,
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
        }
    }

    /// No usable bearer token (401, `invalid_api_key`).
    pub fn unauthenticated() -> Self {
        OpenAiError {
            code: Some("invalid_api_key".into()),
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "A valid bearer token of the platform is required (Authorization: Bearer <token>; the OpenAI SDKs send their API key so).",
            )
        }
    }

    /// No connection of the tenant serves `model` (404, `model_not_found`): the same answer
    /// whether the model exists for another tenant or nowhere.
    pub fn model_not_found(model: &str) -> Self {
        let shown: String = model.chars().take(100).collect();
        OpenAiError {
            param: Some("model"),
            code: Some("model_not_found".into()),
            ..Self::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                format!("The model `{shown}` does not exist or you do not have access to it."),
            )
        }
    }

    /// Our own trouble (storage): 503, which the SDKs retry.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "The service is briefly unavailable; retry.",
        )
    }

    /// What the caller is told of a vendor call that failed (its words already redacted
    /// by the provider's classifier): the caller's request refused upstream is a 400 with
    /// the vendor's message; throttling a 429 with its wait; the rest is the gateway's
    /// upstream failing (502, 504 for a timeout).
    pub fn upstream(e: &CallError) -> Self {
        let f = &e.failure;
        if f.vendor_code.as_deref() == Some(INSUFFICIENT_QUOTA) {
            return OpenAiError {
                code: Some(INSUFFICIENT_QUOTA.into()),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    INSUFFICIENT_QUOTA,
                    f.message.clone(),
                )
            };
        }
        let mut out = match f.class {
            FailureClassification::Validation | FailureClassification::Unprocessable => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                f.message.clone(),
            ),
            FailureClassification::RateLimited => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                f.message.clone(),
            ),
            FailureClassification::Timeout => Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                "api_error",
                "The model provider did not answer in time.",
            ),
            FailureClassification::Auth => Self::new(
                StatusCode::BAD_GATEWAY,
                "api_error",
                "The model provider refused the connection's credential.",
            ),
            FailureClassification::CircuitOpen
            | FailureClassification::Transient
            | FailureClassification::VendorError => Self::new(
                StatusCode::BAD_GATEWAY,
                "api_error",
                "The model provider failed to answer.",
            ),
        };
        out.code = f.vendor_code.clone();
        // Whole seconds, rounded up: never sooner than the vendor asked.
        out.retry_after = f
            .retry_after
            .map(|d| (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1));
        out
    }
}

impl OpenAiError {
    fn body(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }

    /// The error as the event that ends a stream (`data: {"error": …}`): what OpenAI sends
    /// when a stream fails after it began, and what the SDKs raise as an `APIError`.
    pub fn event(&self) -> bytes::Bytes {
        bytes::Bytes::from(format!("data: {}\n\n", self.body()))
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let body = self.body();
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert("retry-after", v);
        }
        for (name, value) in self.rate_headers.iter().flat_map(|h| h.iter()) {
            if let Ok(v) = HeaderValue::from_str(value) {
                response.headers_mut().insert(*name, v);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_have_openais_shape() {
        let r = OpenAiError::model_not_found("gpt-9").into_response();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.headers()["content-type"], "application/json");
        let e = integration_kit::call_failed(FailureClassification::RateLimited, "slow down");
        let mut e = e;
        e.failure.retry_after = Some(std::time::Duration::from_millis(1500));
        e.failure.vendor_code = Some("rate_limit_exceeded".into());
        let r = OpenAiError::upstream(&e);
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.retry_after, Some(2), "1.5 s rounded up");
        assert_eq!(r.code.as_deref(), Some("rate_limit_exceeded"));
    }
}
