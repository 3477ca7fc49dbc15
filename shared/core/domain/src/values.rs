//! String value objects: each is built by `parse`, so holding one proves the text is valid.

use std::fmt;
use std::str::FromStr;

use crate::error::ParseError;

/// Checks emptiness, the maximum length in characters, and that every character passes `allowed`.
fn check(
    what: &'static str,
    s: &str,
    max: usize,
    allowed: impl Fn(char) -> bool,
) -> Result<(), ParseError> {
    if s.is_empty() {
        return Err(ParseError::Empty { what });
    }
    let len = s.chars().count();
    if len > max {
        return Err(ParseError::TooLong { what, max, len });
    }
    match s.chars().position(|c| !allowed(c)) {
        Some(position) => Err(ParseError::InvalidChar { what, position }),
        None => Ok(()),
    }
}

/// Implements the string plumbing shared by every string value object: `as_str`, `Display`,
/// `FromStr`, `TryFrom<String>`, `AsRef<str>` and serde as a plain JSON string validated on the way in.
macro_rules! string_value {
    ($name:ident) => {
        impl $name {
            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = ParseError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s =
                    <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A tenant: the partition key of every document and the scope of every operation.
///
/// 1 to 64 characters from `[A-Za-z0-9._-]`, never `.` or `..` alone (a tenant id becomes part of
/// paths and partition names). [`TenantId::platform`] is the partition of platform-wide
/// data (the provider catalogue); use [`TenantId::parse_tenant`] where a value comes from a caller so
/// a token can never name the platform partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    /// The partition of platform-wide documents.
    pub const PLATFORM: &'static str = "platform";
    const WHAT: &'static str = "tenant id";

    /// Parses any tenant id, the platform partition included (documents, trusted configuration).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        check(Self::WHAT, s, 64, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
        })?;
        if s == "." || s == ".." {
            return Err(ParseError::Malformed {
                what: Self::WHAT,
                reason: "may not be . or ..",
            });
        }
        Ok(Self(s.to_owned()))
    }

    /// Parses a customer tenant id and refuses the platform partition (token claims, requests).
    pub fn parse_tenant(s: &str) -> Result<Self, ParseError> {
        let id = Self::parse(s)?;
        if id.is_platform() {
            return Err(ParseError::Reserved {
                what: Self::WHAT,
                value: Self::PLATFORM,
            });
        }
        Ok(id)
    }

    /// The platform partition.
    pub fn platform() -> Self {
        Self(Self::PLATFORM.to_owned())
    }

    /// Whether this is the platform partition.
    pub fn is_platform(&self) -> bool {
        self.0 == Self::PLATFORM
    }
}
string_value!(TenantId);

/// A provider's key (`github`, `azure-openai`): 1 to 64 of `[a-z0-9-]`, not starting or ending with `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProviderKey(String);

impl ProviderKey {
    /// Parses a provider key.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        const WHAT: &str = "provider key";
        check(WHAT, s, 64, |c| matches!(c, 'a'..='z' | '0'..='9' | '-'))?;
        if s.starts_with('-') || s.ends_with('-') {
            return Err(ParseError::Malformed {
                what: WHAT,
                reason: "must not start or end with '-'",
            });
        }
        Ok(Self(s.to_owned()))
    }
}
string_value!(ProviderKey);

/// A W3C trace id: 32 lowercase hex digits, not all zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId([u8; 16]);

impl TraceId {
    const WHAT: &'static str = "trace id";

