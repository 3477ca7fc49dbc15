//! A short-lived, bounded, in-memory cache of secret reads, with one vault call per miss.
//!
//! Key Vault allows about 4,000 reads per 10 s per vault, and every outbound vendor call
//! resolves a credential, so reads must not reach the vault one for one. Versions are
//! immutable (only their `enabled` flag changes), so a version read is kept longer than a
//! "latest" read, which a rotation elsewhere can move at any time.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ports::SecretVersion;
use secrecy::SecretString;

/// How long reads are kept. `Default` holds the production values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheOptions {
    /// A read of the latest version. A rotation done by another instance is seen after at
    /// most this long. Default 30 s.
    pub latest_ttl: Duration,
    /// A read of a given version. A version disabled by another instance is still served
    /// here for at most this long (this instance's own `disable` takes effect at once).
    /// Default 5 min.
    pub version_ttl: Duration,
    /// Entries kept at most; the oldest goes first. Default 1024.
    pub max_entries: usize,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            latest_ttl: Duration::from_secs(30),
            version_ttl: Duration::from_secs(300),
            max_entries: 1024,
        }
    }
}

impl CacheOptions {
    /// Nothing is cached (every read goes to the vault).
    pub fn disabled() -> Self {
        CacheOptions {
            latest_ttl: Duration::ZERO,
            version_ttl: Duration::ZERO,
            max_entries: 0,
        }
    }
}

/// Secret names are case-insensitive in Key Vault, so the key is the lower-cased name.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub(crate) struct Key {
    name: String,
    version: Option<String>,
}

impl Key {
    pub(crate) fn new(name: &str, version: Option<&str>) -> Key {
        Key {
            name: name.to_ascii_lowercase(),
            version: version.map(str::to_owned),
        }
    }
}

struct Entry {
    value: SecretString,
    meta: SecretVersion,
    expires_at: Instant,
    stored_at: Instant,
}

pub(crate) type Read = (SecretString, SecretVersion);

pub(crate) struct Cache {
    options: CacheOptions,
    entries: Mutex<HashMap<Key, Entry>>,
    /// One gate per key being loaded, so concurrent misses make one vault call.
    loading: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
    /// Bumped by every invalidation: a load that started before one does not store its
    /// (possibly stale) result.
    generation: AtomicU64,
}

