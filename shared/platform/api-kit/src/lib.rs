//! What every app's HTTP edge shares: the error type (RFC 9457 problem+json with a stable
//! `code`), the authenticated caller extractor, and a JSON body extractor whose rejections
//! are problems too (axum's own are plain text).

pub mod custody;
mod state;
mod store;
pub mod urls;

pub use state::AppState;
pub use store::{Aggregates, Paging};

use app_context::AppContext;
use auth::{AuthError, Principal};
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use functions_runtime::problem::{problem, problem_with};
use ports::PortError;
use serde::de::DeserializeOwned;

/// The role that may write the platform-wide catalogue.
pub const OPERATOR_ROLE: &str = "operator";

/// An error answer. 4xx variants carry a detail for the caller; 5xx ones never carry
/// internals (the cause is logged instead).
#[derive(Debug)]
pub enum ApiError {
    BadRequest {
        code: &'static str,
        detail: String,
    },
    /// A field of the request is wrong: 400 with the field's JSON pointer (`/input/to`)
    /// beside the detail.
    InvalidField {
        code: &'static str,
        detail: String,
        pointer: String,
    },
    Unauthorized(String),
    Forbidden(String),
    /// Also the answer for another tenant's resource: never 403, never the resource.
    NotFound(String),
    Conflict(String),
    /// Understood, and refused on its merits (a connection whose credential the vendor
    /// rejected): 422 with a stable code.
    Unprocessable {
        code: &'static str,
        detail: String,
    },
    PayloadTooLarge,
    /// A vendor we called on the caller's behalf failed (502); the detail says how, without
    /// secrets.
    Upstream(String),
    Unavailable,
    /// Our fault: 500 with no internals. The cause is kept for the log line written once,
    /// when the answer is made (in the request's span, so with its trace id).
    Internal(String),
}

impl ApiError {
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    pub fn unprocessable(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::Unprocessable {
            code,
            detail: detail.into(),
        }
    }

    /// An internal error with its cause (logged once, never shown to the caller).
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ApiError::Internal(cause.to_string())
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound(format!("{what} was not found"))
    }

    /// Maps a port failure met while serving a request. Conflicts and validation are the
    /// caller's business; the rest is ours and says nothing about the backend.
    pub fn from_port(e: PortError, conflict: &str) -> Self {
        match e {
            PortError::AlreadyExists | PortError::PreconditionFailed => {
                ApiError::Conflict(conflict.to_owned())
            }
            PortError::NotFound => ApiError::NotFound("the resource was not found".into()),
            PortError::Invalid(detail) => ApiError::bad_request("invalid_request", detail),
            PortError::Throttled { .. } | PortError::Timeout => {
                tracing::warn!(error = %e, "backend busy");
                ApiError::Unavailable
            }
            other => ApiError::internal(format!(
                "backend failure: {other} ({:?})",
                std::error::Error::source(&other)
            )),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::BadRequest { code, detail } => {
                problem(StatusCode::BAD_REQUEST, code, &detail)
            }
            ApiError::InvalidField {
                code,
                detail,
                pointer,
            } => {
                let mut extensions = serde_json::Map::new();
                extensions.insert("pointer".into(), serde_json::Value::String(pointer));
                problem_with(StatusCode::BAD_REQUEST, code, &detail, extensions)
            }
            ApiError::Unauthorized(d) => {
                let mut r = problem(StatusCode::UNAUTHORIZED, "unauthenticated", &d);
                r.headers_mut().insert(
                    "www-authenticate",
                    axum::http::HeaderValue::from_static("Bearer"),
                );
                r
            }
            ApiError::Forbidden(d) => problem(StatusCode::FORBIDDEN, "forbidden", &d),
            ApiError::NotFound(d) => problem(StatusCode::NOT_FOUND, "not_found", &d),
            ApiError::Conflict(d) => problem(StatusCode::CONFLICT, "conflict", &d),
            ApiError::Unprocessable { code, detail } => {
                problem(StatusCode::UNPROCESSABLE_ENTITY, code, &detail)
            }
            ApiError::PayloadTooLarge => problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is too large",
            ),
            ApiError::Upstream(d) => problem(StatusCode::BAD_GATEWAY, "upstream_failed", &d),
            ApiError::Unavailable => problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the service is busy; try again shortly",
            ),
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "something went wrong on our side",
                )
            }
        }
    }
}

/// The authenticated caller. The tenant comes only from here.
#[derive(Clone)]
pub struct Caller {
    pub principal: Principal,
    /// The bearer token the caller was authenticated with, for calls made on its behalf
    /// (custody through the registry). Never logged.
    token: String,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

impl Caller {
    pub fn tenant_id(&self) -> &str {
        &self.principal.tenant_id
    }

    /// The bearer token this caller presented.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// `403` unless the caller has `role`.
    pub fn require(&self, role: &str) -> Result<(), ApiError> {
        if self.principal.has_role(role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!("this needs the {role:?} role")))
        }
    }
}

impl<S> FromRequestParts<S> for Caller
where
    AppContext: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let ctx = AppContext::from_ref(state);
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let token = header
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::Unauthorized(AuthError::Missing.to_string()))?;
        match ctx.authenticator.authenticate(token).await {
            Ok(principal) => Ok(Caller {
                principal,
                token: token.to_owned(),
            }),
            Err(AuthError::KeysUnavailable) => Err(ApiError::Unavailable),
            Err(e) => Err(ApiError::Unauthorized(e.to_string())),
        }
    }
}

