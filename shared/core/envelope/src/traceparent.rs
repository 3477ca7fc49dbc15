//! W3C Trace Context `traceparent` (version `00`): the value carried by the envelope's `traceparent`
//! extension and by every outbound call, so one trace id follows a request across apps and vendors.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{EnvelopeError, excerpt};

/// A 16-byte W3C trace id, never all zero. Displays as 32 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId([u8; 16]);

/// An 8-byte W3C span (parent) id, never all zero. Displays as 16 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId([u8; 8]);

/// A parsed `traceparent` header value: `00-<trace-id>-<parent-id>-<flags>`.
///
/// Only version `00` is accepted, in its exact 55-character form with lower-case hex, and neither id
/// may be all zeros (the W3C rules for an invalid value).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: TraceId,
    parent_id: SpanId,
    flags: u8,
}

/// The `sampled` bit of the trace flags.
const SAMPLED: u8 = 0x01;

impl TraceId {
    /// A random, non-zero trace id.
    pub fn random() -> Self {
        loop {
            let bytes: [u8; 16] = rand::random();
            if bytes != [0; 16] {
                return Self(bytes);
            }
        }
    }

    /// The id's bytes, big-endian as written.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0
    }
}

impl SpanId {
    /// A random, non-zero span id.
    pub fn random() -> Self {
        loop {
            let bytes: [u8; 8] = rand::random();
            if bytes != [0; 8] {
                return Self(bytes);
            }
        }
    }

    /// The id's bytes, big-endian as written.
    pub fn to_bytes(self) -> [u8; 8] {
        self.0
    }
}

impl TraceParent {
    /// Parses a `traceparent` value; errors name the `traceparent` attribute.
    pub fn parse(s: &str) -> Result<Self, EnvelopeError> {
        let invalid = |reason: &str| {
            EnvelopeError::invalid(
                "traceparent",
                format!("{reason} (got `{}`)", excerpt(s, 64)),
            )
        };
        let b = s.as_bytes();
        if b.len() != 55 {
            return Err(invalid(
                "must be `00-<32 hex>-<16 hex>-<2 hex>`, 55 characters",
            ));
        }
        if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return Err(invalid("must be `00-<32 hex>-<16 hex>-<2 hex>`"));
        }
        let version: [u8; 1] =
            hex(&b[0..2]).ok_or_else(|| invalid("version must be lower-case hex"))?;
        if version[0] != 0 {
            return Err(invalid("only version `00` is supported"));
        }
        let trace_id: [u8; 16] =
            hex(&b[3..35]).ok_or_else(|| invalid("trace id must be 32 lower-case hex digits"))?;
        let parent_id: [u8; 8] =
            hex(&b[36..52]).ok_or_else(|| invalid("parent id must be 16 lower-case hex digits"))?;
        let [flags] = hex(&b[53..55]).ok_or_else(|| invalid("flags must be lower-case hex"))?;
        if trace_id == [0; 16] {
            return Err(invalid("trace id must not be all zeros"));
        }
        if parent_id == [0; 8] {
            return Err(invalid("parent id must not be all zeros"));
        }
        Ok(Self {
            trace_id: TraceId(trace_id),
            parent_id: SpanId(parent_id),
            flags,
        })
    }

    /// Starts a new trace: random trace id, random span id, flags `01` (sampled).
    pub fn new_root() -> Self {
        Self {
            trace_id: TraceId::random(),
            parent_id: SpanId::random(),
            flags: SAMPLED,
        }
    }

    /// The `traceparent` for work caused by this one: same trace id and flags, a new span id.
    #[must_use]
    pub fn child(&self) -> Self {
        Self {
            parent_id: SpanId::random(),
            ..*self
        }
    }

    /// The trace id shared by every span of the trace (the platform's `traceId`).
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// The id of the span that carries this value.
    pub fn parent_id(&self) -> SpanId {
        self.parent_id
    }

    /// The raw trace flags byte.
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the `sampled` flag is set.
    pub fn is_sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }
}

/// Decodes exactly `2 * N` lower-case hex digits.
fn hex<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({self})")
    }
}

impl FromStr for TraceParent {
    type Err = EnvelopeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for TraceParent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TraceParent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
