//! Shared-key access for local stand-ins, as shared access signatures.
//!
//! The 1.x SDK signs only with Entra ID tokens; it has no shared-key or connection-string
//! authentication. A connection string with an account key (Azurite's) is turned into an
//! account SAS that this policy signs and adds to every request; one with a
//! `SharedAccessSignature` has it added as is. In Azure, the adapter uses a token credential
//! instead (storage accounts there have shared-key access disabled).

use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Every query parameter a SAS may set: removed before the current signature is added, so a
/// request sent twice never carries two.
const SAS_PARAMETERS: [&str; 13] = [
    "sv", "ss", "srt", "sp", "se", "st", "spr", "sig", "sip", "ses", "sr", "si", "sdd",
];

/// The SAS version signed. 2020-12-06 and later sign the encryption-scope field too.
const SAS_VERSION: &str = "2022-11-02";
/// Read, write, delete, list, add, create: what the port's operations need.
const PERMISSIONS: &str = "rwdlac";
/// How long a signature is valid, and how long before its end a new one is signed.
const VALIDITY: Duration = Duration::hours(1);
const RENEW_BEFORE: Duration = Duration::minutes(10);

/// A storage account key (base64). `Debug` never shows it.
#[derive(Clone)]
pub struct AccountKey(Arc<Vec<u8>>);

impl AccountKey {
    /// Decodes a base64 account key. The error never holds the key.
    pub fn from_base64(key: &str) -> Result<AccountKey, &'static str> {
        let bytes = STANDARD
            .decode(key.trim())
            .map_err(|_| "the account key is not valid base64")?;
        if bytes.is_empty() {
            return Err("the account key is empty");
        }
        Ok(AccountKey(Arc::new(bytes)))
    }
}

impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccountKey(redacted)")
    }
}

/// A SAS query string (`sv=…&sig=…`). `Debug` never shows it.
#[derive(Clone)]
pub struct SasToken(Arc<str>);

impl SasToken {
    pub fn new(query: &str) -> SasToken {
        SasToken(Arc::from(query.trim().trim_start_matches('?')))
    }
}

impl fmt::Debug for SasToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SasToken(redacted)")
    }
}

/// The query pairs of a signature and when it stops being valid.
type Signed = (Vec<(String, String)>, DateTime<Utc>);

/// Adds a SAS to every request.
pub(crate) enum SasPolicy {
    Static(SasToken),
    Account {
        account: String,
        key: AccountKey,
        /// The current signature's query pairs and when they stop being valid.
        current: Mutex<Option<Signed>>,
    },
}

impl fmt::Debug for SasPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SasPolicy::Static(_) => f.write_str("SasPolicy::Static(redacted)"),
            SasPolicy::Account { account, .. } => {
                write!(f, "SasPolicy::Account({account}, key redacted)")
            }
        }
    }
}

impl SasPolicy {
    pub(crate) fn account(account: &str, key: AccountKey) -> SasPolicy {
        SasPolicy::Account {
            account: account.to_owned(),
            key,
            current: Mutex::new(None),
        }
    }

    fn pairs(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, String)>, hmac::digest::InvalidLength> {
        match self {
            SasPolicy::Static(token) => Ok(parse_query(&token.0)),
            SasPolicy::Account {
                account,
                key,
                current,
            } => {
                // A poisoned lock only means another thread panicked while renewing: the
                // cached value is still either valid or absent.
                let mut current = current.lock().unwrap_or_else(|e| e.into_inner());
                match &*current {
                    Some((pairs, expiry)) if *expiry - now > RENEW_BEFORE => Ok(pairs.clone()),
                    _ => {
                        let expiry = now + VALIDITY;
                        let pairs = account_sas(account, key, expiry)?;
                        *current = Some((pairs.clone(), expiry));
                        Ok(pairs)
                    }
                }
            }
        }
    }
}

