//! A short-lived, bounded, in-memory cache of secret reads, with one vault call per miss.
//!
//! Key Vault allows about 4,000 reads per 10 s per vault, and every outbound vendor call
//! resolves a credential, so reads must not reach the vault one for one. Versions are
//! immutable (only their `enabled` flag changes), so a version read is kept longer than a
//! "latest" read, which a rotation elsewhere can move at any time.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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
    /// Entries kept at most, of each kind (latest, versions); the least used go first.
    /// Default 1024.
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

pub(crate) type Read = (SecretString, SecretVersion);

/// A fill's outcome as its waiters share it: a vault error, or a read made while an
/// invalidation happened (returned to the callers, not kept).
enum Unkept {
    Failed(ports::PortError),
    Stale(Read),
}

/// Two `moka` caches (latest reads and version reads, each with its own lifetime), bounded,
/// with per-key single flight: concurrent misses of one key make one vault call, and a miss
/// of one key never waits for another's.
pub(crate) struct Cache {
    latest: Option<moka::future::Cache<Key, Read>>,
    versions: Option<moka::future::Cache<Key, Read>>,
    /// Bumped by every invalidation: a load that started before one does not store its
    /// (possibly stale) result.
    generation: AtomicU64,
}

impl Cache {
    pub(crate) fn new(options: CacheOptions) -> Cache {
        let build = |ttl: Duration| {
            (!ttl.is_zero() && options.max_entries > 0).then(|| {
                moka::future::Cache::builder()
                    .max_capacity(options.max_entries as u64)
                    .time_to_live(ttl)
                    .build()
            })
        };
        Cache {
            latest: build(options.latest_ttl),
            versions: build(options.version_ttl),
            generation: AtomicU64::new(0),
        }
    }

    fn of(&self, key: &Key) -> Option<&moka::future::Cache<Key, Read>> {
        if key.version.is_some() {
            self.versions.as_ref()
        } else {
            self.latest.as_ref()
        }
    }

    #[cfg(test)]
    pub(crate) async fn get(&self, key: &Key) -> Option<Read> {
        self.of(key)?.get(key).await
    }

    /// Stores a read unless an invalidation happened since `generation` was taken (one that
    /// lands between the check and the insert removes it again).
    pub(crate) async fn put(&self, key: Key, read: &Read, generation: u64) {
        let Some(cache) = self.of(&key) else {
            return;
        };
        if self.generation() != generation {
            return;
        }
        cache.insert(key.clone(), read.clone()).await;
        if self.generation() != generation {
            cache.invalidate(&key).await;
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Forgets the latest read of `name` and, when given, one of its versions.
    pub(crate) async fn invalidate(&self, name: &str, version: Option<&str>) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Some(latest) = &self.latest {
            latest.invalidate(&Key::new(name, None)).await;
        }
        if let (Some(versions), Some(v)) = (&self.versions, version) {
            versions.invalidate(&Key::new(name, Some(v))).await;
        }
    }

    /// The cached read, or `load`'s (stored before it is returned); concurrent callers for
    /// one key share one `load`. `load` gets the generation to store further reads with.
    pub(crate) async fn get_or_load<F, Fut>(&self, key: Key, load: F) -> ports::Result<Read>
    where
        F: FnOnce(u64) -> Fut,
        Fut: Future<Output = ports::Result<Read>>,
    {
        let Some(cache) = self.of(&key) else {
            return load(self.generation()).await;
        };
        let filled = cache
            .try_get_with_by_ref(&key, async {
                let generation = self.generation();
                match load(generation).await {
                    Ok(read) if self.generation() == generation => Ok(read),
                    Ok(read) => Err(Unkept::Stale(read)),
                    Err(e) => Err(Unkept::Failed(e)),
                }
            })
            .await;
        match filled {
            Ok(read) => Ok(read),
            Err(shared) => match &*shared {
                Unkept::Stale(read) => Ok(read.clone()),
                Unkept::Failed(e) => Err(e.clone()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use secrecy::ExposeSecret;

    use std::sync::Arc;

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
        cache.put(Key::new("S", None), &read("v", "1"), g).await;
        cache
            .put(Key::new("s", Some("1")), &read("v", "1"), g)
            .await;
        assert!(
            cache.get(&Key::new("s", None)).await.is_some(),
            "names ignore case"
        );
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(cache.get(&Key::new("s", None)).await.is_none());
        assert!(cache.get(&Key::new("s", Some("1"))).await.is_some());
    }

    #[tokio::test]
    async fn an_invalidation_wins_over_a_load_in_flight() {
        let cache = Cache::new(CacheOptions::default());
        let before = cache.generation();
        cache.invalidate("s", Some("1")).await;
        cache
            .put(Key::new("s", None), &read("stale", "1"), before)
            .await;
        assert!(cache.get(&Key::new("s", None)).await.is_none());

        // A load that an invalidation overtakes is answered but not kept.
        let answered = cache
            .get_or_load(Key::new("s", None), |_| async {
                cache.invalidate("s", None).await;
                Ok(read("during", "2"))
            })
            .await
            .unwrap();
        assert_eq!(answered.0.expose_secret(), "during");
        assert!(cache.get(&Key::new("s", None)).await.is_none());
    }

    #[tokio::test]
    async fn errors_are_shared_by_waiters_and_not_kept() {
        let cache = Cache::new(CacheOptions::default());
        let failed = cache
            .get_or_load(Key::new("s", None), |_| async {
                Err(ports::PortError::Throttled {
                    retry_after: Some(Duration::from_secs(3)),
                })
            })
            .await;
        assert!(matches!(failed, Err(ports::PortError::Throttled { .. })));
        let next = cache
            .get_or_load(Key::new("s", None), |_| async { Ok(read("v", "1")) })
            .await
            .unwrap();
        assert_eq!(next.0.expose_secret(), "v");
    }

    #[tokio::test]
    async fn the_cache_is_bounded_and_can_be_off() {
        let cache = Cache::new(CacheOptions {
            max_entries: 2,
            ..CacheOptions::default()
        });
        let g = cache.generation();
        for v in ["1", "2", "3", "4", "5"] {
            cache.put(Key::new("s", Some(v)), &read(v, v), g).await;
        }
        let versions = cache.versions.as_ref().unwrap();
        versions.run_pending_tasks().await;
        assert!(versions.entry_count() <= 2, "{}", versions.entry_count());
        let disabled = Cache::new(CacheOptions::disabled());
        disabled.put(Key::new("s", None), &read("v", "1"), 0).await;
        assert!(disabled.get(&Key::new("s", None)).await.is_none());
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
    }
}