/// A poisoned lock only means another thread panicked while holding it; the map is still
/// consistent (every update is a single insert or remove), so it is used as is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Cache {
    pub(crate) fn new(options: CacheOptions) -> Cache {
        Cache {
            options,
            entries: Mutex::new(HashMap::new()),
            loading: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    fn ttl(&self, key: &Key) -> Duration {
        if key.version.is_some() {
            self.options.version_ttl
        } else {
            self.options.latest_ttl
        }
    }

    pub(crate) fn get(&self, key: &Key) -> Option<Read> {
        let mut entries = lock(&self.entries);
        match entries.get(key) {
            Some(e) if e.expires_at > Instant::now() => Some((e.value.clone(), e.meta.clone())),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Stores a read unless an invalidation happened since `generation` was taken.
    pub(crate) fn put(&self, key: Key, read: &Read, generation: u64) {
        let ttl = self.ttl(&key);
        if ttl.is_zero() || self.options.max_entries == 0 {
            return;
        }
        let mut entries = lock(&self.entries);
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        let now = Instant::now();
        if entries.len() >= self.options.max_entries && !entries.contains_key(&key) {
            entries.retain(|_, e| e.expires_at > now);
            if entries.len() >= self.options.max_entries
                && let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.stored_at)
                    .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(
            key,
            Entry {
                value: read.0.clone(),
                meta: read.1.clone(),
                expires_at: now + ttl,
                stored_at: now,
            },
        );
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Forgets the latest read of `name` and, when given, one of its versions.
    pub(crate) fn invalidate(&self, name: &str, version: Option<&str>) {
        let mut entries = lock(&self.entries);
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.remove(&Key::new(name, None));
        if let Some(v) = version {
            entries.remove(&Key::new(name, Some(v)));
        }
    }

    /// The cached read, or `load`'s (stored before it is returned); concurrent callers for
    /// one key share one `load`. `load` gets the generation to store further reads with.
    pub(crate) async fn get_or_load<F, Fut>(&self, key: Key, load: F) -> ports::Result<Read>
    where
        F: FnOnce(u64) -> Fut,
        Fut: Future<Output = ports::Result<Read>>,
    {
        if let Some(hit) = self.get(&key) {
            return Ok(hit);
        }
        let gate = lock(&self.loading).entry(key.clone()).or_default().clone();
        let result = {
            let _turn = gate.lock().await;
            match self.get(&key) {
                Some(hit) => Ok(hit),
                None => {
                    let generation = self.generation();
                    let loaded = load(generation).await;
                    if let Ok(read) = &loaded {
                        self.put(key.clone(), read, generation);
                    }
                    loaded
                }
            }
        };
        let mut loading = lock(&self.loading);
        // The map's reference and ours: nobody else is waiting on this gate.
        if Arc::strong_count(&gate) == 2 {
            loading.remove(&key);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use secrecy::ExposeSecret;

    use super::*;

    fn read(value: &str, version: &str) -> Read {
        (
            SecretString::from(value.to_owned()),
            SecretVersion {
                name: "s".into(),
                version: version.into(),
                created_at: Utc::now(),
                enabled: true,
            },
        )
    }

    #[tokio::test]
    async fn latest_and_versions_expire_on_their_own_clocks() {
        let cache = Cache::new(CacheOptions {
            latest_ttl: Duration::from_millis(30),
            version_ttl: Duration::from_secs(60),
            max_entries: 10,
        });
        let g = cache.generation();
        cache.put(Key::new("S", None), &read("v", "1"), g);
        cache.put(Key::new("s", Some("1")), &read("v", "1"), g);
        assert!(
            cache.get(&Key::new("s", None)).is_some(),
            "names ignore case"
        );
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(cache.get(&Key::new("s", None)).is_none());
        assert!(cache.get(&Key::new("s", Some("1"))).is_some());
    }

    #[tokio::test]
    async fn an_invalidation_wins_over_a_load_in_flight() {
        let cache = Cache::new(CacheOptions::default());
        let before = cache.generation();
        cache.invalidate("s", Some("1"));
        cache.put(Key::new("s", None), &read("stale", "1"), before);
        assert!(cache.get(&Key::new("s", None)).is_none());
    }

    #[tokio::test]
    async fn the_oldest_entry_makes_room() {
        let cache = Cache::new(CacheOptions {
            max_entries: 2,
            ..CacheOptions::default()
        });
        let g = cache.generation();
        for v in ["1", "2", "3"] {
            cache.put(Key::new("s", Some(v)), &read(v, v), g);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(cache.get(&Key::new("s", Some("1"))).is_none());
        assert!(cache.get(&Key::new("s", Some("3"))).is_some());
        let disabled = Cache::new(CacheOptions::disabled());
        disabled.put(Key::new("s", None), &read("v", "1"), 0);
        assert!(disabled.get(&Key::new("s", None)).is_none());
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_load() {
        let cache = Arc::new(Cache::new(CacheOptions::default()));
        let loads = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (cache, loads) = (cache.clone(), loads.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_load(Key::new("s", None), |_| {
                            let loads = loads.clone();
                            async move {
                                loads.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                Ok(read("value", "1"))
                            }
                        })
                        .await
                })
            })
            .collect();
        for t in tasks {
            let (value, _) = t.await.unwrap().unwrap();
            assert_eq!(value.expose_secret(), "value");
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert!(lock(&cache.loading).is_empty(), "gates are cleaned up");
    }
}
