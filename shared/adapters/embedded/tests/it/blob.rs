//! `FolderBlobStore`: the port contract, plus what only a folder can get wrong (crashes
//! mid-write, paths escaping the root, corruption on disk).

use bytes::Bytes;
use embedded::FolderBlobStore;
use ports::conformance::blob::blob_store_contract;
use ports::{BlobStore, PortError, PutOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_blob_store_passes_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = FolderBlobStore::open(dir.path().join("blobs")).unwrap();
    blob_store_contract(&store).await;
}

#[tokio::test]
async fn a_temporary_file_left_by_a_crash_is_invisible() {
    let dir = tempfile::tempdir().unwrap();
    let store = FolderBlobStore::open(dir.path()).unwrap();
    store
        .put(
            "box",
            "in/kept",
            Bytes::from_static(b"kept"),
            PutOptions::default(),
        )
        .await
        .unwrap();
    // What a crash between writing the temporary file and renaming it leaves behind.
    let folder = dir.path().join("box/in");
    std::fs::write(
        folder.join(".tmp-0123456789abcdef0123456789abcdef"),
        b"half a blob",
    )
    .unwrap();
    std::fs::write(folder.join(".tmp-crashed.blob"), b"half a blob").unwrap();

    let names: Vec<String> = store
        .list("box", "")
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["in/kept"]);
    let (got, _) = store.get("box", "in/kept").await.unwrap();
    assert_eq!(&got[..], b"kept");
    // A blob whose name looks like the temporary file is stored under another file name.
    let r = store.get("box", "in/.tmp-crashed").await;
    assert!(matches!(r, Err(PortError::NotFound)), "{r:?}");
    store
        .put(
            "box",
            "in/.tmp-crashed",
            Bytes::from_static(b"real"),
            PutOptions::default(),
        )
        .await
        .unwrap();
    let (got, _) = store.get("box", "in/.tmp-crashed").await.unwrap();
    assert_eq!(&got[..], b"real");
}

#[tokio::test]
async fn a_put_leaves_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = FolderBlobStore::open(dir.path()).unwrap();
    let first = PutOptions {
        content_type: None,
        if_none_match: true,
    };
    store
        .put("box", "a", Bytes::from_static(b"1"), PutOptions::default())
        .await
        .unwrap();
    store
        .put("box", "a", Bytes::from_static(b"2"), PutOptions::default())
        .await
        .unwrap();
    store
        .put("box", "b", Bytes::from_static(b"1"), first.clone())
        .await
        .unwrap();
    store
        .put("box", "b", Bytes::from_static(b"2"), first)
        .await
        .unwrap_err();
    let mut files: Vec<String> = std::fs::read_dir(dir.path().join("box"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["a.blob", "b.blob"]);
}

#[tokio::test]
async fn names_cannot_escape_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("blobs");
    let store = FolderBlobStore::open(&root).unwrap();
    for (container, name) in [
        ("box", "../../outside"),
        ("box", "a/../../../outside"),
        ("box", "/etc/passwd"),
        ("box", "..\\outside"),
        ("box", "a/../b"),
        ("..", "outside"),
        ("../x", "outside"),
    ] {
        let r = store
            .put(
                container,
                name,
                Bytes::from_static(b"x"),
                PutOptions::default(),
            )
            .await;
        assert!(
            matches!(r, Err(PortError::Invalid(_))),
            "{container}/{name}: {r:?}"
        );
        let r = store.get(container, name).await;
        assert!(
            matches!(r, Err(PortError::Invalid(_))),
            "{container}/{name}: {r:?}"
        );
    }
    // Nothing was written anywhere: not under the root, not next to it.
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[tokio::test]
async fn names_with_odd_characters_map_to_safe_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = FolderBlobStore::open(dir.path()).unwrap();
    let names = [
        "a b/c%d",
        ".hidden",
        "x.blob",
        "x.blob/y",
        "ünï/cödé",
        "q?&=#",
    ];
    for name in names {
        store
            .put(
                "box",
                name,
                Bytes::from(name.to_owned()),
                PutOptions::default(),
            )
            .await
            .unwrap();
    }
    for name in names {
        let (got, _) = store.get("box", name).await.unwrap();
        assert_eq!(got, name.as_bytes(), "{name}");
    }
    let mut expected = names.to_vec();
    expected.sort_unstable();
    let listed: Vec<String> = store
        .list("box", "")
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(listed, expected);
}

#[tokio::test]
async fn corruption_on_disk_is_a_backend_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = FolderBlobStore::open(dir.path()).unwrap();
    store
        .put(
            "box",
            "doc",
            Bytes::from_static(b"precious content"),
            PutOptions::default(),
        )
        .await
        .unwrap();
    let file = dir.path().join("box/doc.blob");
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();

    let r = store.get("box", "doc").await;
    let Err(e @ PortError::Backend { .. }) = r else {
        panic!("a flipped byte is a backend error: {r:?}")
    };
    let chain = format!("{e} {}", std::error::Error::source(&e).unwrap());
    assert!(chain.contains("sha256"), "{chain}");

    bytes.truncate(bytes.len() - 3);
    std::fs::write(&file, &bytes).unwrap();
    let r = store.get("box", "doc").await;
    assert!(
        matches!(r, Err(PortError::Backend { .. })),
        "a truncated file is a backend error: {r:?}"
    );

    std::fs::write(&file, b"not a blob file").unwrap();
    let r = store.head("box", "doc").await;
    assert!(
        matches!(r, Err(PortError::Backend { .. })),
        "a foreign file is a backend error: {r:?}"
    );
}

#[tokio::test]
async fn a_reopened_store_reads_earlier_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let put = FolderBlobStore::open(dir.path())
        .unwrap()
        .put(
            "box",
            "keep/me",
            Bytes::from_static(b"durable"),
            PutOptions {
                content_type: Some("text/plain".into()),
                if_none_match: false,
            },
        )
        .await
        .unwrap();
    let reopened = FolderBlobStore::open(dir.path()).unwrap();
    let (got, info) = reopened.get("box", "keep/me").await.unwrap();
    assert_eq!(&got[..], b"durable");
    assert_eq!(info, put);
}

#[tokio::test]
async fn folder_blob_store_without_fsync_passes_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = FolderBlobStore::open_with(dir.path(), embedded::Durability::Normal).unwrap();
    ports::conformance::blob::blob_store_contract(&store).await;
}
