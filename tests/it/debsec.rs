//! The Debian security source, served over HTTP on 127.0.0.1: a second `discover`
//! costs a `304`, and a missing file is a permanent error naming it. Its data cases
//! (`tests/cases/debian-security/`) are the `cases` test binary
//! (`case-runner/debsec.rs`).

use super::*;
use ringleader_tests::guests::debsec::{cases, source};
use ringleader_tests::peers::FileServer;
use std::collections::HashMap;

fn fleet() -> Vec<ringleader_types::Device> {
    let mut d = device("app1", &[("curl", "7.88.1-10+deb12u5")]);
    d.facts.push(("os-codename".into(), "bookworm".into()));
    vec![d]
}

#[tokio::test]
async fn a_second_discover_of_an_unchanged_tracker_file_costs_a_304() {
    let json = std::fs::read(cases().join("gzip-body/tracker.json")).unwrap();
    let gz = ringleader_tests::guests::encode::gzip(&json);
    let server = FileServer::start(HashMap::from([("/tracker/data/json".to_string(), gz)]));
    let plugin = source(Some(&format!("{}/tracker/data/json", server.url))).await;
    let first = plugin.discover(&fleet()).await.unwrap();
    let second = plugin.discover(&fleet()).await.unwrap();
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first, second);
    let file = || "/tracker/data/json".to_string();
    assert_eq!(server.answered(), [(file(), 200), (file(), 304)]);

    // A file that changed is downloaded again, and read as it is now.
    server.set("/tracker/data/json", b"{}".to_vec());
    let now = plugin.discover(&fleet()).await.unwrap();
    assert!(now.is_empty(), "{now:?}");
    assert_eq!(server.answered()[2], (file(), 200));
}

#[tokio::test]
async fn a_missing_tracker_file_is_a_permanent_error_naming_it() {
    let server = FileServer::start(HashMap::new());
    let url = format!("{}/tracker/data/json", server.url);
    let plugin = source(Some(&url)).await;
    let err = plugin.discover(&fleet()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&url)
            && text.contains("HTTP 404")
            && text.contains("[plugins.debian-security-source]"),
        "{text}"
    );
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

/// The tracker file of the apt end-to-end test (`tests/fixtures/`) reads as the patches
/// that test installs: `hello` 1.1-1 (and, once components name their source package,
/// `libfoo1` and `foo-tools` 2.0-1 of source `foo`).
#[tokio::test]
async fn the_apt_end_to_end_fixture_gives_the_test_repositorys_fixes() {
    let json = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/debian-security-tracker.json"),
    )
    .unwrap();
    let server = FileServer::start(HashMap::from([("/json".to_string(), json)]));
    let plugin = source(Some(&format!("{}/json", server.url))).await;
    let mut d = device(
        "lab-1",
        &[
            ("hello", "1.0-1"),
            ("libfoo1", "1.0-1"),
            ("foo-tools", "1.0-1"),
        ],
    );
    d.facts.push(("os-codename".into(), "bookworm".into()));
    let patches = plugin.discover(&[d]).await.unwrap();
    let hello = patches
        .iter()
        .find(|p| p.id == "debian:bookworm:hello:1.1-1:hello")
        .unwrap_or_else(|| panic!("{patches:?}"));
    assert_eq!(hello.cves, ["CVE-2026-0001"]);
    assert_eq!(hello.applies_to, "< 1.1-1");
    assert_eq!(hello.severity, ringleader_types::Severity::High);
}
