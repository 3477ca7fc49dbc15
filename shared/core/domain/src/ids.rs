//! Typed, prefixed identifiers (`conn_…`, `run_…`, ...).
//!
//! The prefix makes an id self-describing in logs and URLs and stops a run id from being used where a
//! connection id is expected. The body is a UUID (v7 for new ids, so ids sort by creation time) written
//! as 32 lowercase hex digits; `parse` accepts exactly that form, so every id has one spelling.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::error::ParseError;

/// Length of the hex body of every prefixed id.
const BODY_LEN: usize = 32;

/// Parses `<prefix>_<32 lowercase hex>` into a UUID.
fn parse_prefixed(what: &'static str, prefix: &'static str, s: &str) -> Result<Uuid, ParseError> {
    if s.is_empty() {
        return Err(ParseError::Empty { what });
    }
    let max = prefix.len() + 1 + BODY_LEN;
    let len = s.chars().count();
    if len > max {
        return Err(ParseError::TooLong { what, max, len });
    }
    let body = s
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .ok_or(ParseError::Malformed {
            what,
            reason: "wrong prefix",
        })?;
    if body.len() != BODY_LEN {
        return Err(ParseError::Malformed {
            what,
            reason: "expected 32 hex digits after the prefix",
        });
    }
    if let Some(position) = body
        .chars()
        .position(|c| !matches!(c, '0'..='9' | 'a'..='f'))
    {
        return Err(ParseError::InvalidChar {
            what,
            position: prefix.len() + 1 + position,
        });
    }
    Uuid::try_parse(body).map_err(|_| ParseError::Malformed {
        what,
        reason: "not a uuid",
    })
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// The prefix before the underscore.
            pub const PREFIX: &'static str = $prefix;

            /// A new id from a UUID v7 (time-ordered).
            #[allow(clippy::new_without_default)] // a fresh id is not a "default" value
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing UUID (tests, migrations, deterministic ids).
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID inside the id.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// Parses the canonical form, checking the prefix.
            pub fn parse(s: &str) -> Result<Self, ParseError> {
                parse_prefixed($what, $prefix, s).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}_{}", $prefix, self.0.simple())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
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
            fn from(id: $name) -> String {
                id.to_string()
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

prefixed_id!(
    /// Identifies an [`IntegrationConnection`](crate::IntegrationConnection): `conn_…`.
    ConnectionId, "conn", "connection id"
);
prefixed_id!(
    /// Identifies an [`IntegrationCredential`](crate::IntegrationCredential): `cred_…`.
    CredentialId, "cred", "credential id"
);
prefixed_id!(
    /// Identifies an [`IntegrationRun`](crate::IntegrationRun): `run_…`.
    RunId, "run", "run id"
);
prefixed_id!(
    /// Identifies an [`IntegrationFailure`](crate::IntegrationFailure): `fail_…`.
    FailureId, "fail", "failure id"
);
prefixed_id!(
    /// Identifies a [`WebhookSubscription`](crate::WebhookSubscription): `sub_…`.
    SubscriptionId, "sub", "subscription id"
);
prefixed_id!(
    /// Identifies a [`WebhookDelivery`](crate::WebhookDelivery): `dlv_…`.
    DeliveryId, "dlv", "delivery id"
);
prefixed_id!(
    /// Identifies a [`WebhookSource`](crate::WebhookSource): `src_…`.
    SourceId, "src", "source id"
);
prefixed_id!(
    /// Identifies an [`ExternalApiClient`](crate::ExternalApiClient): `cli_…`.
    ClientId, "cli", "client id"
);
prefixed_id!(
    /// Identifies one credential rotation (the saga's correlation id): `rot_…`.
    RotationId, "rot", "rotation id"
);

#[cfg(test)]
mod tests;
