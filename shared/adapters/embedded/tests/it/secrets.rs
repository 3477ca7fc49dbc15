//! `EncryptedSecretStore`: the port contract, plus what encryption at rest promises (no
//! plaintext on disk, a private key file, a wrong key refused without leaking anything).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use embedded::EncryptedSecretStore;
use ports::conformance::secrets::secret_store_contract;
use ports::{PortError, SecretStore};
use secrecy::{ExposeSecret, SecretString};

const DISTINCTIVE: &str = "hunter2-Zq9vXk7Lp3-distinctive-plaintext";

fn secret(value: &str) -> SecretString {
    SecretString::from(value.to_owned())
}

/// Every byte of every file under `dir`, file by file.
fn all_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(all_files(&path));
        } else {
            out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_secret_store_passes_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = EncryptedSecretStore::open_in(dir.path()).unwrap();
    secret_store_contract(&store).await;
}

#[tokio::test]
async fn no_plaintext_reaches_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = EncryptedSecretStore::open_in(dir.path()).unwrap();
    let v1 = store.set("api-key", secret(DISTINCTIVE)).await.unwrap();
    store
        .set("api-key", secret(&format!("{DISTINCTIVE}-rotated")))
        .await
        .unwrap();
    store.disable("api-key", &v1.version).await.unwrap();

    // Read while the store is open (WAL and shared-memory files present) and after it closed.
    let open_files = all_files(dir.path());
    drop(store);
    let closed_files = all_files(dir.path());
    let names: Vec<&str> = open_files.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.iter().any(|n| n.ends_with("secrets.db")), "{names:?}");
    assert!(
        names.iter().any(|n| n.ends_with("secrets.db-wal")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.ends_with("secrets.key")),
        "{names:?}"
    );
    for (name, bytes) in open_files.iter().chain(&closed_files) {
        assert!(
            !contains(bytes, DISTINCTIVE.as_bytes()),
            "plaintext found in {name}"
        );
        assert!(
            !contains(bytes, b"hunter2"),
            "part of the plaintext found in {name}"
        );
    }
}

#[tokio::test]
async fn versions_look_like_key_vault_versions() {
    let dir = tempfile::tempdir().unwrap();
    let store = EncryptedSecretStore::open_in(dir.path()).unwrap();
    let v = store.set("shape", secret("x")).await.unwrap();
    assert_eq!(v.version.len(), 32, "{}", v.version);
    assert!(
        v.version
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{}",
        v.version
    );
}

#[tokio::test]
async fn names_are_case_insensitive_as_in_key_vault() {
    let dir = tempfile::tempdir().unwrap();
    let store = EncryptedSecretStore::open_in(dir.path()).unwrap();
    store.set("Db-Password", secret("one")).await.unwrap();
    let (got, _) = store.get("db-password", None).await.unwrap();
    assert_eq!(got.expose_secret(), "one");
    store.set("DB-PASSWORD", secret("two")).await.unwrap();
    assert_eq!(store.versions("db-password").await.unwrap().len(), 2);
}

#[tokio::test]
async fn key_file_is_private_and_stable() {
    let dir = tempfile::tempdir().unwrap();
    EncryptedSecretStore::open_in(dir.path()).unwrap();
    let key_file = dir.path().join("secrets.key");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    let key = std::fs::read(&key_file).unwrap();
    EncryptedSecretStore::open_in(dir.path()).unwrap();
    assert_eq!(
        std::fs::read(&key_file).unwrap(),
        key,
        "a second open keeps the key"
    );
    // Only the key and the database (with its WAL files) are in the folder: no temporary
    // key file is left behind.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with("secrets.db"))
        .collect();
    names.sort();
    assert_eq!(names, ["secrets.key"]);
}

#[test]
fn concurrent_first_opens_agree_on_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    EncryptedSecretStore::open_in(dir.path()).unwrap();
                    std::fs::read(dir.path().join("secrets.key")).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        keys.windows(2).all(|w| w[0] == w[1]),
        "every opener sees the same key"
    );
}

#[tokio::test]
async fn reopening_reads_earlier_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let set = {
        let store = EncryptedSecretStore::open_in(dir.path()).unwrap();
        store.set("kept", secret("still here")).await.unwrap()
    };
    let store = EncryptedSecretStore::open_in(dir.path()).unwrap();
    let (got, meta) = store.get("kept", None).await.unwrap();
    assert_eq!(got.expose_secret(), "still here");
    assert_eq!(meta, set);
}

#[tokio::test]
async fn a_wrong_key_is_refused_without_leaking() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("secrets.db");
    let store = EncryptedSecretStore::open(&db, [7; 32]).unwrap();
    store.set("api-key", secret(DISTINCTIVE)).await.unwrap();
    drop(store);

    let err = EncryptedSecretStore::open(&db, [8; 32]).unwrap_err();
    let text = format!(
        "{err} / {err:?} / {}",
        std::error::Error::source(&err).unwrap()
    );
    assert!(matches!(err, PortError::Backend { .. }), "{text}");
    assert!(text.contains("decryption failed"), "{text}");
    assert!(!text.contains(DISTINCTIVE), "{text}");
}

#[tokio::test]
async fn a_ciphertext_cannot_be_moved_to_another_secret() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("secrets.db");
    let store = EncryptedSecretStore::open(&db, [7; 32]).unwrap();
    store.set("victim", secret("victim value")).await.unwrap();
    store.set("attacker", secret(DISTINCTIVE)).await.unwrap();
    drop(store);

    // Someone with write access to the file (but not the key) swaps the ciphertexts.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "UPDATE secret_versions SET ciphertext = (SELECT ciphertext FROM secret_versions \
         WHERE name = 'attacker'), nonce = (SELECT nonce FROM secret_versions \
         WHERE name = 'attacker') WHERE name = 'victim';",
    )
    .unwrap();
    drop(conn);

    let store = EncryptedSecretStore::open(&db, [7; 32]).unwrap();
    let err = store.get("victim", None).await.unwrap_err();
    let text = format!(
        "{err} / {err:?} / {}",
        std::error::Error::source(&err).unwrap()
    );
    assert!(matches!(err, PortError::Backend { .. }), "{text}");
    assert!(text.contains("decryption failed"), "{text}");
    assert!(!text.contains(DISTINCTIVE), "{text}");
}

#[tokio::test]
async fn debug_never_shows_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = EncryptedSecretStore::open_in(dir.path()).unwrap();
    let key_text = std::fs::read_to_string(dir.path().join("secrets.key")).unwrap();
    let debug = format!("{store:?} {store:#?}");
    assert!(debug.contains("redacted"), "{debug}");
    assert!(!debug.contains(key_text.trim()), "{debug}");

    let store = EncryptedSecretStore::open(&dir.path().join("other.db"), [0xab; 32]).unwrap();
    let debug = format!("{store:?}");
    assert!(
        !debug.contains("171, 171") && !debug.to_lowercase().contains("abab"),
        "{debug}"
    );
}
