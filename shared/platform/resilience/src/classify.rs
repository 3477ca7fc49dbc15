//! What a vendor's answer means: success, or a classified failure with the vendor's own
//! hint of when to come back.

use std::time::{Duration, SystemTime};

use domain::FailureClassification;
use http::{HeaderMap, StatusCode};

/// A failed call, classified. Text here is the vendor's (or ours), never a secret: adapters
/// build messages from status codes and vendor error codes, not from request material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorFailure {
    pub class: FailureClassification,
    /// The vendor's HTTP status, when it answered.
    pub vendor_status: Option<u16>,
    /// The vendor's own error code (`21211`, `rate_limit_exceeded`).
    pub vendor_code: Option<String>,
    /// A short explanation.
    pub message: String,
    /// When the vendor said to come back (`Retry-After` and friends).
    pub retry_after: Option<Duration>,
}

impl VendorFailure {
    pub fn new(class: FailureClassification, message: impl Into<String>) -> Self {
        VendorFailure {
            class,
            vendor_status: None,
            vendor_code: None,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn status(mut self, status: u16) -> Self {
        self.vendor_status = Some(status);
        self
    }

    pub fn code(mut self, code: impl Into<String>) -> Self {
        self.vendor_code = Some(code.into());
        self
    }

    pub fn retry_after(mut self, after: Option<Duration>) -> Self {
        self.retry_after = after;
        self
    }
}

/// How an answer reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Success,
    Failure(VendorFailure),
}

/// Reads a vendor's answers. One per provider: vendors that answer 200 with an error body
/// (019, Twilio's logical errors) or spell their rate-limit headers their own way override
/// [`classify_status`] and [`retry_hint`].
pub trait Classifier: Send + Sync {
    fn classify(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Verdict;
}

/// The HTTP-status classifier: what most REST vendors mean.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpStatus;

impl Classifier for HttpStatus {
    fn classify(&self, status: StatusCode, headers: &HeaderMap, _body: &[u8]) -> Verdict {
        classify_status(status, headers)
    }
}

/// 2xx succeeds; 429 is `rate_limited`; 408 and 5xx (but 501) are `transient`; 401/403
/// `auth`; 422 `unprocessable`; other 4xx `validation`; anything else `vendor_error`.
pub fn classify_status(status: StatusCode, headers: &HeaderMap) -> Verdict {
    if status.is_success() {
        return Verdict::Success;
    }
    let class = match status.as_u16() {
        429 => FailureClassification::RateLimited,
        408 | 500 | 502..=599 => FailureClassification::Transient,
        401 | 403 => FailureClassification::Auth,
        422 => FailureClassification::Unprocessable,
        400..=499 => FailureClassification::Validation,
        _ => FailureClassification::VendorError,
    };
    Verdict::Failure(
        VendorFailure::new(class, format!("the vendor answered {status}"))
            .status(status.as_u16())
            .retry_after(retry_hint(headers, SystemTime::now())),
    )
}

pub use crate::hints::retry_hint;

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("header value"));
        }
        h
    }

    #[test]
    fn statuses_map_to_classes() {
        let class =
            |s: u16| match classify_status(StatusCode::from_u16(s).unwrap(), &HeaderMap::new()) {
                Verdict::Success => None,
                Verdict::Failure(f) => Some(f.class),
            };
        use FailureClassification as C;
        assert_eq!(class(200), None);
        assert_eq!(class(202), None);
        assert_eq!(class(429), Some(C::RateLimited));
        assert_eq!(class(503), Some(C::Transient));
        assert_eq!(class(500), Some(C::Transient));
        assert_eq!(class(408), Some(C::Transient));
        assert_eq!(class(501), Some(C::VendorError));
        assert_eq!(class(401), Some(C::Auth));
        assert_eq!(class(403), Some(C::Auth));
        assert_eq!(class(400), Some(C::Validation));
        assert_eq!(class(404), Some(C::Validation));
        assert_eq!(class(422), Some(C::Unprocessable));
        assert_eq!(class(302), Some(C::VendorError));
    }

    #[test]
    fn retry_after_seconds_and_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            retry_hint(&headers(&[("retry-after", "7")]), now),
            Some(Duration::from_secs(7))
        );
        let at = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            retry_hint(&headers(&[("retry-after", &at)]), now),
            Some(Duration::from_secs(30))
        );
        // A date in the past means "now".
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(
            retry_hint(&headers(&[("retry-after", &past)]), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_hint(&headers(&[("retry-after", "soon")]), now), None);
    }

    #[test]
    fn milliseconds_win_and_reset_headers_are_read() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            retry_hint(
                &headers(&[("retry-after-ms", "250"), ("retry-after", "9")]),
                now
            ),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            retry_hint(&headers(&[("x-ratelimit-reset", "12")]), now),
            Some(Duration::from_secs(12))
        );
        assert_eq!(
            retry_hint(&headers(&[("x-ratelimit-reset", "1700000040")]), now),
            Some(Duration::from_secs(40))
        );
        // Capped at an hour.
        assert_eq!(
            retry_hint(&headers(&[("retry-after", "999999")]), now),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(retry_hint(&HeaderMap::new(), now), None);
    }

    proptest::proptest! {
        #[test]
        fn any_header_text_is_read_without_panicking(v in "\\PC{0,40}") {
            if let Ok(value) = HeaderValue::from_str(&v) {
                let mut h = HeaderMap::new();
                h.insert("retry-after", value.clone());
                h.insert("x-ratelimit-reset", value);
                if let Some(d) = retry_hint(&h, SystemTime::now()) {
                    proptest::prop_assert!(d <= Duration::from_secs(3600));
                }
            }
        }
    }
}
