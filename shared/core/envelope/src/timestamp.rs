//! The `time` attribute: an RFC 3339 instant that remembers how many fractional-second digits it was
//! written with, so an envelope re-emits the precision its producer chose.

use std::fmt;

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};

use crate::error::{EnvelopeError, excerpt};

/// An RFC 3339 timestamp, held in UTC with its fractional-second precision (0 to 9 digits).
///
/// Parsing accepts any offset and normalises to `Z`; formatting writes exactly `precision`
/// fractional digits. Two timestamps are equal when instant and precision are.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp {
    instant: DateTime<Utc>,
    precision: u8,
}

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Self::from(Utc::now())
    }

    /// Parses an RFC 3339 timestamp; errors name the `time` attribute.
    pub fn parse(s: &str) -> Result<Self, EnvelopeError> {
        let invalid = |reason: &str| {
            EnvelopeError::invalid("time", format!("{reason} (got `{}`)", excerpt(s, 64)))
        };
        let parsed = DateTime::parse_from_rfc3339(s)
            .map_err(|e| invalid(&format!("not an RFC 3339 timestamp: {e}")))?;
        let instant = parsed.with_timezone(&Utc);
        // RFC 3339 has four-digit years only; an offset can push the UTC instant outside them.
        if !(0..=9999).contains(&instant.year()) {
            return Err(invalid(
                "the instant in UTC must fall in the years 0000 to 9999",
            ));
        }
        // chrono accepted the value, so `YYYY-MM-DDTHH:MM:SS` occupies the first 19 bytes.
        let precision = match s.as_bytes().get(19) {
            Some(b'.') => s.as_bytes()[20..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count()
                .min(9),
            _ => 0,
        };
        Ok(Self {
            instant,
            // `min(9)` above keeps this in range.
            precision: u8::try_from(precision).unwrap_or(9),
        })
    }

    /// The instant, in UTC.
    pub fn instant(&self) -> DateTime<Utc> {
        self.instant
    }

    /// How many fractional-second digits the timestamp is written with (0 to 9).
    pub fn precision(&self) -> u8 {
        self.precision
    }
}

impl From<DateTime<Utc>> for Timestamp {
    /// Keeps the shortest of 0, 3, 6 or 9 fractional digits that represents the instant exactly.
    fn from(instant: DateTime<Utc>) -> Self {
        let nanos = instant.nanosecond() % 1_000_000_000;
        let precision = if nanos == 0 {
            0
        } else if nanos.is_multiple_of(1_000_000) {
            3
        } else if nanos.is_multiple_of(1_000) {
            6
        } else {
            9
        };
        Self { instant, precision }
    }
}

impl From<Timestamp> for DateTime<Utc> {
    fn from(t: Timestamp) -> Self {
        t.instant
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `%S` prints 60 for a leap second, which RFC 3339 allows.
        let secs = self.instant.to_rfc3339_opts(SecondsFormat::Secs, true);
        // `secs` is `YYYY-MM-DDTHH:MM:SSZ`; splice the fraction in before the `Z`.
        let head = secs.strip_suffix('Z').unwrap_or(&secs);
        f.write_str(head)?;
        if self.precision > 0 {
            let nanos = self.instant.nanosecond() % 1_000_000_000;
            let digits = format!("{nanos:09}");
            write!(f, ".{}", &digits[..usize::from(self.precision)])?;
        }
        f.write_str("Z")
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

#[cfg(test)]
mod tests;
