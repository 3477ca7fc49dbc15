//! Typed app settings. Each crate reads the settings it owns once, at start-up, into a typed
//! value (`resilience::Policy`, the kit's, the registry's and the gateway's settings); a value
//! that is present but unusable stops start-up with an [`InvalidSetting`] naming the setting,
//! what it must be and (a bounded prefix of) what it was. Unset or blank means the default.
//!
//! Settings come from `local.settings.json` `Values` overlaid by the environment locally, and
//! from app settings in Azure; both reach the apps as one map ([`Source`]).

use std::collections::BTreeMap;
use std::fmt::Display;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

/// Where settings are read from.
pub trait Source {
    fn get(&self, name: &str) -> Option<&str>;
}

impl Source for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(String::as_str)
    }
}

impl<S: Source + ?Sized> Source for &S {
    fn get(&self, name: &str) -> Option<&str> {
        (**self).get(name)
    }
}

impl Source for [(&str, &str)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }
}

impl<const N: usize> Source for [(&str, &str); N] {
    fn get(&self, name: &str) -> Option<&str> {
        Source::get(self.as_slice(), name)
    }
}

/// How much of a refused value an error repeats.
const SHOWN: usize = 40;

/// A setting that is present but unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("setting {name} must be {expected} (it is {shown})")]
pub struct InvalidSetting {
    pub name: String,
    pub expected: String,
    /// The value as given, quoted, cut to a bounded prefix.
    pub shown: String,
}

impl InvalidSetting {
    pub fn new(name: &str, expected: impl Into<String>, value: &str) -> Self {
        let mut shown: String = value.chars().take(SHOWN).collect();
        if value.chars().count() > SHOWN {
            shown.push('…');
        }
        InvalidSetting {
            name: name.to_owned(),
            expected: expected.into(),
            shown: format!("{shown:?}"),
        }
    }
}

/// The setting's trimmed value; `None` when unset or blank.
pub fn text<'a>(source: &'a impl Source, name: &str) -> Option<&'a str> {
    source.get(name).map(str::trim).filter(|v| !v.is_empty())
}

/// The setting read by `parse` (which says what it expected when it refuses the value).
pub fn parsed<T>(
    source: &impl Source,
    name: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, InvalidSetting> {
    text(source, name)
        .map(|v| parse(v).map_err(|expected| InvalidSetting::new(name, expected, v)))
        .transpose()
}

/// A whole number in `range`.
pub fn integer<T>(
    source: &impl Source,
    name: &str,
    range: RangeInclusive<T>,
) -> Result<Option<T>, InvalidSetting>
where
    T: FromStr + PartialOrd + Display,
{
    parsed(source, name, |v| {
        v.parse::<T>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| format!("a whole number from {} to {}", range.start(), range.end()))
    })
}

/// A duration given in milliseconds, within `range` (milliseconds).
pub fn millis(
    source: &impl Source,
    name: &str,
    range: RangeInclusive<u64>,
) -> Result<Option<Duration>, InvalidSetting> {
    Ok(integer(source, name, range)?.map(Duration::from_millis))
}

/// A duration given in seconds, within `range` (seconds).
pub fn seconds(
    source: &impl Source,
    name: &str,
    range: RangeInclusive<u64>,
) -> Result<Option<Duration>, InvalidSetting> {
    Ok(integer(source, name, range)?.map(Duration::from_secs))
}

/// An absolute `http` or `https` URL without query or fragment (an app's own public
/// address, say), without its trailing `/`.
pub fn base_url(source: &impl Source, name: &str) -> Result<Option<String>, InvalidSetting> {
    parsed(source, name, |v| {
        let expected = || "an http(s) URL without query or fragment".to_owned();
        let rest = v
            .strip_prefix("https://")
            .or_else(|| v.strip_prefix("http://"))
            .ok_or_else(expected)?;
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty()
            || v.contains(['?', '#'])
            || v.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(expected());
        }
        Ok(v.trim_end_matches('/').to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_and_blank_are_the_default_and_good_values_are_typed() {
        let s = [("A", "15"), ("B", "  "), ("C", " 250 ")];
        assert_eq!(integer(&s, "A", 1u32..=20).unwrap(), Some(15));
        assert_eq!(integer(&s, "B", 1u32..=20).unwrap(), None);
        assert_eq!(integer(&s, "Z", 1u32..=20).unwrap(), None);
        assert_eq!(
            millis(&s, "C", 1..=1000).unwrap(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            seconds(&s, "A", 0..=60).unwrap(),
            Some(Duration::from_secs(15))
        );
    }

    #[test]
    fn a_bad_value_names_its_setting_what_it_must_be_and_a_bounded_prefix() {
        let long = "9".repeat(100);
        let s = [("N", "0"), ("X", "ten"), ("L", long.as_str())];
        let e = integer(&s, "N", 1u32..=20).unwrap_err();
        assert_eq!(
            e.to_string(),
            "setting N must be a whole number from 1 to 20 (it is \"0\")"
        );
        assert!(integer(&s, "X", 1u32..=20).is_err());
        let e = integer(&s, "L", 1u64..=20).unwrap_err();
        assert_eq!(e.name, "L");
        assert!(e.shown.len() < 50 && e.shown.contains('…'), "{}", e.shown);
    }

    #[test]
    fn base_urls_are_absolute_http_without_query() {
        let s = [
            ("OK", "https://x.example/app/"),
            ("LOCAL", "http://127.0.0.1:7071/sms"),
            ("REL", "/sms"),
            ("Q", "https://x.example/?a=1"),
            ("NOHOST", "https:///x"),
            ("FTP", "ftp://x.example"),
        ];
        assert_eq!(
            base_url(&s, "OK").unwrap().as_deref(),
            Some("https://x.example/app")
        );
        assert!(base_url(&s, "LOCAL").unwrap().is_some());
        for bad in ["REL", "Q", "NOHOST", "FTP"] {
            assert_eq!(base_url(&s, bad).unwrap_err().name, bad);
        }
    }

    proptest::proptest! {
        /// Any value: typed or refused with a bounded, quoted prefix, never a panic; a
        /// number in range reads back as itself.
        #[test]
        fn any_value_is_read_or_refused_with_a_bounded_prefix(value in "\\PC{0,200}", n in 0u64..10_000) {
            let s = [("V", value.as_str())];
            match integer(&s, "V", 0u64..=5_000) {
                Ok(_) => {}
                // At most SHOWN characters of the value (and `…`), each at most ten once
                // escaped (`\\u{10ffff}`), in quotes.
                Err(e) => proptest::prop_assert!(
                    e.shown.chars().count() <= (SHOWN + 1) * 10 + 2,
                    "{}",
                    e.shown
                ),
            }
            let _ = base_url(&s, "V");
            let text = n.to_string();
            let s = [("N", text.as_str())];
            let read = integer(&s, "N", 0u64..=5_000);
            if n <= 5_000 {
                proptest::prop_assert_eq!(read.unwrap(), Some(n));
            } else {
                proptest::prop_assert!(read.is_err());
            }
        }
    }
}