/// A JSON request body; malformed JSON, a wrong content type, unknown fields (where the DTO
/// denies them) and wrong types are 400 problems naming what was wrong, in the platform's
/// words: where the JSON breaks (line and column), or which field (its JSON pointer) and why.
/// A body that is not JSON is reported as such even when the part read before it broke
/// named an unknown field (serde stops at the first key it refuses, before a truncation).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .is_some_and(|v| v == "application/json" || v.ends_with("+json"));
        if !json {
            return Err(ApiError::bad_request(
                "unsupported_media_type",
                "send Content-Type: application/json",
            ));
        }
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::PayloadTooLarge);
            }
            Err(e) => return Err(ApiError::bad_request("invalid_body", e.body_text())),
        };
        read_json(&bytes).map(JsonBody)
    }
}

/// `bytes` as a `T`, or the problem that says why not.
pub fn read_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde_path_to_error::deserialize::<_, T>(&mut de);
    // Trailing characters after the value are a syntax error, reported below.
    let parsed = match parsed {
        Ok(v) if de.end().is_ok() => Ok(v),
        Ok(_) => {
            return Err(ApiError::bad_request(
                "malformed_json",
                trailing_words(bytes),
            ));
        }
        Err(e) => Err(e),
    };
    match parsed {
        Ok(v) => Ok(v),
        Err(e) => {
            // Not JSON at all: say where it breaks, whatever serde met before.
            if let Err(syntax) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                return Err(ApiError::bad_request(
                    "malformed_json",
                    syntax_words(&syntax),
                ));
            }
            let path = e.path().to_string();
            let inner = e.into_inner();
            let message = strip_position(&inner.to_string());
            if path == "." || path.is_empty() {
                return Err(ApiError::bad_request("invalid_body", message));
            }
            Err(ApiError::InvalidField {
                code: "invalid_body",
                detail: format!("{path}: {message}"),
                pointer: format!(
                    "/{}",
                    path.replace('.', "/")
                        .replace(['[', ']'], "/")
                        .replace("//", "/")
                        .trim_end_matches('/')
                ),
            })
        }
    }
}

/// What is wrong with a body that has more after its JSON value.
fn trailing_words(bytes: &[u8]) -> String {
    match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
        Err(e) => syntax_words(&e),
        Ok(_) => "the body is not valid JSON".to_owned(),
    }
}

/// Where a body stops being JSON, without the parser's vocabulary.
fn syntax_words(e: &serde_json::Error) -> String {
    match e.classify() {
        serde_json::error::Category::Eof => format!(
            "the body ends before its JSON is complete (line {}, column {})",
            e.line(),
            e.column()
        ),
        _ => format!(
            "the body is not valid JSON at line {}, column {}",
            e.line(),
            e.column()
        ),
    }
}

/// serde_json ends its messages with " at line L column C"; a field's path says where.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Query-string parameters; a bad query is a 400 problem (axum's own rejection is plain text).
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<T, S> FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| QueryParams(q.0))
            .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
    }
}

#[cfg(test)]
mod json_tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        provider_key: String,
        #[serde(default)]
        config: Option<Config>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Config {
        from: String,
    }

    fn refused(bytes: &[u8]) -> (&'static str, String, Option<String>) {
        match read_json::<Body>(bytes).unwrap_err() {
            ApiError::BadRequest { code, detail } => (code, detail, None),
            ApiError::InvalidField {
                code,
                detail,
                pointer,
            } => (code, detail, Some(pointer)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_truncated_body_is_malformed_json_not_an_unknown_field() {
        // serde refuses the key `provid` before it reaches the end of the body.
        let (code, detail, _) = refused(br#"{"provid"#);
        assert_eq!(code, "malformed_json");
        let (code, detail2, _) = refused(br#"{"provid": "#);
        assert_eq!(code, "malformed_json", "{detail2}");
        assert!(
            detail2.starts_with("the body ends before its JSON is complete"),
            "{detail2}"
        );
        assert!(!detail.contains("unknown field") && !detail2.contains("unknown field"));
    }

    #[test]
    fn syntax_errors_say_where_without_the_parsers_words() {
        let (code, detail, _) = refused(br#"{"providerKey": "\uZZZZ"}"#);
        assert_eq!(code, "malformed_json");
        assert_eq!(detail, "the body is not valid JSON at line 1, column 23");
        let (code, detail, _) = refused(br#"{"providerKey": "x"} trailing"#);
        assert_eq!(code, "malformed_json");
        assert!(detail.contains("line 1, column 22"), "{detail}");
    }

    #[test]
    fn data_errors_name_the_field_and_its_pointer() {
        let (code, detail, pointer) = refused(br#"{"providerKey": "x", "config": {"from": 5}}"#);
        assert_eq!(code, "invalid_body");
        assert_eq!(
            detail,
            "config.from: invalid type: integer `5`, expected a string"
        );
        assert_eq!(pointer.as_deref(), Some("/config/from"));
        let (_, detail, _) = refused(br#"{"providerKey": "x", "colour": 1}"#);
        assert!(
            detail.starts_with("colour: unknown field `colour`"),
            "{detail}"
        );
        let (_, detail, pointer) = refused(br#"{}"#);
        assert_eq!(detail, "missing field `providerKey`");
        assert_eq!(pointer, None);
        assert!(read_json::<Body>(br#"{"providerKey": "x"}"#).is_ok());
    }
}
