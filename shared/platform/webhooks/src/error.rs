//! Why a delivery was refused. Messages name headers and parts, never secrets or signatures.

use http::StatusCode;

/// The reason an inbound delivery failed verification.
///
/// Messages are safe to log and to return: they name a header or a part of the request, never a
/// secret, a signature or body bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A header the scheme needs is absent.
    #[error("missing header {0}")]
    MissingHeader(String),
    /// A header that must appear once appears several times (ambiguous, refused).
    #[error("header {0} appears more than once")]
    DuplicateHeader(String),
    /// A header, parameter or body part could not be parsed.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// No signature (or shared secret) matched.
    #[error("signature does not match")]
    BadSignature,
    /// The signed timestamp is further from now than the scheme's tolerance.
    #[error("timestamp outside tolerance")]
    TimestampOutOfTolerance,
    /// The body is larger than the limit; it was not hashed.
    #[error("body larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The secret does not suit the scheme (or could not be decoded): a configuration problem.
    #[error("secret does not suit the scheme")]
    BadSecret,
}

impl VerifyError {
    /// The HTTP status to answer with: `401` for signature, timestamp and authentication
    /// problems, `400` for malformed or ambiguous requests, `413` for an oversized body and `500`
    /// for a secret that does not suit the scheme (our configuration, not the caller's fault).
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingHeader(_) | Self::BadSignature | Self::TimestampOutOfTolerance => {
                StatusCode::UNAUTHORIZED
            }
            Self::DuplicateHeader(_) | Self::Malformed(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BadSecret => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable machine code for problem+json bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "webhook_missing_header",
            Self::DuplicateHeader(_) => "webhook_duplicate_header",
            Self::Malformed(_) => "webhook_malformed",
            Self::BadSignature => "webhook_bad_signature",
            Self::TimestampOutOfTolerance => "webhook_stale_timestamp",
            Self::TooLarge { .. } => "webhook_too_large",
            Self::BadSecret => "webhook_bad_secret",
        }
    }
}
