//! The one error type of this crate: every way an envelope can fail to parse, to build or to yield
//! its data, each variant naming the attribute at fault.

/// `Result` with [`EnvelopeError`] as the default error.
pub type Result<T, E = EnvelopeError> = std::result::Result<T, E>;

/// Why an envelope could not be parsed or built, or its data could not be read.
///
/// Messages are lower-case and never carry more than a short excerpt of the offending value, so they
/// can be logged and returned to callers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The input is not well-formed JSON (or not UTF-8); the position is 1-based.
    #[error("malformed JSON at line {line}, column {column}: {message}")]
    MalformedJson {
        /// 1-based line of the first error.
        line: usize,
        /// 1-based column (in bytes) of the first error.
        column: usize,
        /// What the JSON parser found wrong.
        message: String,
    },

    /// The input is valid JSON but not an object.
    #[error("an envelope must be a JSON object")]
    NotAnObject,

    /// The same member name appears twice in the object.
    #[error("attribute `{attribute}` appears more than once")]
    DuplicateAttribute {
        /// The repeated member name.
        attribute: String,
    },

    /// A required attribute is absent (or `null`, which CloudEvents treats as absent).
    #[error("required attribute `{attribute}` is missing")]
    MissingAttribute {
        /// The missing attribute: `specversion`, `id`, `source`, `type` or `tenantid`.
        attribute: &'static str,
    },

    /// An attribute has the wrong JSON type.
    #[error("attribute `{attribute}` must be {expected}, found {found}")]
    WrongType {
        /// The attribute at fault.
        attribute: String,
        /// The JSON type(s) allowed, e.g. `a string`.
        expected: &'static str,
        /// The JSON type found, e.g. `a number`.
        found: &'static str,
    },

    /// An attribute has the right type but a value its rules forbid.
    #[error("attribute `{attribute}` is invalid: {reason}")]
    InvalidValue {
        /// The attribute at fault.
        attribute: String,
        /// Which rule the value breaks.
        reason: String,
    },

    /// `specversion` is a string other than `1.0`.
    #[error("unsupported specversion `{found}`: only `1.0` is supported")]
    UnsupportedSpecVersion {
        /// The specversion found (shortened if long).
        found: String,
    },

    /// Both `data` and `data_base64` are present; the JSON format allows one of them.
    #[error("`data` and `data_base64` are mutually exclusive")]
    DataConflict,

    /// A member or extension name breaks the CloudEvents naming rule.
    #[error("invalid attribute name `{name}`: {reason}")]
    InvalidAttributeName {
        /// The name at fault (shortened if long).
        name: String,
        /// Which rule the name breaks.
        reason: &'static str,
    },

    /// Data was asked for but the envelope carries none.
    #[error("the envelope carries no data")]
    NoData,

    /// The data could not be deserialised into the requested type.
    #[error("the envelope's data does not match the requested type")]
    DataDecode(#[source] serde_json::Error),

    /// The value given to the builder could not be serialised to JSON.
    #[error("the event data could not be serialised to JSON")]
    DataEncode(#[source] serde_json::Error),
}

impl EnvelopeError {
    /// A stable, machine-readable code for this error (for problem+json bodies and metrics).
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson { .. } => "malformed_json",
            Self::NotAnObject => "not_an_object",
            Self::DuplicateAttribute { .. } => "duplicate_attribute",
            Self::MissingAttribute { .. } => "missing_attribute",
            Self::WrongType { .. } => "wrong_type",
            Self::InvalidValue { .. } => "invalid_value",
            Self::UnsupportedSpecVersion { .. } => "unsupported_specversion",
            Self::DataConflict => "data_conflict",
            Self::InvalidAttributeName { .. } => "invalid_attribute_name",
            Self::NoData => "no_data",
            Self::DataDecode(_) => "data_decode",
            Self::DataEncode(_) => "data_encode",
        }
    }

    /// The attribute this error is about, where there is one.
    pub fn attribute(&self) -> Option<&str> {
        match self {
            Self::DuplicateAttribute { attribute }
            | Self::WrongType { attribute, .. }
            | Self::InvalidValue { attribute, .. } => Some(attribute),
            Self::MissingAttribute { attribute } => Some(attribute),
            Self::UnsupportedSpecVersion { .. } => Some("specversion"),
            Self::InvalidAttributeName { name, .. } => Some(name),
            Self::DataConflict => Some("data"),
            _ => None,
        }
    }

    pub(crate) fn invalid(attribute: &str, reason: impl Into<String>) -> Self {
        Self::InvalidValue {
            attribute: attribute.to_owned(),
            reason: reason.into(),
        }
    }
}

/// At most `max` characters of `s`, with an ellipsis when cut, so errors never echo huge inputs.
pub(crate) fn excerpt(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((cut, _)) => format!("{}…", &s[..cut]),
    }
}
