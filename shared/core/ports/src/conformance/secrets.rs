//! The `SecretStore` contract. Every secret it touches has a unique name, so runs can share a
//! backend (an encrypted database, a Key Vault emulator, a test vault).

use secrecy::{ExposeSecret, SecretString};

use super::unique;
use crate::{PortError, SecretStore};

/// Runs every check of the contract; panics with a message naming the broken rule. Panic
/// messages name secrets and versions but never print values other than the suite's own.
pub async fn secret_store_contract(store: &dyn SecretStore) {
    set_and_get(store).await;
    disable(store).await;
    unknown(store).await;
    invalid_names(store).await;
    concurrent_sets(store).await;
}

fn secret(value: &str) -> SecretString {
    SecretString::from(value.to_owned())
}

async fn set_and_get(store: &dyn SecretStore) {
    let name = unique("conf-");
    let first = store
        .set(&name, secret("first value"))
        .await
        .expect("set of a new secret");
    assert_eq!(first.name, name, "set reports the name");
    assert!(!first.version.is_empty(), "set reports a version");
    assert!(first.enabled, "a new version is enabled");
    let value = "second: ünïcödé ✓\nwith a newline and \"quotes\"";
    let second = store
        .set(&name, secret(value))
        .await
        .expect("set of a second version");
    assert_ne!(
        first.version, second.version,
        "every set makes a new version"
    );
    assert!(
        second.created_at >= first.created_at,
        "versions are created in order"
    );

    let (got, meta) = store
        .get(&name, None)
        .await
        .expect("get of the latest version");
    assert_eq!(
        got.expose_secret(),
        value,
        "get without a version returns the latest value"
    );
    assert_eq!(
        meta, second,
        "get reports the latest version as set reported it"
    );

    let (got, meta) = store
        .get(&name, Some(&first.version))
        .await
        .expect("get of an old version");
    assert_eq!(
        got.expose_secret(),
        "first value",
        "an old version stays readable"
    );
    assert_eq!(meta, first, "get of an old version reports it");

    let versions = store.versions(&name).await.expect("versions");
    assert_eq!(
        versions,
        [first, second],
        "versions lists every version, oldest first"
    );
}

async fn disable(store: &dyn SecretStore) {
    let name = unique("conf-");
    let v1 = store.set(&name, secret("one")).await.expect("set");
    let v2 = store.set(&name, secret("two")).await.expect("set");
    store
        .disable(&name, &v2.version)
        .await
        .expect("disable of a version");

    let r = store.get(&name, Some(&v2.version)).await;
    assert!(
        matches!(r, Err(PortError::NotFound)),
        "a disabled version reads as NotFound"
    );
    let (got, meta) = store
        .get(&name, None)
        .await
        .expect("get of the latest enabled version");
    assert_eq!(
        got.expose_secret(),
        "one",
        "the latest falls back to the previous enabled version"
    );
    assert_eq!(
        meta.version, v1.version,
        "the fallback reports its own version"
    );

    let versions = store.versions(&name).await.expect("versions");
    let states: Vec<(&str, bool)> = versions
        .iter()
        .map(|v| (v.version.as_str(), v.enabled))
        .collect();
    assert_eq!(
        states,
        [(v1.version.as_str(), true), (v2.version.as_str(), false)],
        "versions still lists a disabled version, marked disabled"
    );

    let v3 = store
        .set(&name, secret("three"))
        .await
        .expect("set after a disable");
    let (got, meta) = store.get(&name, None).await.expect("get");
    assert_eq!(
        (got.expose_secret(), meta.version.as_str()),
        ("three", v3.version.as_str()),
        "a new version is the latest"
    );

    store.disable(&name, &v1.version).await.expect("disable");
    store.disable(&name, &v3.version).await.expect("disable");
    let r = store.get(&name, None).await;
    assert!(
        matches!(r, Err(PortError::NotFound)),
        "with every version disabled the secret is NotFound"
    );

    let r = store
        .disable(&name, "0123456789abcdef0123456789abcdef")
        .await;
    assert!(
        matches!(r, Err(PortError::NotFound)),
        "disable of an unknown version is NotFound, got {r:?}"
    );
}

