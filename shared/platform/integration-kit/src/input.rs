//! Building blocks of typed inputs and configs, so an app's types read and check themselves
//! and a refused value is named at its path.

use serde::{Deserialize, Deserializer};

/// Declares a string type that is checked when it is read (`#[serde(try_from = "String")]`):
/// a bad value is refused at its field, with the check's words. It serialises and displays
/// as the string and dereferences to `str`.
///
/// ```
/// integration_kit::checked_string!(
///     /// A ticket subject of 1 to 150 characters.
///     Subject,
///     |s| if (1..=150).contains(&s.chars().count()) { Ok(()) } else {
///         Err("must be 1 to 150 characters".into())
///     }
/// );
/// let s: Subject = serde_json::from_str("\"Printer on fire\"").unwrap();
/// assert_eq!(s.as_str(), "Printer on fire");
/// assert!(serde_json::from_str::<Subject>("\"\"").is_err());
/// ```
#[macro_export]
macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, ::serde::Deserialize, ::serde::Serialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                let check: fn(&str) -> Result<(), String> = $check;
                check(&s).map(|()| $name(s))
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// For `#[serde(default, deserialize_with = "integration_kit::null_as_default")]`: an
/// optional field that may also be given as `null` (a list, say), read as its default.
pub fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

crate::checked_string!(
    /// An email address as operations take it: one `@` with something on each side, no
    /// spaces or control characters, at most 254 characters (RFC 5321's path limit).
    EmailAddress,
    |s| {
        let ok = s.len() <= 254
            && s.split('@').count() == 2
            && s.split('@').all(|p| !p.is_empty())
            && !s.chars().any(|c| c.is_whitespace() || c.is_control());
        if ok {
            Ok(())
        } else {
            Err("must be an email address".into())
        }
    }
);
