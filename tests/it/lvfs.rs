//! The LVFS firmware source, served over HTTP on 127.0.0.1: its settings, a missing
//! catalog, and downloads. Its data cases (`tests/cases/lvfs/`) are the `cases` test
//! binary (`case-runner/lvfs.rs`).

use super::*;
use ringleader_tests::guests::lvfs::{cases, source};
use ringleader_tests::peers::serve_files as serve;
use std::collections::HashMap;

#[tokio::test]
async fn without_the_metadata_setting_the_error_says_what_to_set() {
    let plugin = source(None).await;
    let fleet = vec![device(
        "lab-1",
        &[("com.hughski.ColorHug2.firmware", "2.0.6")],
    )];
    let err = plugin.discover(&fleet).await.unwrap_err().to_string();
    assert!(
        err.contains("[plugins.lvfs-source]") && err.contains("settings = { metadata = "),
        "{err}"
    );
}

#[tokio::test]
async fn a_missing_metadata_file_is_a_permanent_error_naming_it() {
    let base = serve(HashMap::new());
    let url = format!("{base}/downloads/firmware.xml.gz");
    let plugin = source(Some(&url)).await;
    let fleet = vec![device(
        "lab-1",
        &[("com.hughski.ColorHug2.firmware", "2.0.6")],
    )];
    let err = plugin.discover(&fleet).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&url) && text.contains("HTTP 404"), "{text}");
    assert!(
        matches!(
            err.kind,
            ringleader_runtime::CallErrorKind::Plugin(
                ringleader_runtime::bindings::PluginError::Permanent(_)
            )
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_catalog_read_once_per_chunk_of_devices_is_downloaded_once() {
    use ringleader_engine::spec::{DISCOVER_CHUNK, discover_in_chunks};
    use ringleader_tests::peers::FileServer;
    let metadata =
        std::fs::read(cases().join("single-component-with-artifacts/metadata.xml")).unwrap();
    let server = FileServer::start(HashMap::from([("/firmware.xml".to_string(), metadata)]));
    let plugin = source(Some(&format!("{}/firmware.xml", server.url))).await;
    // Three chunks of devices: the source is asked three times, as the engine does.
    let fleet: Vec<_> = (0..2 * DISCOVER_CHUNK + 1)
        .map(|n| {
            device(
                &format!("cam-{n}"),
                &[("org.fwupd.fakedevice.firmware", "1.2.3")],
            )
        })
        .collect();
    let patches = discover_in_chunks(&plugin, &fleet).await.unwrap();
    assert_eq!(patches.len(), 1, "{patches:?}");
    let file = || "/firmware.xml".to_string();
    // Downloaded once; then the host asks whether it changed (If-None-Match) and the
    // plugin reads the same catalog again.
    assert_eq!(
        server.answered(),
        [(file(), 200), (file(), 304), (file(), 304)]
    );

    // A catalog that changed is downloaded again, and read as it is now.
    server.set("/firmware.xml", b"<components/>".to_vec());
    let now = plugin.discover(&fleet[..1]).await.unwrap();
    assert!(now.is_empty(), "{now:?}");
    assert_eq!(server.answered()[3], (file(), 200));
}
