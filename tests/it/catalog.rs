//! The catalog source reading an operator's catalog from a `file://` URL through the
//! host: the patches for the devices' components, an unchanged file not read again, a
//! broken file's every problem located, and a file URL the manifest or the operator
//! does not name refused. Its parser's cases are `tests/cases/catalog-check/` (run
//! through `ringleader catalog check`).

use super::*;
use ringleader_runtime::CallErrorKind;
use ringleader_runtime::bindings::PluginError;
use ringleader_tests::guests::catalog::source;
use ringleader_types::Scheme;
use std::path::Path;

const CATALOG: &str = r#"vendor = "example-msp"

[[patches]]
id = "msp-agent-4.2.1-1"
title = "MSP agent 4.2.1"
component = "msp-agent"
fixed-version = "4.2.1-1"
scheme = "deb"
applies-to = ">= 4.0.0-1, < 4.2.1-1"
kind = "security"
severity = "high"
cves = ["CVE-2026-40001"]
released = "2026-11-03"
prerequisites = ["libmsp1-4.2.1-1"]

[[patches]]
id = "libmsp1-4.2.1-1"
component = "libmsp1"
fixed-version = "4.2.1-1"
scheme = "deb"
kind = "security"

[[patches]]
id = "nic-fw-22.31.6"
vendor = "broadcom"
component = "nic-firmware"
fixed-version = "22.31.6"
kind = "firmware"

[[patches]]
id = "r650-bios-2.19.1"
vendor = "dell"
component = "bios"
fixed-version = "2.19.1"
kind = "firmware"
reboot = true
artifact = { url = "https://files.example-msp.net/BIOS_2.19.1.exe", sha256 = "3f786850e387550fdab836ed7e6dc881de23001b0a5f8b2c5d8b7c0b4b5a6f1e", size = 34567890 }
"#;

fn fleet() -> Vec<Device> {
    vec![
        device("app1", &[("msp-agent", "4.1.0-1"), ("openssl", "3.0.11")]),
        device("srv1", &[("bios", "2.10.0")]),
    ]
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    format!("file://{}", path.display())
}

const GRANTED: &[&str] = &["{setting:catalog}"];

#[tokio::test]
async fn discover_reads_a_file_catalog_and_returns_the_patches_for_the_devices_components() {
    let dir = tempfile::tempdir().unwrap();
    let url = write(dir.path(), "catalog.toml", CATALOG);
    let plugin = source(&url, None, GRANTED).await;
    let patches = plugin.discover(&fleet()).await.unwrap();
    let ids: Vec<&str> = patches.iter().map(|p| p.id.as_str()).collect();
    // The NIC firmware is on no device; the agent's prerequisite is, as a prerequisite.
    assert_eq!(
        ids,
        ["msp-agent-4.2.1-1", "libmsp1-4.2.1-1", "r650-bios-2.19.1"]
    );
    let agent = &patches[0];
    assert_eq!(agent.vendor, "example-msp");
    assert_eq!(agent.scheme, Some(Scheme::Deb));
    assert_eq!(agent.applies_to, ">= 4.0.0-1, < 4.2.1-1");
    assert_eq!(agent.severity, Severity::High);
    assert_eq!(agent.kind, PatchKind::Security);
    assert_eq!(agent.cves, ["CVE-2026-40001"]);
    assert_eq!(agent.released, 1_793_664_000);
    assert_eq!(agent.prerequisites, ["libmsp1-4.2.1-1"]);
    assert!(agent.artifact.url.is_empty(), "a repository install");
    let bios = &patches[2];
    assert_eq!(bios.vendor, "dell");
    assert_eq!(bios.scheme, Some(Scheme::Vendor));
    assert!(bios.reboot_required);
    assert_eq!(bios.artifact.size, 34_567_890);

    // The planner takes them as they are: versions read, prerequisites found.
    let catalog = ringleader_planner::catalog::Catalog::build(
        patches
            .iter()
            .map(|p| (p.clone(), "catalog-source".to_string()))
            .collect(),
    )
    .unwrap();
    assert!(catalog.refused.is_empty(), "{:?}", catalog.refused);

    // The same catalog as JSON.
    let json: serde_json::Value = toml::from_str(CATALOG).unwrap();
    let url = write(dir.path(), "catalog.json", &json.to_string());
    let plugin = source(&url, None, GRANTED).await;
    assert_eq!(plugin.discover(&fleet()).await.unwrap(), patches);
}

