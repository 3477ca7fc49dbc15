//! Event names and the filters webhook subscriptions use to pick them.

use std::fmt;
use std::str::FromStr;

use crate::error::ParseError;

/// The longest event name or filter, in characters.
const MAX_LEN: usize = 128;

/// Checks a dot-separated name: non-empty segments of `[A-Za-z0-9_-]`.
fn check_segments(what: &'static str, s: &str) -> Result<(), ParseError> {
    if s.is_empty() {
        return Err(ParseError::Empty { what });
    }
    let len = s.chars().count();
    if len > MAX_LEN {
        return Err(ParseError::TooLong {
            what,
            max: MAX_LEN,
            len,
        });
    }
    if let Some(position) = s
        .chars()
        .position(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(ParseError::InvalidChar { what, position });
    }
    if s.split('.').any(str::is_empty) {
        return Err(ParseError::Malformed {
            what,
            reason: "empty segment",
        });
    }
    Ok(())
}

/// The short name of an event as webhook subscribers see it (`integration.run.completed`, or a
/// tenant's own `order.created`): dot-separated segments of `[A-Za-z0-9_-]`, at most 128 characters.
///
/// Distinct from the CloudEvents `type` (`connectsoft.integration.run.completed.v1`), which carries the
/// producer's namespace and the schema version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventName(String);

impl EventName {
    /// Parses an event name.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        check_segments("event name", s)?;
        Ok(Self(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether only the platform may publish events of this name: the `integration.`
    /// namespace, the names of the platform's events (`crm.contact.changed`, ...) and the
    /// design's event names (`IntegrationRunCompleted`, ...), in any case. A subscriber can
    /// then trust that such an event came from the platform.
    pub fn is_reserved(&self) -> bool {
        let name = self.0.to_ascii_lowercase();
        name == "integration"
            || name.starts_with("integration.")
            || crate::EventKind::ALL.iter().any(|k| {
                format!("{k:?}").eq_ignore_ascii_case(&self.0) || k.name() == name.as_str()
            })
    }

    /// For names this crate defines and tests.
    pub(crate) fn from_static(s: &'static str) -> Self {
        Self(s.to_owned())
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for EventName {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for EventName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for EventName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// One entry of a subscription's event-type filter.
///
/// - `*` matches every event;
/// - `integration.run.*` matches every name below `integration.run.` (any depth), not
///   `integration.run` itself nor `integration.runs.x`;
/// - anything else matches exactly (case-sensitive).
///
/// A `*` is only allowed as the whole last segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventTypeFilter {
    /// `*`.
    All,
    /// `prefix.*`; holds `prefix` without the trailing `.*`.
    Prefix(String),
    /// An exact name.
    Exact(String),
}

impl EventTypeFilter {
    /// Parses a filter.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        const WHAT: &str = "event type filter";
        if s == "*" {
            return Ok(Self::All);
        }
        if let Some(prefix) = s.strip_suffix(".*") {
            check_segments(WHAT, prefix)?;
            return Ok(Self::Prefix(prefix.to_owned()));
        }
        check_segments(WHAT, s)?;
        Ok(Self::Exact(s.to_owned()))
    }

    /// Whether an event name passes this filter.
    pub fn matches(&self, event_name: &str) -> bool {
        match self {
            Self::All => true,
            Self::Prefix(prefix) => event_name
                .strip_prefix(prefix.as_str())
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|rest| !rest.is_empty()),
            Self::Exact(name) => name == event_name,
        }
    }
}

impl fmt::Display for EventTypeFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("*"),
            Self::Prefix(prefix) => write!(f, "{prefix}.*"),
            Self::Exact(name) => f.write_str(name),
        }
    }
}

impl FromStr for EventTypeFilter {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for EventTypeFilter {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for EventTypeFilter {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A subscription's filter list: at least one, at most [`EventTypeFilters::MAX`] entries, duplicates removed
/// (first occurrence kept). An event passes when any filter matches.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "Vec<EventTypeFilter>", into = "Vec<EventTypeFilter>")]
pub struct EventTypeFilters(Vec<EventTypeFilter>);

impl EventTypeFilters {
    /// The most filters one subscription may carry.
    pub const MAX: usize = 64;
    const WHAT: &'static str = "event type filters";

    /// Builds the list from parsed filters.
    pub fn new(filters: Vec<EventTypeFilter>) -> Result<Self, ParseError> {
        if filters.is_empty() {
            return Err(ParseError::Empty { what: Self::WHAT });
        }
        // Checked before de-duplicating, which is quadratic.
        if filters.len() > Self::MAX {
            return Err(ParseError::TooMany {
                what: Self::WHAT,
                max: Self::MAX,
                len: filters.len(),
            });
        }
        let mut unique: Vec<EventTypeFilter> = Vec::with_capacity(filters.len());
        for filter in filters {
            if !unique.contains(&filter) {
                unique.push(filter);
            }
        }
        Ok(Self(unique))
    }

    /// Parses each string and builds the list.
    pub fn parse_all<I, S>(items: I) -> Result<Self, ParseError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let filters = items
            .into_iter()
            .map(|s| EventTypeFilter::parse(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(filters)
    }

    /// Whether any filter matches the event name.
    pub fn matches(&self, event_name: &str) -> bool {
        self.0.iter().any(|f| f.matches(event_name))
    }

    /// The filters.
    pub fn as_slice(&self) -> &[EventTypeFilter] {
        &self.0
    }
}

impl TryFrom<Vec<EventTypeFilter>> for EventTypeFilters {
    type Error = ParseError;
    fn try_from(filters: Vec<EventTypeFilter>) -> Result<Self, Self::Error> {
        Self::new(filters)
    }
}

impl From<EventTypeFilters> for Vec<EventTypeFilter> {
    fn from(f: EventTypeFilters) -> Self {
        f.0
    }
}

#[cfg(test)]
mod tests;
