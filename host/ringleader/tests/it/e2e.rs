//! End to end: `ringleader serve` runs a real policy through rings over a mixed fleet
//! of real peers, with patches from the real source plugins.
//!
//! - Redfish systems on sushy-tools' BMC emulator, patched by `redfish-firmware` with
//!   firmware from an LVFS catalog (`lvfs-source`);
//! - Debian package devices, each its own dpkg root, reached locally and over a real
//!   OpenSSH server, patched by `dpkg-installer` with packages from CSAF advisories
//!   (`csaf-source`).
//!
//! The same packages also go through a daemon given its plugins by name, as a user who
//! only installed the binary would: `serve --source csaf-source --installer
//! dpkg-installer`, the CSAF feed named by the operator's config alone.
//!
//! Versions are read back from the peers (the emulator's `BiosVersion`, `dpkg-query`),
//! and installs are counted on the peers' side (the emulator's update log, the
//! packages' own maintainer scripts), never from Ringleader's own records.

use ringleader_tests::daemon::*;
use ringleader_tests::peers::{self, Deb, Redfish, RedfishOptions, Sshd};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The firmware component, named by its LVFS (AppStream) id.
const FIRMWARE: &str = "org.ringleader.test.sushy.bios";

const POLICY: &str = r#"
name = "mixed-fleet"
description = "Firmware and packages through lab, canary and broad"

[[rings]]
name = "lab"
select = { tags = ["lab"] }
soak = "2s"

[[rings]]
name = "canary"
select = { tags = ["canary"] }
soak = "2s"
max_failures = 1                # halts on the second failure

[[rings]]
name = "broad"
select = "rest"

[on_halt]
rollback = "failed-ring"
"#;

/// How a device is reached.
#[derive(Clone, Copy, PartialEq)]
enum Via {
    Local,
    Ssh,
    Bmc(usize),
}

/// The fleet: (id, ring tag, how it is reached).
const FLEET: &[(&str, &str, Via)] = &[
    ("lab-bmc-1", "lab", Via::Bmc(1)),
    ("lab-pkg-1", "lab", Via::Local),
    ("canary-bmc-1", "canary", Via::Bmc(2)),
    ("canary-pkg-1", "canary", Via::Local),
    ("canary-pkg-2", "canary", Via::Ssh),
    ("canary-pkg-3", "canary", Via::Local),
    ("canary-pkg-4", "canary", Via::Ssh),
    ("broad-bmc-1", "", Via::Bmc(3)),
    ("broad-pkg-1", "", Via::Local),
    ("broad-pkg-2", "", Via::Ssh),
];

/// How the daemon is given its plugins.
#[derive(Clone, Copy, PartialEq)]
enum Plugins {
    /// The sealed manifests the build wrote, by path; the operator grants the feeds'
    /// host by name.
    ByPath,
    /// The plugins built into the binary, by name; the CSAF feed's host is the one of
    /// the operator's `index` setting (`{setting:index}`), and devices name their
    /// installer.
    ByName,
}

struct Fleet {
    dir: tempfile::TempDir,
    /// The devices of this fleet: every one of [`FLEET`], or its package devices.
    devices: Vec<(&'static str, &'static str, Via)>,
    /// Only when the fleet has BMCs.
    redfish: Option<Redfish>,
    _sshd: Sshd,
    /// Package devices' roots by device id.
    roots: BTreeMap<String, PathBuf>,
    serve_args: Vec<String>,
    policy: String,
    inventory: String,
}