async fn unknown(store: &dyn SecretStore) {
    let name = unique("conf-");
    let r = store.get(&name, None).await;
    assert!(
        matches!(r, Err(PortError::NotFound)),
        "get of an unknown secret is NotFound"
    );
    let r = store
        .get(&name, Some("0123456789abcdef0123456789abcdef"))
        .await;
    assert!(
        matches!(r, Err(PortError::NotFound)),
        "get of an unknown secret's version is NotFound"
    );
    let r = store
        .disable(&name, "0123456789abcdef0123456789abcdef")
        .await;
    assert!(
        matches!(r, Err(PortError::NotFound)),
        "disable of an unknown secret is NotFound, got {r:?}"
    );
    // Key Vault lists no versions of a secret it has never seen; either answer is fine.
    match store.versions(&name).await {
        Ok(v) => assert!(v.is_empty(), "an unknown secret has no versions: {v:?}"),
        Err(PortError::NotFound) => {}
        Err(e) => panic!("versions of an unknown secret is empty or NotFound, got {e:?}"),
    }

    store.set(&name, secret("known")).await.expect("set");
    let r = store
        .get(&name, Some("0123456789abcdef0123456789abcdef"))
        .await;
    assert!(
        matches!(r, Err(PortError::NotFound)),
        "get of an unknown version is NotFound"
    );
}

async fn invalid_names(store: &dyn SecretStore) {
    let too_long = "a".repeat(128);
    for bad in [
        "",
        "has space",
        "under_score",
        "dot.ted",
        "slash/ed",
        "ünï",
        too_long.as_str(),
    ] {
        let r = store.set(bad, secret("x")).await;
        assert!(
            matches!(r, Err(PortError::Invalid(_))),
            "set of name {bad:?} is Invalid, got {r:?}"
        );
        let r = store.get(bad, None).await;
        assert!(
            matches!(r, Err(PortError::Invalid(_))),
            "get of name {bad:?} is Invalid"
        );
        let r = store.versions(bad).await;
        assert!(
            matches!(r, Err(PortError::Invalid(_))),
            "versions of name {bad:?} is Invalid, got {r:?}"
        );
        let r = store.disable(bad, "0123456789abcdef0123456789abcdef").await;
        assert!(
            matches!(r, Err(PortError::Invalid(_))),
            "disable of name {bad:?} is Invalid, got {r:?}"
        );
    }
    let base = unique("conf-");
    let longest = format!("{base}{}", "x".repeat(127 - base.len()));
    store
        .set(&longest, secret("x"))
        .await
        .expect("a 127-character name is valid");
}

async fn concurrent_sets(store: &dyn SecretStore) {
    let name = unique("conf-");
    let set = |i: u32| {
        let name = name.clone();
        async move { (i, store.set(&name, secret(&format!("value {i}"))).await) }
    };
    let results = {
        let (a, b, c, d, e, f, g, h) = tokio::join!(
            set(0),
            set(1),
            set(2),
            set(3),
            set(4),
            set(5),
            set(6),
            set(7)
        );
        [a, b, c, d, e, f, g, h]
    };
    let mut made = Vec::new();
    for (i, r) in results {
        made.push((i, r.expect("concurrent sets all succeed")));
    }
    let mut distinct: Vec<&str> = made.iter().map(|(_, v)| v.version.as_str()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        8,
        "8 concurrent sets make 8 distinct versions"
    );
    assert_eq!(
        store.versions(&name).await.expect("versions").len(),
        8,
        "every concurrent set is listed"
    );
    for (i, v) in &made {
        let (got, _) = store
            .get(&name, Some(&v.version))
            .await
            .expect("get of a concurrent version");
        assert_eq!(
            got.expose_secret(),
            format!("value {i}"),
            "each version holds its own value"
        );
    }
}
