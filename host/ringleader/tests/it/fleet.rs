//! The fleet registry through the daemon, as an operator uses it: `fleet scan` reads
//! what simulated devices really have (a stale inventory, a component the file does
//! not list), an unreachable device keeps its error and counts as not scanned
//! recently, the registry survives a restart, and a rollout plans from what the scans
//! found. Every JSON answer is validated against its published schema.

use ringleader_tests::daemon::*;
use serde_json::Value;

const QUICK: &str = r#"
name = "quick"
[[rings]]
name = "all"
select = "rest"
max_failures = "100%"
"#;

/// Three simulated devices whose real firmware is not what the file says, and one
/// reached over SSH at a port where nothing listens.
const INVENTORY: &str = r#"
[[devices]]
id = "srv-1"
tags = ["lab"]
components = { bmc-firmware = "7.0.0", bios = "2.10.0" }
# The BIOS was updated by hand: the device runs 2.19.1 (the fix) already.
facts = { "sim.drift.bios" = "2.19.1" }

[[devices]]
id = "srv-2"
components = { bmc-firmware = "7.0.0", bios = "2.10.0" }
# Someone installed an agent the inventory does not list.
facts = { "sim.drift.agent" = "3.2" }

[[devices]]
id = "srv-3"
components = { bmc-firmware = "7.0.0", bios = "2.10.0" }

