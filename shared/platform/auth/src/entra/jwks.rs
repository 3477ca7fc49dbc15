//! The issuer's signing keys (a JWKS document), fetched over HTTP and kept in memory.
//!
//! Three rules keep the endpoint safe from us and us safe from callers:
//! - a token naming an unknown `kid` triggers a refetch (key rollover), but at most one
//!   fetch attempt happens per `min_refetch_interval`, whatever the callers send;
//! - concurrent refetches are coalesced: one request goes out, the others wait for it;
//! - a failed fetch never drops keys already held, so known keys keep working while the
//!   endpoint is down; the whole set is replaced only by a successful fetch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;

/// How keys are fetched and refreshed. The defaults suit Entra ID, which announces new keys
/// in its JWKS well before signing with them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwksPolicy {
    /// At most one fetch attempt (successful or not) per this interval. Default 30 s.
    pub min_refetch_interval: Duration,
    /// Keys older than this are refreshed in the background while still used. Default 24 h.
    pub max_age: Duration,
    /// Whole-request timeout of one fetch. Default 10 s.
    pub fetch_timeout: Duration,
}

impl Default for JwksPolicy {
    fn default() -> Self {
        JwksPolicy {
            min_refetch_interval: Duration::from_secs(30),
            max_age: Duration::from_secs(24 * 60 * 60),
            fetch_timeout: Duration::from_secs(10),
        }
    }
}

/// The largest JWKS document read (Entra's is a few KiB).
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// RSA moduli accepted, in bytes (2048 to 8192 bits, what the verifier accepts).
const MODULUS_BYTES: std::ops::RangeInclusive<usize> = 256..=1024;

/// What a key lookup found.
pub(crate) enum Lookup {
    Found(Arc<DecodingKey>),
    /// The endpoint answered (recently) and has no such key.
    Unknown,
    /// The key is not held and the endpoint could not be read.
    Unavailable,
}

type KeySet = Arc<HashMap<String, Arc<DecodingKey>>>;

#[derive(Default)]
struct State {
    keys: KeySet,
    /// The last successful fetch.
    fetched_at: Option<Instant>,
    /// The last fetch attempt, successful or not.
    attempted_at: Option<Instant>,
    last_failed: bool,
    /// Bumped by every attempt: a waiter that sees it changed knows someone else fetched.
    generation: u64,
}

struct Snapshot {
    found: Option<Arc<DecodingKey>>,
    generation: u64,
    stale: bool,
    may_fetch: bool,
    last_failed: bool,
}

pub(crate) struct JwksCache {
    uri: String,
    client: reqwest::Client,
    policy: JwksPolicy,
    // Never held across an await: readers copy what they need out.
    state: RwLock<State>,
    // Single flight: whoever holds it is the only one fetching.
    fetching: tokio::sync::Mutex<()>,
    refresh_spawned: AtomicBool,
}

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the document is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("the document is not a JWKS: {0}")]
    NotJwks(#[from] serde_json::Error),
    #[error("the document has no usable RS256 key")]
    NoKeys,
}

impl JwksCache {
    pub(crate) fn new(uri: String, client: reqwest::Client, policy: JwksPolicy) -> Self {
        JwksCache {
            uri,
            client,
            policy,
            state: RwLock::new(State::default()),
            fetching: tokio::sync::Mutex::new(()),
            refresh_spawned: AtomicBool::new(false),
        }
    }

    fn snapshot(&self, kid: &str) -> Snapshot {
        let now = Instant::now();
        let s = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let older = |t: Option<Instant>, d: Duration| t.is_none_or(|t| now.duration_since(t) >= d);
        Snapshot {
            found: s.keys.get(kid).cloned(),
            generation: s.generation,
            stale: older(s.fetched_at, self.policy.max_age),
            may_fetch: older(s.attempted_at, self.policy.min_refetch_interval),
            last_failed: s.last_failed,
        }
    }

    /// The key named `kid`, fetching the JWKS if it is not held and the rate limit allows.
    pub(crate) async fn key(self: &Arc<Self>, kid: &str) -> Lookup {
        let snap = self.snapshot(kid);
        if let Some(key) = snap.found {
            if snap.stale && snap.may_fetch {
                self.spawn_refresh(snap.generation);
            }
            return Lookup::Found(key);
        }
        if !snap.may_fetch {
            return Self::missing(snap.last_failed);
        }
        let _flight = self.fetching.lock().await;
        let again = self.snapshot(kid);
        if again.generation == snap.generation && again.may_fetch {
            self.fetch_now().await;
        }
        // Else someone fetched while we waited: their result is ours.
        let after = self.snapshot(kid);
        match after.found {
            Some(key) => Lookup::Found(key),
            None => Self::missing(after.last_failed),
        }
    }

    fn missing(last_failed: bool) -> Lookup {
        if last_failed {
            Lookup::Unavailable
        } else {
            Lookup::Unknown
        }
    }