fn sha256(bytes: &[u8]) -> String {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    peers::sh("sha256sum", &[file.path().to_str().unwrap()])
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// A CSAF 2.0 advisory: `hello` `version` fixed, the package at `deb`.
fn advisory(id: &str, version: &str, deb: &Deb, released: &str) -> Vec<u8> {
    let file = deb.path.file_name().unwrap().to_string_lossy();
    serde_json::to_vec_pretty(&serde_json::json!({
        "document": {
            "category": "csaf_security_advisory", "csaf_version": "2.0",
            "title": format!("hello {version} security update"),
            "publisher": {"category": "vendor", "name": "Example Linux", "namespace": "https://example.org"},
            "tracking": {"id": id, "initial_release_date": released, "current_release_date": released,
                "status": "final", "version": "1",
                "revision_history": [{"date": released, "number": "1", "summary": "Initial"}]}
        },
        "product_tree": {"full_product_names": [{
            "name": format!("hello {version}"), "product_id": "hello-fixed",
            "product_identification_helper": {
                "purl": format!("pkg:deb/example/hello@{version}?arch=all"),
                "hashes": [{"filename": file, "file_hashes": [{"algorithm": "sha256", "value": deb.sha256}]}]
            }
        }]},
        "vulnerabilities": [{
            "cve": format!("CVE-2024-{}", 7000 + version.len()),
            "product_status": {"fixed": ["hello-fixed"]},
            "remediations": [{"category": "vendor_fix", "details": "install the package",
                "url": deb.url(), "product_ids": ["hello-fixed"]}]
        }]
    }))
    .unwrap()
}

/// LVFS metadata with the emulator's BIOS releases; image locations are relative to
/// the metadata's own URL, as on LVFS mirrors.
fn lvfs_metadata(images: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut releases = String::new();
    for (i, (version, image)) in images.iter().enumerate().rev() {
        releases.push_str(&format!(
            r#"      <release version="{version}" timestamp="{}" urgency="high">
        <location>./sushy-bios-{version}.bin</location>
        <checksum type="sha256" target="container" filename="sushy-bios-{version}.bin">{}</checksum>
        <size type="download">{}</size>
        <issues><issue type="cve">CVE-2024-{}</issue></issues>
      </release>
"#,
            1_700_000_000 + i * 86_400,
            sha256(image),
            image.len(),
            9000 + i
        ));
    }
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<components origin="lvfs" version="0.9">
  <component type="firmware">
    <id>{FIRMWARE}</id>
    <name>Sushy Emulator BIOS</name>
    <summary>System firmware for the emulated servers</summary>
    <developer_name>Ringleader Tests</developer_name>
    <provides><firmware type="flashed">6a3bfb1f-2f2c-5c4b-9a51-bd2a3f8e6d10</firmware></provides>
    <categories><category>X-System</category></categories>
    <releases>
{releases}    </releases>
  </component>
</components>
"#
    )
    .into_bytes()
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn manifest(name: &str) -> String {
    ringleader_bundled_plugins::manifest_path(name)
        .display()
        .to_string()
}

impl Fleet {
    /// The mixed fleet, plugins by path: peers started, packages built, feeds served,
    /// every device at its old version.
    fn new() -> Fleet {
        Fleet::build(FLEET.to_vec(), Plugins::ByPath)
    }

    /// The package devices of the fleet (local and over SSH), plugins by name.
    fn packages_by_name() -> Fleet {
        let packages = FLEET
            .iter()
            .copied()
            .filter(|(_, _, via)| !matches!(via, Via::Bmc(_)))
            .collect();
        Fleet::build(packages, Plugins::ByName)
    }

    fn build(devices: Vec<(&'static str, &'static str, Via)>, plugins: Plugins) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let bmcs = devices.iter().any(|(_, _, via)| matches!(via, Via::Bmc(_)));
        // The BMC speaks HTTPS with a certificate from the operator's CA and wants a
        // login: both from the operator's credentials, used by the host.
        // It answers updates with tasks to follow, as real BMCs do.
        let options = RedfishOptions {
            login: Some(("ringleader".into(), "bmc-s3cret".into())),
            task_seconds: 0.5,
            tls: true,
            ..RedfishOptions::default()
        };
        let redfish = bmcs.then(|| Redfish::start_with(&path, 3, &options));
        std::fs::write(path.join("bmc-password"), "bmc-s3cret\n").unwrap();
        let sshd = Sshd::start(&path);
        let debs = path.join("debs");
        std::fs::create_dir_all(&debs).unwrap();
        let old = peers::deb(&debs, "hello", "1.0", false);
        let fix = peers::deb(&debs, "hello", "1.1", false);

        // The feeds: CSAF advisories (the old release's too: its package is what a
        // rollback goes back to) and the LVFS catalog with its images.
        let mut files = HashMap::new();
        files.insert(
            "/csaf/index.txt".to_string(),
            b"2023/exl-2023-0001.json\n2024/exl-2024-0001.json\n".to_vec(),
        );
        files.insert(
            "/csaf/2023/exl-2023-0001.json".to_string(),
            advisory("EXL-2023-0001", "1.0", &old, "2023-03-01T00:00:00Z"),
        );
        files.insert(
            "/csaf/2024/exl-2024-0001.json".to_string(),
            advisory("EXL-2024-0001", "1.1", &fix, "2024-09-10T00:00:00Z"),
        );
        let images: Vec<(&str, Vec<u8>)> = vec![
            ("1.0.0", b"sushy bios 1.0.0 image".to_vec()),
            ("1.1.0", b"sushy bios 1.1.0 image".to_vec()),
        ];
        files.insert("/lvfs/firmware.xml".to_string(), lvfs_metadata(&images));
        for (version, image) in images {
            files.insert(format!("/lvfs/sushy-bios-{version}.bin"), image);
        }
        let feeds = peers::serve_files(files);

        let mut roots = BTreeMap::new();
        let mut inventory = String::new();
        for &(id, tag, via) in &devices {
            inventory.push_str(&format!(
                "[[devices]]\nid = \"{id}\"\ntags = [{}]\n",
                if tag.is_empty() {
                    String::new()
                } else {
                    format!("\"{tag}\"")
                }
            ));
            match via {
                Via::Bmc(n) => inventory.push_str(&format!(
                    "hostname = \"127.0.0.1\"\ninstaller = \"redfish-firmware\"\ntransport = {{ kind = \"http\", address = {}, credentials = \"test-bmc\" }}\nfacts = {{ \"redfish.system\" = \"node-{n}\", \"redfish.bios-component\" = \"{FIRMWARE}\" }}\ncomponents = {{ \"{FIRMWARE}\" = \"1.0.0\" }}\n\n",
                    toml_str(&redfish.as_ref().unwrap().url)
                )),
                Via::Local | Via::Ssh => {
                    let root = peers::device_root(&path, id, &old);
                    let transport = if via == Via::Local {
                        format!("{{ kind = \"local\", root = {} }}", toml_str(&root.display().to_string()))
                    } else {
                        format!(
                            "{{ kind = \"ssh\", address = \"127.0.0.1:{}\", user = {}, credentials = \"test-ssh\" }}\nfacts = {{ \"dpkg.root\" = {} }}",
                            sshd.port,
                            toml_str(&sshd.user),
                            toml_str(&root.display().to_string())
                        )
                    };
                    if plugins == Plugins::ByName {
                        inventory.push_str("installer = \"dpkg-installer\"\n");
                    }
                    inventory.push_str(&format!(
                        "transport = {transport}\ncomponents = {{ hello = \"1.0\" }}\n\n"
                    ));
                    roots.insert(id.to_string(), root);
                }
            }
        }
        let mut config = format!(
            "[credentials.test-ssh]\nssh_key = {}\nknown_hosts = {}\n\n[plugins.dpkg-installer]\nexec = [\"dpkg\", \"dpkg-query\", \"sha256sum\"]\n\n",
            toml_str(&sshd.key.display().to_string()),
            toml_str(&sshd.known_hosts.display().to_string()),
        );
        // By path, the operator grants the feeds' host by name; by name, the host of
        // the feed's URL (the manifest declares `{setting:index}`).
        let csaf_http = match plugins {
            Plugins::ByPath => "\"127.0.0.1\"",
            Plugins::ByName => "\"{setting:index}\"",
        };
        config.push_str(&format!(
            "[plugins.csaf-source]\nhttp = [{csaf_http}]\nsettings = {{ index = \"{feeds}/csaf/index.txt\" }}\n\n"
        ));
        if let Some(redfish) = &redfish {
            config.push_str(&format!(
                r#"[credentials.test-bmc]
username = "ringleader"
password_file = {}
ca_file = {}

[plugins.lvfs-source]
http = ["127.0.0.1"]
settings = {{ metadata = "{feeds}/lvfs/firmware.xml" }}

[plugins.redfish-firmware]
http = ["{{device}}"]
kv = true
settings = {{ task-poll-ms = "200" }}
"#,
                toml_str(&path.join("bmc-password").display().to_string()),
                toml_str(&redfish.ca.as_ref().unwrap().display().to_string()),
            ));
        }
        let write = |name: &str, text: &str| {
            let file = path.join(name);
            std::fs::write(&file, text).unwrap();
            file.display().to_string()
        };
        let config = write("ringleader.toml", &config);
        let serve_args = match plugins {
            Plugins::ByPath => vec![
                "--config".to_string(),
                config,
                "--source".into(),
                manifest("csaf-source"),
                "--source".into(),
                manifest("lvfs-source"),
                "--installer".into(),
                manifest("dpkg-installer"),
                "--installer".into(),
                manifest("redfish-firmware"),
            ],
            // What a user who has only the binary types: no path anywhere.
            Plugins::ByName => vec![
                "--config".to_string(),
                config,
                "--source".into(),
                "csaf-source".into(),
                "--installer".into(),
                "dpkg-installer".into(),
            ],
        };
        Fleet {
            policy: write("policy.toml", POLICY),
            inventory: write("inventory.toml", &inventory),
            dir,
            devices,
            redfish,
            _sshd: sshd,
            roots,
            serve_args,
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn daemon(&self) -> Daemon {
        let args: Vec<&str> = self.serve_args.iter().map(String::as_str).collect();
        Daemon::start_with(&self.data(), &args)
    }

    fn start(&self, daemon: &Daemon) -> String {
        let out = daemon.cli(&[
            "rollout",
            "start",
            "--policy",
            &self.policy,
            "--inventory",
            &self.inventory,
            "--json",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let started: Value = serde_json::from_slice(&out.stdout).unwrap();
        started["id"].as_str().unwrap().to_string()
    }

    /// The BMC emulator of a fleet with BMCs.
    fn redfish(&self) -> &Redfish {
        self.redfish.as_ref().expect("a fleet with BMCs")
    }

    fn root(&self, id: &str) -> &Path {
        &self.roots[id]
    }

    /// The BIOS version the emulator reports for system `node-N` (asked with the BMC's
    /// login; the name answers with a redirect to the system's id).
    fn bios(&self, n: usize) -> String {
        let ca = std::fs::read(self.redfish().ca.as_ref().unwrap()).unwrap();
        let roots = ureq::tls::RootCerts::Specific(std::sync::Arc::new(vec![
            ureq::tls::Certificate::from_pem(&ca).unwrap().to_owned(),
        ]));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build())
            .build()
            .into();
        let get = |path: &str| {
            agent
                .get(format!("{}{path}", self.redfish().url))
                .header("Authorization", "Basic cmluZ2xlYWRlcjpibWMtczNjcmV0")
                .call()
                .unwrap()
        };
        let redirect = get(&format!("/redfish/v1/Systems/node-{n}"));
        let location = redirect.headers()["location"].to_str().unwrap().to_string();
        let body = get(&location).body_mut().read_to_string().unwrap();
        let system: Value = serde_json::from_str(&body).unwrap();
        system["BiosVersion"].as_str().unwrap().to_string()
    }

    /// Firmware updates the emulator applied to `node-N`, as `from->to`.
    fn flashes(&self, n: usize) -> Vec<String> {
        self.redfish()
            .updates()
            .into_iter()
            .filter(|(system, ..)| *system == format!("node-{n}"))
            .map(|(_, from, to)| format!("{from}->{to}"))
            .collect()
    }

    /// Installs of hello `version` the device's maintainer scripts counted.
    fn installs(&self, id: &str, version: &str) -> usize {
        let line = format!("hello {version}");
        peers::installs(self.root(id))
            .iter()
            .filter(|l| **l == line)
            .count()
    }

    /// Installs counted on every peer so far.
    fn installs_so_far(&self) -> usize {
        let packages: usize = self.roots.keys().map(|id| self.installs(id, "1.1")).sum();
        packages + self.redfish.as_ref().map_or(0, |r| r.updates().len())
    }

    /// Every device is at the fixed version, installed exactly once (counted on the peers).
    fn assert_all_fixed_once(&self) {
        for &(id, _, via) in &self.devices {
            match via {
                Via::Bmc(n) => {
                    assert_eq!(self.bios(n), "1.1.0", "{id}");
                    assert_eq!(self.flashes(n), ["1.0.0->1.1.0"], "{id}");
                }
                Via::Local | Via::Ssh => {
                    assert_eq!(
                        peers::dpkg_version(self.root(id), "hello").as_deref(),
                        Some("1.1"),
                        "{id}"
                    );
                    assert_eq!(
                        self.installs(id, "1.1"),
                        1,
                        "{id}: {:?}",
                        peers::installs(self.root(id))
                    );
                }
            }
        }
    }
}

/// Waits for the rollout to end; `code` is the exit status of `status --wait` expected
/// (0 completed, 3 halted).
fn wait(daemon: &Daemon, id: &str, code: i32) {
    let out = daemon.cli(&["status", id, "--wait"]);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

fn device_states(daemon: &Daemon, id: &str) -> BTreeMap<String, (String, String)> {
    let devices = daemon.json(&["devices", id, "--json"]);
    devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["id"].as_str().unwrap().to_string(),
                (
                    d["state"].as_str().unwrap().to_string(),
                    d["reason"].as_str().unwrap_or_default().to_string(),
                ),
            )
        })
        .collect()
}

impl Fleet {
    /// `fleet scan` of the whole fleet through the daemon; then what the registry has
    /// for each device: component name -> version.
    fn scan(&self, daemon: &Daemon) -> BTreeMap<String, BTreeMap<String, String>> {
        let out = daemon.cli(&["fleet", "scan", "--inventory", &self.inventory, "--json"]);
        assert!(
            out.status.success(),
            "{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let scan: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_valid("fleet-scan.v1.json", &scan);
        assert_eq!(scan["ok"], self.devices.len(), "{scan}");
        let list = daemon.json(&["fleet", "list", "--json"]);
        assert_valid("fleet.v1.json", &list);
        self.devices
            .iter()
            .map(|(id, _, _)| {
                let doc = daemon.json(&["fleet", "device", id, "--json"]);
                assert_valid("fleet-device.v1.json", &doc);
                let components = doc["last_scan"]["components"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{doc}"))
                    .iter()
                    .map(|c| {
                        (
                            c["name"].as_str().unwrap().to_string(),
                            c["version"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect();
                (id.to_string(), components)
            })
            .collect()
    }
}

#[test]
fn a_mixed_fleet_of_real_peers_goes_through_every_ring_to_the_fixed_versions() {
    let fleet = Fleet::new();
    let daemon = fleet.daemon();
    // Scanned through the daemon first: the BMCs' BIOS (named by the device's
    // `redfish.bios-component`) and firmware inventory, the roots' packages.
    let before = fleet.scan(&daemon);
    let check = |scanned: &BTreeMap<String, BTreeMap<String, String>>, bios: &str, hello: &str| {
        for &(id, _, via) in &fleet.devices {
            let components = &scanned[id];
            match via {
                Via::Bmc(n) => {
                    assert_eq!(
                        components.get(FIRMWARE).map(String::as_str),
                        Some(bios),
                        "{id}: {components:?}"
                    );
                    assert_eq!(fleet.bios(n), bios, "{id}: the emulator's own BiosVersion");
                    assert!(
                        components.keys().any(|c| c != FIRMWARE),
                        "{id}: nothing from the firmware inventory: {components:?}"
                    );
                }
                Via::Local | Via::Ssh => {
                    assert_eq!(
                        components.get("hello").map(String::as_str),
                        Some(hello),
                        "{id}: {components:?}"
                    );
                }
            }
        }
    };
    check(&before, "1.0.0", "1.0");
    let id = fleet.start(&daemon);
    wait(&daemon, &id, 0);
    for (device, (state, reason)) in device_states(&daemon, &id) {
        assert_eq!(state, "done", "{device}: {reason}");
    }
    fleet.assert_all_fixed_once();
    // A scan after it reads the fixed versions back from the peers.
    check(&fleet.scan(&daemon), "1.1.0", "1.1");
}

#[test]
fn a_package_failing_in_the_canary_ring_halts_it_and_rolls_its_devices_back() {
    let fleet = Fleet::new();
    // The package fails on two canary devices: beyond the ring's budget of one.
    peers::break_device(fleet.root("canary-pkg-3"));
    peers::break_device(fleet.root("canary-pkg-4"));
    let daemon = fleet.daemon();
    let id = fleet.start(&daemon);
    wait(&daemon, &id, 3);
    let status = daemon.json(&["status", &id, "--json"]);
    assert_eq!(status["state"], "halted", "{status}");
    assert_eq!(status["ring"], "canary", "{status}");
    let states = device_states(&daemon, &id);

    // The lab ring completed and stays patched.
    assert_eq!(fleet.bios(1), "1.1.0");
    assert_eq!(
        peers::dpkg_version(fleet.root("lab-pkg-1"), "hello").as_deref(),
        Some("1.1")
    );
    // Canary devices that installed are back at their previous real version.
    assert_eq!(states["canary-bmc-1"].0, "rolled-back", "{states:?}");
    assert_eq!(fleet.bios(2), "1.0.0");
    assert_eq!(fleet.flashes(2), ["1.0.0->1.1.0", "1.1.0->1.0.0"]);
    for device in ["canary-pkg-1", "canary-pkg-2"] {
        let (state, reason) = &states[device];
        assert_eq!(state, "rolled-back", "{device}: {reason}");
        assert_eq!(
            peers::dpkg_version(fleet.root(device), "hello").as_deref(),
            Some("1.0"),
            "{device}"
        );
        assert_eq!(fleet.installs(device, "1.1"), 1, "{device}");
        assert_eq!(
            fleet.installs(device, "1.0"),
            2,
            "{device}: set up, then rolled back"
        );
    }
    // The failures are real dpkg failures, named. The failed devices are rolled back
    // too, and since every postinst fails on them, so are their rollbacks, with
    // dpkg's error.
    let devices = daemon.json(&["devices", &id, "--json"]);
    assert_valid("devices.v1.json", &devices);
    for device in ["canary-pkg-3", "canary-pkg-4"] {
        let (state, reason) = &states[device];
        assert_eq!(state, "rollback-failed", "{device}");
        assert!(
            reason.contains("configuration failed on this device"),
            "{device}: {reason}"
        );
        let shown = devices["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == device)
            .unwrap();
        let why = shown["rollback_reason"].as_str().unwrap_or_default();
        assert!(
            why.contains("configuration failed on this device"),
            "{device}: {why}"
        );
    }
    // After a fix on one of them, the operator rolls that device back: at 1.0,
    // configured.
    std::fs::remove_file(fleet.root("canary-pkg-3").join(peers::FAIL_MARKER)).unwrap();
    let out = daemon.cli(&["rollback", &id, "--device", "canary-pkg-3"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait(&daemon, &id, 3);
    let states = device_states(&daemon, &id);
    assert_eq!(states["canary-pkg-3"].0, "rolled-back", "{states:?}");
    assert_eq!(states["canary-pkg-4"].0, "rollback-failed", "{states:?}");
    assert_eq!(
        peers::dpkg_version(fleet.root("canary-pkg-3"), "hello").as_deref(),
        Some("1.0")
    );
    // The broad ring never started: nothing touched its devices.
    assert_eq!(fleet.bios(3), "1.0.0");
    assert!(fleet.flashes(3).is_empty());
    for device in ["broad-pkg-1", "broad-pkg-2"] {
        assert_eq!(states[device].0, "pending", "{device}");
        assert_eq!(fleet.installs(device, "1.1"), 0, "{device}");
        assert_eq!(
            peers::dpkg_version(fleet.root(device), "hello").as_deref(),
            Some("1.0")
        );
    }

    // The other fixed too, the operator retries the failed devices: the canary ring
    // runs again (the devices the halt rolled back install again) and the rollout
    // goes on to the end.
    std::fs::remove_file(fleet.root("canary-pkg-4").join(peers::FAIL_MARKER)).unwrap();
    let out = daemon.cli(&["retry", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait(&daemon, &id, 0);
    for (device, (state, reason)) in device_states(&daemon, &id) {
        assert_eq!(state, "done", "{device}: {reason}");
    }
    for device in ["canary-pkg-3", "canary-pkg-4", "broad-pkg-1"] {
        assert_eq!(
            peers::dpkg_version(fleet.root(device), "hello").as_deref(),
            Some("1.1"),
            "{device}"
        );
    }
    assert_eq!(fleet.bios(3), "1.1.0");
}

#[test]
fn killing_the_engine_mid_rollout_and_restarting_it_installs_nothing_twice() {
    let fleet = Fleet::new();
    let mut daemon = fleet.daemon();
    let id = fleet.start(&daemon);
    let total = FLEET.len();
    // Killed (SIGKILL) each time the peers count one more install, a little later each
    // time (0 to 60 ms), so that kills land before, during and after plugin calls.
    let mut kills = 0;
    for at_least in 1..total {
        let started = Instant::now();
        while fleet.installs_so_far() < at_least {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "no progress: {} installs",
                fleet.installs_so_far()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis((at_least as u64 * 37) % 61));
        if fleet.installs_so_far() >= total {
            break;
        }
        let mut child = daemon.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        daemon = fleet.daemon();
    }
    assert!(
        kills >= 3,
        "killed only {kills} times before the rollout ended"
    );
    wait(&daemon, &id, 0);
    fleet.assert_all_fixed_once();
}

/// Issue 12: a user who has only the binary runs a package rollout with the bundled
/// plugins named by name (`--source csaf-source --installer dpkg-installer`, devices
/// naming `installer = "dpkg-installer"`), the CSAF feed the operator's own, named in
/// the config alone; the same rings, real dpkg on the peers, each device installed once.
#[test]
fn a_package_rollout_runs_through_the_bundled_plugins_named_by_name() {
    let fleet = Fleet::packages_by_name();
    assert!(
        fleet.serve_args.iter().all(|a| !a.contains(".plugin.toml")),
        "{:?}",
        fleet.serve_args
    );
    let daemon = fleet.daemon();
    let id = fleet.start(&daemon);
    wait(&daemon, &id, 0);
    let states = device_states(&daemon, &id);
    assert_eq!(states.len(), fleet.devices.len(), "{states:?}");
    for (device, (state, reason)) in states {
        assert_eq!(state, "done", "{device}: {reason}");
    }
    fleet.assert_all_fixed_once();
    let status = daemon.json(&["status", &id, "--json"]);
    let rings: Vec<&str> = status["rings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(rings, ["lab", "canary", "broad"], "{status}");
}

/// Issue 14: the inventory is stale. Two devices really run hello 0.9 (upgraded down by
/// hand, restored from an old image) while the file says 1.0. A fleet scan through the
/// daemon reads the real versions with dpkg-query (locally and over SSH); the rollout
/// plans from them; the canary ring fails on its broken device and halts, and the
/// canary device that had installed is rolled back to the version it really had
/// (0.9), not to the file's 1.0.
#[test]
fn a_scan_corrects_a_stale_inventory_and_the_rollback_returns_to_the_real_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let sshd = Sshd::start(&path);
    let debs = path.join("debs");
    std::fs::create_dir_all(&debs).unwrap();
    let old = peers::deb(&debs, "hello", "0.9", false);
    let declared = peers::deb(&debs, "hello", "1.0", false);
    let fix = peers::deb(&debs, "hello", "1.1", false);
    let mut files = HashMap::new();
    files.insert(
        "/csaf/index.txt".to_string(),
        b"2022/exl-2022-0001.json\n2023/exl-2023-0001.json\n2024/exl-2024-0001.json\n".to_vec(),
    );
    for (id, version, deb, at) in [
        ("EXL-2022-0001", "0.9", &old, "2022-03-01T00:00:00Z"),
        ("EXL-2023-0001", "1.0", &declared, "2023-03-01T00:00:00Z"),
        ("EXL-2024-0001", "1.1", &fix, "2024-09-10T00:00:00Z"),
    ] {
        let year = &at[..4];
        files.insert(
            format!("/csaf/{year}/{}.json", id.to_lowercase()),
            advisory(id, version, deb, at),
        );
    }
    let feeds = peers::serve_files(files);
    // (id, ring tag, over SSH, really installed)
    let fleet = [
        ("lab-1", "lab", false, &old),
        ("canary-1", "canary", true, &old),
        ("canary-2", "canary", false, &declared),
    ];
    let mut roots = BTreeMap::new();
    let mut inventory = String::new();
    for (id, tag, ssh, real) in fleet {
        let root = peers::device_root(&path, id, real);
        let transport = if ssh {
            format!(
                "{{ kind = \"ssh\", address = \"127.0.0.1:{}\", user = {}, credentials = \"test-ssh\" }}\nfacts = {{ \"dpkg.root\" = {} }}",
                sshd.port,
                toml_str(&sshd.user),
                toml_str(&root.display().to_string())
            )
        } else {
            format!(
                "{{ kind = \"local\", root = {} }}",
                toml_str(&root.display().to_string())
            )
        };
        // The file says 1.0 everywhere.
        inventory.push_str(&format!(
            "[[devices]]\nid = \"{id}\"\ntags = [\"{tag}\"]\nversion-scheme = \"deb\"\ntransport = {transport}\ncomponents = {{ hello = \"1.0\" }}\n\n"
        ));
        roots.insert(id, root);
    }
    peers::break_device(&roots["canary-2"]);
    let config = format!(
        "[credentials.test-ssh]\nssh_key = {}\nknown_hosts = {}\n\n[plugins.dpkg-installer]\nexec = [\"dpkg\", \"dpkg-query\", \"sha256sum\", \"cat\"]\n\n[plugins.csaf-source]\nhttp = [\"{{setting:index}}\"]\nsettings = {{ index = \"{feeds}/csaf/index.txt\" }}\n",
        toml_str(&sshd.key.display().to_string()),
        toml_str(&sshd.known_hosts.display().to_string()),
    );
    let write = |name: &str, text: &str| {
        let file = path.join(name);
        std::fs::write(&file, text).unwrap();
        file.display().to_string()
    };
    let config = write("ringleader.toml", &config);
    let inventory = write("inventory.toml", &inventory);
    let policy = write(
        "policy.toml",
        "name = \"stale\"\n[[rings]]\nname = \"lab\"\nselect = { tags = [\"lab\"] }\n[[rings]]\nname = \"canary\"\nselect = { tags = [\"canary\"] }\nmax_failures = 0\n[on_halt]\nrollback = \"failed-ring\"\n",
    );
    let daemon = Daemon::start_with(
        &path.join("data"),
        &[
            "--config",
            &config,
            "--source",
            "csaf-source",
            "--installer",
            "dpkg-installer",
        ],
    );

    // The scan reads what dpkg has on each root, and names the difference.
    let out = daemon.cli(&["fleet", "scan", "--inventory", &inventory, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let scan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_valid("fleet-scan.v1.json", &scan);
    assert_eq!(scan["ok"], 3, "{scan}");
    for (id, real) in [("lab-1", "0.9"), ("canary-1", "0.9"), ("canary-2", "1.0")] {
        let device = daemon.json(&["fleet", "device", id, "--json"]);
        assert_valid("fleet-device.v1.json", &device);
        let hello = device["last_scan"]["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "hello")
            .unwrap_or_else(|| panic!("{device}"));
        assert_eq!(hello["version"], real, "{id}");
        assert_eq!(hello["scheme"], "deb", "{id}");
        let differs = device["differences"].as_array().unwrap();
        assert_eq!(differs.len(), usize::from(real != "1.0"), "{id}: {device}");
    }

    // The rollout plans from the scans and rolls back to what the device really had.
    let out = daemon.cli(&[
        "rollout",
        "start",
        "--policy",
        &policy,
        "--inventory",
        &inventory,
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let started: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = started["id"].as_str().unwrap().to_string();
    wait(&daemon, &id, 3);
    let states = device_states(&daemon, &id);
    assert_eq!(states["lab-1"].0, "done", "{states:?}");
    // The broken device fails, and its own rollback fails too (every maintainer script
    // fails on it), the reason kept.
    assert_eq!(states["canary-2"].0, "rollback-failed", "{states:?}");
    assert!(
        states["canary-2"]
            .1
            .contains("configuration failed on this device"),
        "{states:?}"
    );
    assert_eq!(states["canary-1"].0, "rolled-back", "{states:?}");
    assert_eq!(
        peers::dpkg_version(&roots["lab-1"], "hello").as_deref(),
        Some("1.1")
    );
    assert_eq!(
        peers::dpkg_version(&roots["canary-1"], "hello").as_deref(),
        Some("0.9"),
        "back at the version it really had, not the inventory's 1.0"
    );
    // Its record in the registry names the rollout and who started it.
    let record = daemon.json(&["fleet", "device", "canary-1", "--json"]);
    assert_eq!(record["rollouts"][0]["rollout"], id.as_str(), "{record}");
    assert_eq!(record["rollouts"][0]["state"], "rolled-back", "{record}");
    assert_valid("fleet-device.v1.json", &record);
    let kinds: Vec<&str> = record["rollouts"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"step-succeeded"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k.starts_with("rollback")), "{kinds:?}");
}