/// An account SAS for the Blob service (string-to-sign of versions 2020-12-06 and later).
pub(crate) fn account_sas(
    account: &str,
    key: &AccountKey,
    expiry: DateTime<Utc>,
) -> Result<Vec<(String, String)>, hmac::digest::InvalidLength> {
    let expiry = expiry.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let (services, resource_types, protocols) = ("b", "sco", "https,http");
    // account, permissions, services, resource types, start, expiry, IP, protocols, version,
    // encryption scope, each followed by a newline.
    let to_sign = format!(
        "{account}\n{PERMISSIONS}\n{services}\n{resource_types}\n\n{expiry}\n\n{protocols}\n{SAS_VERSION}\n\n"
    );
    // HMAC takes keys of any length; the error exists only in the generic signature.
    let mut mac = Hmac::<Sha256>::new_from_slice(&key.0)?;
    mac.update(to_sign.as_bytes());
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    Ok([
        ("sv", SAS_VERSION.to_owned()),
        ("ss", services.to_owned()),
        ("srt", resource_types.to_owned()),
        ("sp", PERMISSIONS.to_owned()),
        ("se", expiry),
        ("spr", protocols.to_owned()),
        ("sig", signature),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect())
}

/// Decodes a SAS query (`application/x-www-form-urlencoded`) into its pairs.
fn parse_query(query: &str) -> Vec<(String, String)> {
    azure_core::http::Url::parse(&format!("http://sas.invalid/?{query}"))
        .map(|u| {
            u.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

// The trait elides `Context`'s lifetime; async-trait needs the impl to match it exactly.
#[allow(elided_lifetimes_in_paths)]
#[async_trait]
impl Policy for SasPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let pairs = self.pairs(Utc::now()).map_err(|_| {
            azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                "cannot sign a shared access signature with the account key",
            )
        })?;
        let url = request.url_mut();
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| !SAS_PARAMETERS.contains(&k.as_ref()))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        {
            let mut query = url.query_pairs_mut();
            query.clear();
            for (k, v) in kept.iter().chain(pairs.iter()) {
                query.append_pair(k, v);
            }
        }
        let Some((first, rest)) = next.split_first() else {
            return Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Other,
                "the SAS policy must not be the last in the pipeline",
            ));
        };
        first.send(ctx, request, rest).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_sas_signs_the_documented_string() {
        // Recomputed independently: HMAC-SHA256 over the documented string-to-sign with the
        // base64-decoded key, base64-encoded.
        let key = AccountKey::from_base64("a2V5").unwrap(); // "key"
        let expiry = DateTime::parse_from_rfc3339("2030-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let pairs = account_sas("acct", &key, expiry).unwrap();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("se"), Some("2030-01-02T03:04:05Z"));
        assert_eq!(get("sv"), Some(SAS_VERSION));
        let mut mac = Hmac::<Sha256>::new_from_slice(b"key").unwrap();
        mac.update(b"acct\nrwdlac\nb\nsco\n\n2030-01-02T03:04:05Z\n\nhttps,http\n2022-11-02\n\n");
        let expected = STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(get("sig"), Some(expected.as_str()));
    }

    #[test]
    fn a_signature_is_reused_until_close_to_its_end() {
        let policy = SasPolicy::account("acct", AccountKey::from_base64("a2V5").unwrap());
        let now = Utc::now();
        let first = policy.pairs(now).unwrap();
        assert_eq!(first, policy.pairs(now + Duration::minutes(49)).unwrap());
        assert_ne!(first, policy.pairs(now + Duration::minutes(51)).unwrap());
    }

    #[test]
    fn keys_and_tokens_never_show_in_debug() {
        let key = AccountKey::from_base64("c2VjcmV0LWtleQ==").unwrap();
        assert!(!format!("{key:?}").contains("c2VjcmV0"));
        let policy = SasPolicy::Static(SasToken::new("?sv=1&sig=SECRETSIG"));
        assert!(!format!("{policy:?}").contains("SECRETSIG"));
        assert_eq!(
            parse_query("sv=1&sig=a%2Bb%3D"),
            [("sv".into(), "1".into()), ("sig".into(), "a+b=".into())]
        );
        assert!(AccountKey::from_base64("not base64!").is_err());
    }
}
