//! The two error types of the crate: parsing a value object, and refusing a state transition.

use crate::ids::{FailureId, RotationId};

/// A value could not be parsed into a value object.
///
/// `what` names the value object (`"tenant id"`, `"provider key"`, ...) so the message is useful on its
/// own at the HTTP edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The input was empty.
    #[error("{what} must not be empty")]
    Empty {
        /// The value object being parsed.
        what: &'static str,
    },
    /// The input was longer than allowed.
    #[error("{what} must be at most {max} characters, got {len}")]
    TooLong {
        /// The value object being parsed.
        what: &'static str,
        /// The maximum length in characters.
        max: usize,
        /// The actual length in characters.
        len: usize,
    },
    /// A list had more entries than allowed.
    #[error("{what} must have at most {max} entries, got {len}")]
    TooMany {
        /// The list being parsed.
        what: &'static str,
        /// The most entries allowed.
        max: usize,
        /// The entries given.
        len: usize,
    },
    /// The input contained a character outside the allowed set.
    #[error("{what} contains a character that is not allowed at position {position}")]
    InvalidChar {
        /// The value object being parsed.
        what: &'static str,
        /// Zero-based character position of the first offending character.
        position: usize,
    },
    /// The input did not have the expected shape.
    #[error("{what} is malformed: {reason}")]
    Malformed {
        /// The value object being parsed.
        what: &'static str,
        /// Why, in a few words.
        reason: &'static str,
    },
    /// The input is a reserved value that is not allowed here.
    #[error("{what} {value:?} is reserved")]
    Reserved {
        /// The value object being parsed.
        what: &'static str,
        /// The reserved value.
        value: &'static str,
    },
}

impl ParseError {
    /// The same error about the field a caller named (`description`, where the value is a
    /// display name): the message speaks of what the caller sent.
    pub fn naming(self, field: &'static str) -> Self {
        match self {
            Self::Empty { .. } => Self::Empty { what: field },
            Self::TooLong { max, len, .. } => Self::TooLong {
                what: field,
                max,
                len,
            },
            Self::TooMany { max, len, .. } => Self::TooMany {
                what: field,
                max,
                len,
            },
            Self::InvalidChar { position, .. } => Self::InvalidChar {
                what: field,
                position,
            },
            Self::Malformed { reason, .. } => Self::Malformed {
                what: field,
                reason,
            },
            Self::Reserved { value, .. } => Self::Reserved { what: field, value },
        }
    }
}

/// A state machine refused a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The transition from the current status to the requested one is not allowed.
    #[error("{aggregate} cannot go from {from} to {to}")]
    Forbidden {
        /// The aggregate (`"connection"`, `"run"`, ...).
        aggregate: &'static str,
        /// The current status.
        from: &'static str,
        /// The status the caller asked for.
        to: &'static str,
    },
    /// A rotation step named a rotation that is not the one in progress.
    #[error("rotation {given} is not the rotation in progress")]
    RotationMismatch {
        /// The rotation the caller named.
        given: RotationId,
    },
    /// The rotation was already promoted; a retried saga step must not promote twice.
    #[error("rotation {0} was already promoted")]
    AlreadyPromoted(RotationId),
    /// The pending secret of a rotation is the current secret.
    #[error("the pending secret must differ from the current one")]
    SameSecret,
    /// The failure handed to a transition belongs to another tenant or subject.
    #[error("failure {failure} does not belong to this {aggregate}")]
    FailureMismatch {
        /// The aggregate (`"run"`, `"delivery"`).
        aggregate: &'static str,
        /// The failure that was handed in.
        failure: FailureId,
    },
    /// A stored document breaks an invariant the state machine relies on (for example a running run
    /// without an open attempt). Reported instead of panicking.
    #[error("{aggregate} is inconsistent: {detail}")]
    Inconsistent {
        /// The aggregate.
        aggregate: &'static str,
        /// What is wrong.
        detail: &'static str,
    },
}

/// Reports an event payload that could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum EventDecodeError {
    /// The CloudEvents type is not one this crate knows.
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    /// The data did not match the event's schema.
    #[error("event data does not match {event_type}")]
    Data {
        /// The CloudEvents type.
        event_type: &'static str,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}