    /// Parses the 32-hex-digit form used in `traceparent`; uppercase is refused as W3C requires.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        check(Self::WHAT, s, 32, |c| matches!(c, '0'..='9' | 'a'..='f'))?;
        if s.len() != 32 {
            return Err(ParseError::Malformed {
                what: Self::WHAT,
                reason: "expected 32 hex digits",
            });
        }
        let mut bytes = [0u8; 16];
        for (i, byte) in bytes.iter_mut().enumerate() {
            let pair = s.get(i * 2..i * 2 + 2).unwrap_or("");
            *byte = u8::from_str_radix(pair, 16).map_err(|_| ParseError::InvalidChar {
                what: Self::WHAT,
                position: i * 2,
            })?;
        }
        Self::from_bytes(bytes)
    }

    /// Wraps 16 bytes; the all-zero id is invalid.
    pub fn from_bytes(bytes: [u8; 16]) -> Result<Self, ParseError> {
        if bytes == [0u8; 16] {
            return Err(ParseError::Malformed {
                what: Self::WHAT,
                reason: "must not be all zero",
            });
        }
        Ok(Self(bytes))
    }

    /// A random trace id for work that did not arrive with one.
    pub fn generate() -> Self {
        let bytes = *uuid::Uuid::new_v4().as_bytes();
        // A v4 UUID always has its version bits set, so it is never all zero.
        Self(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl FromStr for TraceId {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for TraceId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for TraceId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A caller's `Idempotency-Key`: 1 to 255 printable ASCII characters (space allowed inside, not at the
/// ends, since HTTP trims header whitespace).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Parses an idempotency key.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        const WHAT: &str = "idempotency key";
        check(WHAT, s, 255, |c| matches!(c, ' '..='~'))?;
        if s.starts_with(' ') || s.ends_with(' ') {
            return Err(ParseError::Malformed {
                what: WHAT,
                reason: "leading or trailing space",
            });
        }
        Ok(Self(s.to_owned()))
    }
}
string_value!(IdempotencyKey);

/// A reference to a secret held in custody (Key Vault or the local secret store): its name and version.
/// Never the secret value, so it may appear in documents and logs.
///
/// The name follows Key Vault's rules (1 to 127 of `[A-Za-z0-9-]`); the version is 1 to 64 of
/// `[A-Za-z0-9._-]` (Key Vault uses 32 hex digits, the local store may use counters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "SecretRefWire", into = "SecretRefWire")]
pub struct SecretRef {
    name: String,
    version: String,
}

/// Serde form of [`SecretRef`], validated through `TryFrom`.
#[derive(serde::Serialize, serde::Deserialize)]
struct SecretRefWire {
    name: String,
    version: String,
}

impl TryFrom<SecretRefWire> for SecretRef {
    type Error = ParseError;
    fn try_from(w: SecretRefWire) -> Result<Self, Self::Error> {
        Self::new(&w.name, &w.version)
    }
}

impl From<SecretRef> for SecretRefWire {
    fn from(r: SecretRef) -> Self {
        Self {
            name: r.name,
            version: r.version,
        }
    }
}

impl SecretRef {
    /// Validates and builds a reference.
    pub fn new(name: &str, version: &str) -> Result<Self, ParseError> {
        check("secret name", name, 127, |c| {
            c.is_ascii_alphanumeric() || c == '-'
        })?;
        check("secret version", version, 64, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
        })?;
        Ok(Self {
            name: name.to_owned(),
            version: version.to_owned(),
        })
    }

    /// The secret's name in custody.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The secret's version in custody.
    pub fn version(&self) -> &str {
        &self.version
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.name, self.version)
    }
}

/// An absolute `http` or `https` URL with a host and no user-info (credentials never live in URLs).
///
/// This is a shape check for documents; address policy (SSRF: private and link-local targets) needs DNS
/// and belongs at the edge.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpUrl(String);

impl HttpUrl {
    const WHAT: &'static str = "url";

    /// Parses a URL.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        check(Self::WHAT, s, 2048, |c| c.is_ascii_graphic())?;
        let lower_scheme_end = s.find("://").ok_or(ParseError::Malformed {
            what: Self::WHAT,
            reason: "expected http:// or https://",
        })?;
        let scheme = s.get(..lower_scheme_end).unwrap_or("");
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return Err(ParseError::Malformed {
                what: Self::WHAT,
                reason: "expected http:// or https://",
            });
        }
        let rest = s.get(lower_scheme_end + 3..).unwrap_or("");
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.contains('@') {
            return Err(ParseError::Malformed {
                what: Self::WHAT,
                reason: "user-info is not allowed",
            });
        }
        let host = host_of(authority);
        if host.is_empty() {
            return Err(ParseError::Malformed {
                what: Self::WHAT,
                reason: "missing host",
            });
        }
        Ok(Self(s.to_owned()))
    }

    /// Whether the scheme is `https`.
    pub fn is_https(&self) -> bool {
        self.0
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
    }

    /// The host (without port; IPv6 literals keep their brackets).
    pub fn host(&self) -> &str {
        let rest = self.0.split_once("://").map_or("", |(_, r)| r);
        host_of(rest.split(['/', '?', '#']).next().unwrap_or(""))
    }
}
string_value!(HttpUrl);

/// The host part of an authority (`host`, `host:port`, `[::1]:port`).
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => authority.get(..=end).unwrap_or(""),
            None => "",
        };
    }
    authority.split(':').next().unwrap_or("")
}

/// A reference to a payload kept elsewhere (a blob path): 1 to 1024 characters, no control characters,
/// no surrounding whitespace. Raw vendor payloads are never copied into documents or events.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PayloadRef(String);

impl PayloadRef {
    /// Parses a payload reference.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        const WHAT: &str = "payload reference";
        check(WHAT, s, 1024, |c| !c.is_control())?;
        if s.trim() != s {
            return Err(ParseError::Malformed {
                what: WHAT,
                reason: "surrounding whitespace",
            });
        }
        Ok(Self(s.to_owned()))
    }
}
string_value!(PayloadRef);

/// A human-readable name: 1 to 200 characters, no control characters, no surrounding whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DisplayName(String);

impl DisplayName {
    /// Parses a display name.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        const WHAT: &str = "name";
        check(WHAT, s, 200, |c| !c.is_control())?;
        if s.trim() != s {
            return Err(ParseError::Malformed {
                what: WHAT,
                reason: "surrounding whitespace",
            });
        }
        Ok(Self(s.to_owned()))
    }
}
string_value!(DisplayName);

/// The name of an operation a run performs (`repos.get`, `chat.completions`, `pullRequests.open`):
/// 1 to 128 of `[A-Za-z0-9._:/-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OperationName(String);

impl OperationName {
    /// Parses an operation name.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        check("operation", s, 128, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '-')
        })?;
        Ok(Self(s.to_owned()))
    }
}
string_value!(OperationName);

#[cfg(test)]
mod tests;