/// The host keeps what it read with the file's `ETag` (inode, size, modification
/// time): while they stay, a `discover` is answered without reading the file, as a
/// `304` answers for an HTTP feed. Shown here by rewriting the file in place with the
/// same size and modification time: the second `discover` still sees the first text.
#[tokio::test]
async fn a_second_discover_of_an_unchanged_catalog_file_does_not_read_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let url = write(dir.path(), "catalog.toml", CATALOG);
    let path = dir.path().join("catalog.toml");
    let plugin = source(&url, None, GRANTED).await;
    let first = plugin.discover(&fleet()).await.unwrap();
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::fs::write(&path, CATALOG.replace("MSP agent 4.2.1", "MSP agent 4.2.X")).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    let second = plugin.discover(&fleet()).await.unwrap();
    assert_eq!(first, second, "answered from what the host kept");
    assert_eq!(second[0].title, "MSP agent 4.2.1");

    // Changed as editors and `cp` change files (a new modification time): read again.
    std::fs::write(&path, CATALOG.replace("MSP agent 4.2.1", "MSP agent 4.2.Y")).unwrap();
    let third = plugin.discover(&fleet()).await.unwrap();
    assert_eq!(third[0].title, "MSP agent 4.2.Y");
}

#[tokio::test]
async fn a_broken_catalog_fails_discover_naming_every_problem_by_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let broken = CATALOG
        .replace(
            "kind = \"security\"\nseverity",
            "kind = \"hotfix\"\nseverity",
        )
        .replace("\"22.31.6\"", "\"latest\"")
        .replace("[\"libmsp1-4.2.1-1\"]", "[\"libmsp2\"]");
    let url = write(dir.path(), "catalog.toml", &broken);
    let file = dir.path().join("catalog.toml").display().to_string();
    let plugin = source(&url, None, GRANTED).await;
    let err = plugin.discover(&fleet()).await.unwrap_err();
    let CallErrorKind::Plugin(PluginError::Permanent(message)) = &err.kind else {
        panic!("{err:?}")
    };
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(lines.len(), 3, "{message}");
    assert!(
        lines[0].starts_with(&format!(
            "{file}:10:8: `patches[0].kind`: unknown kind `hotfix`"
        )),
        "{message}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "{file}:14:18: `patches[0].prerequisites[0]`: unknown prerequisite `libmsp2`"
        )),
        "{message}"
    );
    assert!(
        lines[2].starts_with(&format!(
            "{file}:27:17: `patches[2].fixed-version`: `latest` is not a vendor version"
        )),
        "{message}"
    );

    // A file that is not there: permanent, naming it.
    let missing = format!("file://{}/nowhere.toml", dir.path().display());
    let plugin = source(&missing, None, GRANTED).await;
    let err = plugin.discover(&fleet()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("nowhere.toml") && text.contains("cannot read"),
        "{text}"
    );
}

#[tokio::test]
async fn a_file_url_the_manifest_or_the_operator_does_not_name_is_denied() {
    let dir = tempfile::tempdir().unwrap();
    let url = write(dir.path(), "catalog.toml", CATALOG);
    let denied = |err: ringleader_runtime::CallError| match err.kind {
        CallErrorKind::Plugin(PluginError::Denied(m)) => m,
        other => panic!("{other:?}"),
    };
    // Not granted: the operator set the file but granted a host, not the setting.
    let plugin = source(&url, None, &["files.example"]).await;
    let message = denied(plugin.discover(&fleet()).await.unwrap_err());
    assert!(message.contains("is not granted"), "{message}");
    // Not declared: a manifest naming hosts, no setting, reads no file, granted or not.
    let plugin = source(&url, Some(&["files.example"]), GRANTED).await;
    let message = denied(plugin.discover(&fleet()).await.unwrap_err());
    assert!(message.contains("is not declared"), "{message}");
    // A file URL that is not absolute fails the load, naming the setting.
    let mut grants = Grants::default();
    grants.plugins.insert(
        "catalog-source".into(),
        ringleader_runtime::Grant {
            http: vec!["{setting:catalog}".into()],
            settings: [("catalog".to_string(), "file://server/c.toml".to_string())].into(),
            ..Default::default()
        },
    );
    let err = runtime(grants, Services::default())
        .load(&manifest("catalog-source"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`catalog`") && err.contains("no host"),
        "{err}"
    );
}
