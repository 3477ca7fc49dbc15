#![doc = include_str!("../README.md")]

mod builder;
mod envelope;
mod error;
mod extension;
mod parse;
mod rules;
mod timestamp;
mod traceparent;

pub use builder::{EVENT_ID_PREFIX, EnvelopeBuilder, new_event_id};
pub use envelope::{CLOUDEVENTS_JSON, Data, Envelope, SPEC_VERSION};
pub use error::{EnvelopeError, Result};
pub use extension::ExtensionValue;
pub use rules::MAX_ID_LEN;
pub use timestamp::Timestamp;
pub use traceparent::{SpanId, TraceId, TraceParent};

// Re-exported so callers can hold raw data without naming serde_json's feature-gated path.
pub use serde_json::value::RawValue;

#[cfg(test)]
mod tests;