    /// Refreshes old keys without making the caller wait (they are still good to use).
    fn spawn_refresh(self: &Arc<Self>, generation: u64) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.refresh_spawned.swap(true, Ordering::AcqRel) {
            return;
        }
        // Clears the flag when the task ends, also if it is dropped unfinished (runtime
        // shutting down), so later refreshes are not blocked forever.
        struct Spawned(Arc<JwksCache>);
        impl Drop for Spawned {
            fn drop(&mut self) {
                self.0.refresh_spawned.store(false, Ordering::Release);
            }
        }
        let spawned = Spawned(Arc::clone(self));
        runtime.spawn(async move {
            let this = &spawned.0;
            if let Ok(_flight) = this.fetching.try_lock() {
                let now = this.snapshot("");
                if now.generation == generation && now.may_fetch {
                    this.fetch_now().await;
                }
            }
        });
    }

    /// One fetch attempt; the caller holds `fetching`.
    async fn fetch_now(&self) {
        let result = self.fetch().await;
        let now = Instant::now();
        let mut s = self.state.write().unwrap_or_else(PoisonError::into_inner);
        s.generation += 1;
        s.attempted_at = Some(now);
        match result {
            Ok(keys) => {
                s.keys = Arc::new(keys);
                s.fetched_at = Some(now);
                s.last_failed = false;
            }
            Err(e) => {
                // Keys already held stay: they are what keeps requests working.
                s.last_failed = true;
                tracing::warn!(uri = %self.uri, error = %e, "cannot fetch the token signing keys");
            }
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, Arc<DecodingKey>>, FetchError> {
        let mut response = self
            .client
            .get(&self.uri)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await?
            .error_for_status()?;
        if response
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(FetchError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let keys = parse_jwks(&body)?;
        if keys.is_empty() {
            return Err(FetchError::NoKeys);
        }
        Ok(keys)
    }
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RsaJwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

/// The RS256 signing keys of a JWKS document by `kid`; other keys are skipped, not errors
/// (issuers publish EC or encryption keys alongside).
fn parse_jwks(body: &[u8]) -> Result<HashMap<String, Arc<DecodingKey>>, serde_json::Error> {
    let set: JwkSet = serde_json::from_slice(body)?;
    let mut keys = HashMap::new();
    for jwk in set.keys {
        let Ok(jwk) = serde_json::from_value::<RsaJwk>(jwk) else {
            continue;
        };
        if let Some((kid, key)) = rsa_signing_key(jwk) {
            keys.entry(kid).or_insert_with(|| Arc::new(key));
        }
    }
    Ok(keys)
}

fn rsa_signing_key(jwk: RsaJwk) -> Option<(String, DecodingKey)> {
    if jwk.kty != "RSA"
        || jwk.use_.as_deref().is_some_and(|u| u != "sig")
        || jwk.alg.as_deref().is_some_and(|a| a != "RS256")
    {
        return None;
    }
    let kid = jwk.kid.filter(|k| !k.is_empty())?;
    let n = URL_SAFE_NO_PAD.decode(jwk.n?).ok()?;
    let e = URL_SAFE_NO_PAD.decode(jwk.e?).ok()?;
    let significant = n.iter().skip_while(|b| **b == 0).count();
    if !MODULUS_BYTES.contains(&significant) || e.is_empty() {
        return None;
    }
    Some((kid, DecodingKey::from_rsa_raw_components(&n, &e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rsa_signing_keys_are_kept() {
        let n = URL_SAFE_NO_PAD.encode([0xc5u8; 256]);
        let short = URL_SAFE_NO_PAD.encode([0xc5u8; 128]);
        let doc = serde_json::json!({ "keys": [
            { "kty": "RSA", "kid": "a", "n": n, "e": "AQAB" },
            { "kty": "RSA", "kid": "b", "use": "sig", "alg": "RS256", "n": n, "e": "AQAB" },
            { "kty": "RSA", "kid": "enc", "use": "enc", "n": n, "e": "AQAB" },
            { "kty": "RSA", "kid": "ps", "alg": "PS256", "n": n, "e": "AQAB" },
            { "kty": "RSA", "kid": "small", "n": short, "e": "AQAB" },
            { "kty": "RSA", "n": n, "e": "AQAB" },
            { "kty": "RSA", "kid": "no-n", "e": "AQAB" },
            { "kty": "RSA", "kid": "bad-b64", "n": "***", "e": "AQAB" },
            { "kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA" },
            { "kty": "oct", "kid": "hmac", "k": "c2VjcmV0" },
            "not an object"
        ]});
        let keys = parse_jwks(doc.to_string().as_bytes()).unwrap();
        let mut kids: Vec<_> = keys.keys().cloned().collect();
        kids.sort();
        assert_eq!(kids, ["a", "b"]);
        assert!(parse_jwks(b"{}").is_err());
        assert!(parse_jwks(b"[]").is_err());
    }
}