[[devices]]
id = "gone-1"
transport = { kind = "ssh", address = "127.0.0.1:1" }
components = { bios = "2.10.0" }
"#;

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn a_scan_records_what_devices_really_have_and_rollouts_plan_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let inventory = write(dir.path(), "fleet.toml", INVENTORY);
    let policy = write(dir.path(), "quick.toml", QUICK);
    let daemon = Daemon::start(&data);

    // Scanning needs the token (it reaches devices) and names what it did.
    let out = daemon.cli_as(&["fleet", "scan", "--inventory", &inventory], None);
    assert_ne!(out.status.code(), Some(0));
    let out = daemon.cli(&["fleet", "scan", "--inventory", &inventory, "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "one device failed: {}",
        text(&out.stderr)
    );
    let scan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_valid("fleet-scan.v1.json", &scan);
    assert_eq!(
        (scan["scanned"].as_u64(), scan["ok"].as_u64()),
        (Some(4), Some(3))
    );
    let gone = device_in(&scan, "gone-1");
    assert_eq!(gone["ok"], false);
    assert_eq!(gone["error"]["kind"], "unreachable", "{gone}");

    let list = daemon.json(&["fleet", "list", "--json"]);
    assert_valid("fleet.v1.json", &list);
    assert_eq!(list["not_scanned_recently"], 1, "{list}");
    let srv2 = device_in(&list, "srv-2");
    assert_eq!(srv2["components"], 3, "{srv2}");
    assert_eq!(srv2["differences"], 1, "the agent: {srv2}");
    let gone = device_in(&list, "gone-1");
    assert_eq!(gone["last_seen"], Value::Null);
    assert_eq!(gone["error"]["kind"], "unreachable");

    // One device in detail: what the file says, what the device has, the difference.
    let srv1 = daemon.json(&["fleet", "device", "srv-1", "--json"]);
    assert_valid("fleet-device.v1.json", &srv1);
    let bios = srv1["last_scan"]["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "bios")
        .unwrap();
    assert_eq!(bios["version"], "2.19.1");
    assert_eq!(
        srv1["differences"],
        serde_json::json!([{"kind": "version", "component": "bios", "declared": "2.10.0", "observed": "2.19.1"}])
    );
    let shown = daemon.cli(&["fleet", "device", "srv-1"]);
    let shown = text(&shown.stdout);
    assert!(shown.contains("last scan"), "{shown}");
    assert!(shown.contains("version    bios"), "{shown}");
    let missing = daemon.cli(&["fleet", "device", "nope"]);
    assert_eq!(
        missing.status.code(),
        Some(6),
        "not found: {}",
        text(&missing.stderr)
    );
    assert!(text(&missing.stderr).contains("no device `nope`"));

    // The registry is durable: a restarted daemon has every scan.
    assert!(daemon.terminate().success());
    let daemon = Daemon::start(&data);
    let again = daemon.json(&["fleet", "device", "srv-1", "--json"]);
    assert_eq!(again["last_scan"], srv1["last_scan"]);

    // A rollout plans from what the devices have: srv-1 runs the BIOS fix already,
    // so only its BMC update is planned; the others get both.
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
    daemon.wait_for(&id, |s| s["state"] != "preparing");
    let reason = |device: &str| {
        let (code, explain) = daemon.http(
            "GET",
            &format!("/v1/rollouts/{id}/explain/{device}"),
            None,
            "",
        );
        assert_eq!(code, 200, "{explain}");
        let bios = explain["patches"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["patch"] == "acme-bios-2.19.1")
            .cloned()
            .unwrap_or_else(|| panic!("{explain}"));
        (
            bios["reason"].as_str().unwrap().to_string(),
            bios["detail"].to_string(),
        )
    };
    let (why, detail) = reason("srv-1");
    assert_eq!(why, "already-at-or-above", "{detail}");
    assert!(detail.contains("2.19.1"), "{detail}");
    assert_eq!(reason("srv-3").0, "planned");
    // The rollout is part of the device's record, with who started it.
    let out = daemon.cli(&["status", &id, "--wait"]);
    assert!(out.status.code().is_some(), "{}", text(&out.stderr));
    let record = daemon.json(&["fleet", "device", "srv-3", "--json"]);
    assert_valid("fleet-device.v1.json", &record);
    assert_eq!(record["rollouts"][0]["rollout"], id.as_str(), "{record}");
    assert_eq!(record["rollouts"][0]["started_by"], "api-token", "{record}");
}

/// A daemon killed (SIGKILL) in the middle of its periodic scan keeps every device the
/// scan had recorded: each is flushed as it is written. After the restart every
/// record reads back, none older than it was seen before the kill.
#[test]
fn a_kill_during_a_periodic_scan_loses_nothing_already_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut inventory = String::new();
    for i in 0..1500 {
        inventory.push_str(&format!(
            "[[devices]]\nid = \"srv-{i:04}\"\ncomponents = {{ bios = \"2.10.0\" }}\nfacts = {{ \"sim.drift.bios\" = \"2.1{}.0\" }}\n\n",
            i % 10
        ));
    }
    let inventory = write(dir.path(), "fleet.toml", &inventory);
    let config = write(
        dir.path(),
        "ringleader.toml",
        "[scan]\nevery = \"1s\"\nconcurrency = 1\n",
    );
    let daemon = Daemon::start_with(&data, &["--config", &config]);
    let out = daemon.cli(&["fleet", "scan", "--inventory", &inventory, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let first: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(first["ok"], 1500);
    let last_scans = |list: &Value| -> std::collections::BTreeMap<String, String> {
        list["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["id"].as_str().unwrap().to_string(),
                    d["last_scan"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    let before = last_scans(&daemon.json(&["fleet", "list", "--json"]));
    // Wait until the periodic scan has rescanned some devices but not all, then kill.
    let started = std::time::Instant::now();
    let seen = loop {
        let now = last_scans(&daemon.json(&["fleet", "list", "--json"]));
        let newer = now.iter().filter(|(id, at)| **at > before[*id]).count();
        if newer > 0 && newer < now.len() {
            break now;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "the periodic scan never ran part way: {newer} of {} newer",
            now.len()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut daemon = daemon;
    let mut child = daemon.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    drop(daemon);
    let daemon = Daemon::start(&data);
    let after = daemon.json(&["fleet", "list", "--json"]);
    assert_valid("fleet.v1.json", &after);
    let after = last_scans(&after);
    assert_eq!(after.len(), 1500);
    for (id, at) in &seen {
        assert!(
            after[id] >= *at,
            "{id}: {} before the kill, {} after",
            at,
            after[id]
        );
    }
}

/// Sets what device `id` has of `component` behind the daemon's back (stopped), as an
/// administrator restoring a snapshot would.
fn by_hand(data: &std::path::Path, id: &str, component: &str, version: &str) {
    let devices = ringleader_runtime::sim_device::SimDevices::open(&data.join("devices")).unwrap();
    devices.set_installed(id, component, version).unwrap();
}

fn scanned(daemon: &Daemon, id: &str) -> Value {
    let out = daemon.cli(&["fleet", "scan", "--device", id, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc = daemon.json(&["fleet", "device", id, "--json"]);
    assert_valid("fleet-device.v1.json", &doc);
    doc
}

/// The last history entry about the BIOS.
fn last_bios(doc: &Value) -> Value {
    doc["history"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|h| h["component"] == "bios")
        .cloned()
        .unwrap_or_else(|| panic!("no BIOS history in {doc}"))
}

fn bios(doc: &Value) -> &str {
    doc["last_scan"]["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "bios")
        .and_then(|c| c["version"].as_str())
        .unwrap()
}

#[test]
fn a_downgrade_behind_ringleaders_back_is_drift_until_the_version_is_back_and_a_rollback_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let inventory = write(
        dir.path(),
        "fleet.toml",
        r#"
[[devices]]
id = "srv-1"
tags = ["lab"]
components = { bmc-firmware = "7.0.0", bios = "2.10.0" }

[[devices]]
id = "srv-2"
tags = ["lab"]
components = { bmc-firmware = "7.0.0", bios = "2.10.0" }

[[devices]]
id = "srv-3"
components = { bmc-firmware = "7.0.0", bios = "2.10.0" }
"#,
    );
    let policy = write(
        dir.path(),
        "policy.toml",
        r#"
name = "firmware"
[[rings]]
name = "lab"
select = { tags = ["lab"] }
[[rings]]
name = "rest"
select = "rest"
approval = "required"
"#,
    );
    let daemon = Daemon::start(&data);
    let out = daemon.cli(&["fleet", "scan", "--inventory", &inventory, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = daemon.start_rollout(&policy, &inventory);
    daemon.wait_for(&id, |s| s["state"] == "awaiting-approval");
    for device in ["srv-1", "srv-2"] {
        assert_eq!(bios(&scanned(&daemon, device)), "2.19.1", "{device}");
    }

    // The operator rolls srv-1 back: its BIOS goes down, and that is no drift.
    let out = daemon.cli(&["rollback", &id, "--device", "srv-1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // (`devices` answers once the rollout is prepared; until then it says so.)
    daemon.wait_for(&id, |_| {
        let out = daemon.cli(&["devices", &id, "--json"]);
        out.status.success()
            && serde_json::from_slice::<Value>(&out.stdout)
                .is_ok_and(|d| device_in(&d, "srv-1")["state"] == "rolled-back")
    });
    let doc = scanned(&daemon, "srv-1");
    assert_eq!(bios(&doc), "2.10.0");
    assert_eq!(doc["drift"], false, "{doc}");
    let last = last_bios(&doc);
    assert_eq!(last["kind"], "changed", "{last}");
    assert_eq!(
        last["detail"],
        format!("bios: 2.19.1 -> 2.10.0 (rolled back by rollout {id})")
    );

    // srv-2's BIOS goes back by hand: drift, both versions in its history.
    drop(daemon);
    by_hand(&data, "srv-2", "bios", "2.10.0");
    let daemon = Daemon::start(&data);
    let doc = scanned(&daemon, "srv-2");
    assert_eq!(doc["drift"], true, "{doc}");
    let last = last_bios(&doc);
    assert_eq!(
        (&last["kind"], &last["from"], &last["to"]),
        (&"drift".into(), &"2.19.1".into(), &"2.10.0".into()),
        "{last}"
    );
    let list = daemon.json(&["fleet", "list", "--json"]);
    assert_valid("fleet.v1.json", &list);
    assert_eq!(device_in(&list, "srv-2")["drift"], true);
    assert_eq!(device_in(&list, "srv-1")["drift"], false);
    let out = daemon.cli(&["fleet", "device", "srv-2"]);
    assert!(
        text(&out.stdout).contains("drift: a component went back to a lower version"),
        "{}",
        text(&out.stdout)
    );

    // Patched again (by hand here): no longer drift, and the history says so.
    drop(daemon);
    by_hand(&data, "srv-2", "bios", "2.19.1");
    let daemon = Daemon::start(&data);
    let doc = scanned(&daemon, "srv-2");
    assert_eq!(doc["drift"], false, "{doc}");
    let last = last_bios(&doc);
    assert_eq!(last["kind"], "changed", "{last}");
    assert!(
        last["detail"].as_str().unwrap().contains("no longer drift"),
        "{last}"
    );
}

#[test]
fn scans_never_run_on_a_device_while_a_rollout_step_does() {
    // Installs take 300 ms of real time on each device; the daemon scans every second
    // on its own and the operator asks for scans all along. Each simulated device
    // counts a scan that reaches it while an install runs: there must be none.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut inventory = String::new();
    for i in 0..24 {
        inventory.push_str(&format!(
            "[[devices]]\nid = \"srv-{i:02}\"\ncomponents = {{ bmc-firmware = \"7.0.0\" }}\nfacts = {{ \"sim.install-ms\" = \"300\" }}\n\n"
        ));
    }
    let inventory = write(dir.path(), "fleet.toml", &inventory);
    let policy = write(
        dir.path(),
        "policy.toml",
        "name = \"slow\"\n[[rings]]\nname = \"all\"\nselect = \"rest\"\nmax_parallel = 6\n",
    );
    let config = write(
        dir.path(),
        "ringleader.toml",
        "[scan]\nevery = \"1s\"\nconcurrency = 4\n",
    );
    let daemon = Daemon::start_with(&data, &["--config", &config]);
    let out = daemon.cli(&["fleet", "scan", "--inventory", &inventory, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = daemon.start_rollout(&policy, &inventory);
    let mut busy = 0;
    let mut scans = 0;
    loop {
        let status = daemon.json(&["status", &id, "--json"]);
        if status["state"] == "completed" {
            break;
        }
        // Exit 1 when a device was not scanned (busy here).
        let out = daemon.cli(&["fleet", "scan", "--json"]);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{}",
            text(&out.stderr)
        );
        let scan: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_valid("fleet-scan.v1.json", &scan);
        scans += 1;
        busy += scan["devices"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["error"]["kind"] == "busy")
            .count();
    }
    let status = daemon.ended(&id, 0);
    assert_eq!(status["rings"][0]["done"], 24, "{status}");
    assert_eq!(daemon.terminate().code(), Some(0));
    let devices = ringleader_runtime::sim_device::SimDevices::open(&data.join("devices")).unwrap();
    assert_eq!(devices.total("installs").unwrap(), 24);
    assert_eq!(
        devices.total("overlaps").unwrap(),
        0,
        "a scan reached a device while an install ran on it"
    );
    // Scans met running steps, and left those devices for later.
    assert!(busy > 0, "{scans} scans, none found a device busy");
}

/// `[sources] poll`: the daemon polls its sources for the registry's devices and
/// records each patch as first seen (`GET /v1/publications`, `ringleader
/// publications`), a changed patch as its next revision, and keeps the first sightings
/// across a restart; the metrics count them.
#[test]
fn polled_sources_record_each_patch_as_first_seen_and_keep_it_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let inventory = write(
        dir.path(),
        "fleet.toml",
        "[[devices]]\nid = \"ws-1\"\ncomponents = { openssl = \"3.0.11\" }\n",
    );
    let patch = |fixed: &str| {
        format!(
            "vendor = \"corp\"\n[[patches]]\nid = \"corp-openssl\"\ncomponent = \"openssl\"\nfixed-version = \"{fixed}\"\nkind = \"security\"\nseverity = \"critical\"\nreleased = \"2026-11-20\"\n"
        )
    };
    let feed = dir.path().join("catalog.toml");
    std::fs::write(&feed, patch("3.0.16")).unwrap();
    let config = write(
        dir.path(),
        "ringleader.toml",
        &format!(
            "[sources]\npoll = \"1s\"\n[plugins.catalog-source]\nhttp = [\"{{setting:catalog}}\"]\nsettings = {{ catalog = \"file://{}\" }}\n",
            feed.display()
        ),
    );
    let args = ["--config", &config, "--source", "catalog-source"];
    let daemon = Daemon::start_with(&data, &args);
    let out = daemon.cli(&["fleet", "scan", "--inventory", &inventory]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let published = |daemon: &Daemon, want: usize| -> Value {
        for _ in 0..100 {
            let out = daemon.cli(&["publications", "--json"]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_valid("publications.v1.json", &doc);
            if doc["publications"].as_array().unwrap().len() >= want {
                return doc;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!("fewer than {want} publications: {}", daemon.log());
    };
    let first = published(&daemon, 1);
    let p = &first["publications"][0];
    assert_eq!(p["id"], "corp-openssl");
    assert_eq!(p["severity"], "critical");
    assert_eq!(p["source"], "catalog-source");
    assert_eq!(p["revision"], 1);
    assert_eq!(p["released"], "2026-11-20T00:00:00Z");
    let seen = p["first_seen"].as_str().unwrap().to_string();

    // A new fixed version is a new revision; the unchanged feed adds nothing meanwhile.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(
        published(&daemon, 1)["publications"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let changed = dir.path().join("catalog.toml.new");
    std::fs::write(&changed, patch("3.0.17")).unwrap();
    std::fs::rename(&changed, &feed).unwrap();
    let second = published(&daemon, 2);
    assert_eq!(second["publications"][1]["revision"], 2);
    assert_eq!(second["next"], 2);
    let since = daemon.cli(&["publications", "--since", "1", "--json"]);
    let since: Value = serde_json::from_slice(&since.stdout).unwrap();
    assert_eq!(since["publications"].as_array().unwrap().len(), 1);
    let (code, metrics) = daemon.http("GET", "/metrics", None, "");
    assert_eq!(code, 200);
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains("ringleader_patches_published_total{severity=\"critical\"} 2"),
        "{metrics}"
    );

    // After a restart: the same first sightings, nothing published again.
    drop(daemon);
    let daemon = Daemon::start_with(&data, &args);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let after = published(&daemon, 2);
    assert_eq!(
        after["publications"].as_array().unwrap().len(),
        2,
        "{after}"
    );
    assert_eq!(after["publications"][0]["first_seen"], seen.as_str());
}

/// Time to patch over the daemon's own records: the patches the source polls first
/// saw, the installs of a rollout's log, the registry's devices still lacking a patch.
#[test]
fn time_to_patch_is_measured_from_first_sighting_to_each_install_a_rollout_logged() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = write(
        dir.path(),
        "fleet.toml",
        INVENTORY
            .split("[[devices]]\nid = \"gone-1\"")
            .next()
            .unwrap(),
    );
    let policy = write(dir.path(), "quick.toml", QUICK);
    let config = write(dir.path(), "ringleader.toml", "[sources]\npoll = \"1s\"\n");
    let daemon = Daemon::start_with(&dir.path().join("data"), &["--config", &config]);
    let out = daemon.cli(&["fleet", "scan", "--inventory", &inventory]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = |extra: &[&str]| -> Value {
        let mut args = vec!["report", "time-to-patch", "--json"];
        args.extend_from_slice(extra);
        let out = daemon.cli(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_valid("time-to-patch.v1.json", &doc);
        doc
    };
    let mut before = Value::Null;
    for _ in 0..100 {
        before = report(&[]);
        if before["publications"].as_u64() > Some(0) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let sum = |doc: &Value, key: &str| -> u64 {
        doc["severities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s[key].as_u64().unwrap())
            .sum()
    };
    // Published, needed (the registry's scans say so), nothing installed yet, nothing
    // decided: a week has not passed.
    assert!(sum(&before, "outstanding") >= 2, "{before:#}");
    assert_eq!(sum(&before, "installed"), 0);
    for s in before["severities"].as_array().unwrap() {
        assert!(
            s["median_seconds"].is_null() && s["within_7_days"].is_null(),
            "{s}"
        );
    }

    let out = daemon.cli(&[
        "rollout",
        "start",
        "--policy",
        &policy,
        "--inventory",
        &inventory,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    let out = daemon.cli(&["status", &id, "--wait"]);
    assert!(out.status.code().is_some(), "{}", text(&out.stdout));

    let after = report(&[]);
    assert_eq!(after["rollouts"], 1);
    assert!(after["installs"].as_u64().unwrap() >= 2, "{after:#}");
    assert_eq!(
        sum(&after, "installed"),
        after["installs"].as_u64().unwrap()
    );
    for s in after["severities"].as_array().unwrap() {
        assert_eq!(
            s["pairs"].as_u64(),
            Some(s["installed"].as_u64().unwrap() + s["outstanding"].as_u64().unwrap())
        );
        if s["installed"].as_u64() > Some(0) {
            // Installed within seconds of being first seen: within every window.
            assert!(s["median_seconds"].as_u64().unwrap() < 600, "{s}");
            assert!(s["p95_seconds"].as_u64() >= s["median_seconds"].as_u64());
            assert!(s["within_7_days"].as_f64().unwrap() > 0.0, "{s}");
        }
    }

    // CSV: a header and a row per severity, as the JSON says.
    let out = daemon.cli(&["report", "time-to-patch", "--csv"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header[0], "severity");
    assert_eq!(header[5], "median_seconds");
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), after["severities"].as_array().unwrap().len());
    for (row, s) in rows.iter().zip(after["severities"].as_array().unwrap()) {
        assert_eq!(&row[0], s["severity"].as_str().unwrap());
        assert_eq!(
            row[3].parse::<u64>().unwrap(),
            s["installed"].as_u64().unwrap()
        );
    }

    // For a time before anything was seen: nothing.
    let early = report(&["--at", "2020-01-01T00:00:00Z"]);
    assert_eq!(early["publications"], 0);
    assert_eq!(early["severities"], serde_json::json!([]));
    let out = daemon.cli(&["report", "time-to-patch", "--at", "yesterday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--at is `yesterday`"),
        "{}",
        text(&out.stderr)
    );
    let out = daemon.cli(&["report", "time-to-patch"]);
    assert!(text(&out.stdout).contains("time to patch, from first seen to installed"));
}

/// A source polled on its own interval (`[sources.intervals]`): the catalog every
/// second while the rest wait their hour; a name that is no source stops the daemon.
#[test]
fn a_source_is_polled_on_its_own_interval() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = write(
        dir.path(),
        "fleet.toml",
        "[[devices]]\nid = \"ws-1\"\ncomponents = { openssl = \"3.0.11\" }\n",
    );
    let patch = |id: &str, fixed: &str| {
        format!(
            "[[patches]]\nid = \"{id}\"\ncomponent = \"openssl\"\nfixed-version = \"{fixed}\"\nkind = \"security\"\nseverity = \"high\"\nreleased = \"2026-11-20\"\n"
        )
    };
    let feed = dir.path().join("catalog.toml");
    std::fs::write(
        &feed,
        format!("vendor = \"corp\"\n{}", patch("corp-1", "3.0.12")),
    )
    .unwrap();
    let grants = format!(
        "[plugins.catalog-source]\nhttp = [\"{{setting:catalog}}\"]\nsettings = {{ catalog = \"file://{}\" }}\n",
        feed.display()
    );
    let config = write(
        dir.path(),
        "ringleader.toml",
        &format!(
            "[sources]\npoll = \"1h\"\n[sources.intervals]\ncatalog-source = \"1s\"\n{grants}"
        ),
    );
    let args = [
        "--config",
        &config,
        "--source",
        "catalog-source",
        "--source",
        "sim-vendor-source",
    ];
    let daemon = Daemon::start_with(&dir.path().join("data"), &args);
    let out = daemon.cli(&["fleet", "scan", "--inventory", &inventory]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ids = || -> Vec<String> {
        let doc = daemon.json(&["publications", "--json"]);
        doc["publications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect()
    };
    let wait_for = |id: &str| {
        for _ in 0..100 {
            if ids().iter().any(|i| i == id) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!("{id} never published: {:?}\n{}", ids(), daemon.log());
    };
    wait_for("corp-1");
    std::fs::write(
        &feed,
        format!(
            "vendor = \"corp\"\n{}{}",
            patch("corp-1", "3.0.12"),
            patch("corp-2", "3.0.13")
        ),
    )
    .unwrap();
    // Well within the hour the other sources wait.
    wait_for("corp-2");

    let bad = write(
        dir.path(),
        "bad.toml",
        &format!("[sources.intervals]\ncsaf-sorce = \"1s\"\n{grants}"),
    );
    let out = std::process::Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("other"))
        .args(["--config", &bad, "--source", "catalog-source"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("[sources.intervals] names `csaf-sorce`, which is not a source of this daemon (its sources: catalog-source)"),
        "{}",
        text(&out.stderr)
    );
}
