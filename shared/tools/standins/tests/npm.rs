//! The npm install: once, then a no-op.

use std::time::Instant;

#[test]
fn install_is_done_once_and_patched() {
    let started = Instant::now();
    let tools = standins::npm::ensure_installed().expect("install the npm stand-ins");
    eprintln!("ensure_installed took {:?}", started.elapsed());
    assert!(
        tools
            .package_dir("azurite")
            .join("dist/src/blob/main.js")
            .is_file(),
        "azurite's blob server is installed"
    );
    let collection = tools
        .package_dir("@vercel/cosmosdb-server")
        .join("lib/account/collection.js");
    let text = std::fs::read_to_string(&collection).expect("read collection.js");
    assert!(
        text.contains("id: \"0\","),
        "the partition-key-range id is patched to a string"
    );
    assert!(!text.contains("id: 0,"), "no numeric id is left");

    let again = Instant::now();
    standins::npm::ensure_installed().expect("second call");
    assert!(
        again.elapsed().as_secs() < 2,
        "a second call finds the stamp and installs nothing ({:?})",
        again.elapsed()
    );
}
