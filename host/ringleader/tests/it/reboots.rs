//! Reboots through the daemon with the bundled simulated plugins: a ring that reboots
//! each device once after its last step, a ring that leaves restarts pending (status,
//! devices, a scan and compliance say so), an operator's rollback that reboots again,
//! a device that never comes back failing at `reboot_timeout`, and a daemon killed
//! while a device restarts that does not reboot it a second time.
//!
//! Each device runs firmware the simulated vendor fixes: BMC 7.10.30 (no restart),
//! then BIOS 2.19.1 and NIC 22.31.6 (each needing a restart, each the next one's
//! prerequisite). `sim.reboot-seconds` makes a device's restart take that long.

use ringleader_tests::daemon::*;
use std::path::Path;
use std::time::{Duration, Instant};

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Servers `(id, tag, extra facts)`, each with the firmware the vendor fixes.
fn inventory(dir: &Path, devices: &[(&str, &str, &str)]) -> String {
    let mut out = String::new();
    for (id, tag, facts) in devices {
        out.push_str(&format!(
            "[[devices]]\nid = \"{id}\"\ntags = [\"{tag}\"]\ncomponents = {{ bmc-firmware = \"7.0.0\", bios = \"2.10.0\", nic-firmware = \"22.0.0\" }}\nfacts = {{ \"sim.seed\" = \"1\"{facts} }}\n\n"
        ));
    }
    write(dir, "fleet.toml", &out)
}

/// The boot id a fresh scan of `id` reads, and whether it says a restart is pending.
fn scanned_boot(daemon: &Daemon, id: &str) -> (String, bool) {
    let out = daemon.cli(&["fleet", "scan", "--device", id, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc = daemon.json(&["fleet", "device", id, "--json"]);
    assert_valid("fleet-device.v1.json", &doc);
    let boot = &doc["last_scan"]["boot"];
    (
        boot["boot_id"].as_str().unwrap_or_default().to_string(),
        boot["reboot_pending"].as_bool().unwrap(),
    )
}

#[test]
fn a_ring_reboots_each_device_once_and_another_leaves_restarts_pending_in_every_view() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"));
    let policy = write(
        dir.path(),
        "policy.toml",
        r#"
name = "firmware"
[[rings]]
name = "lab"
select = { tags = ["lab"] }
reboot = "if-needed"
reboot_timeout = "1m"
[[rings]]
name = "rest"
select = "rest"
reboot = "never"
"#,
    );
    let inventory = inventory(
        dir.path(),
        &[
            ("srv-1", "lab", ", \"sim.reboot-seconds\" = \"1\""),
            ("srv-2", "lab", ""),
            ("srv-3", "prod", ""),
            ("srv-4", "prod", ""),
        ],
    );
    // The plan: three steps, one reboot, after the last (NIC firmware, whose
    // prerequisite, the BIOS, needs a restart too).
    let out = daemon.cli(&[
        "plan",
        "--policy",
        &policy,
        "--inventory",
        &inventory,
        "--explain",
        "srv-1",
    ]);
    let plan = text(&out.stdout);
    assert_eq!(plan.matches(", then reboot").count(), 1, "{plan}");
    assert!(
        plan.lines()
            .any(|l| l.contains("3. acme-nic-22.31.6") && l.contains(", then reboot")),
        "{plan}"
    );
    // In the ring that never reboots, explain says the restart is left pending.
    let out = daemon.cli(&[
        "plan",
        "--policy",
        &policy,
        "--inventory",
        &inventory,
        "--explain",
        "srv-3",
    ]);
    let plan = text(&out.stdout);
    assert!(!plan.contains(", then reboot"), "{plan}");
    assert_eq!(
        plan.matches("left installed, reboot pending (the ring's reboot = \"never\")")
            .count(),
        2,
        "BIOS and NIC: {plan}"
    );

    let id = daemon.start_rollout(&policy, &inventory);
    let status = daemon.ended(&id, 0);
    let (lab, rest) = (&status["rings"][0], &status["rings"][1]);
    assert_eq!(
        (&lab["done"], &lab["reboots"]),
        (&2.into(), &2.into()),
        "{status}"
    );
    assert_eq!(lab["reboot_pending"], 0, "{status}");
    assert_eq!(
        (&rest["done"], &rest["reboots"]),
        (&2.into(), &0.into()),
        "{status}"
    );
    assert_eq!(rest["reboot_pending"], 2, "{status}");
    let shown = text(&daemon.cli(&["status", &id]).stdout);
    assert!(shown.contains("REBOOT PENDING"), "{shown}");

    let devices = daemon.devices(&id);
    for (id, pending) in [("srv-1", false), ("srv-2", false), ("srv-3", true)] {
        let d = device_in(&devices, id);
        assert_eq!(d["state"], "done", "{d}");
        assert_eq!(
            d["reboot_pending"].as_bool().unwrap_or(false),
            pending,
            "{d}"
        );
        assert_eq!(d["versions"]["nic-firmware"], "22.31.6", "{d}");
    }
    // One reboot per lab device, after its last step, each back with another boot id.
    let finished = daemon
        .events(&id)
        .into_iter()
        .filter(|e| e["type"] == "reboot-finished")
        .collect::<Vec<_>>();
    assert_eq!(finished.len(), 2, "{finished:?}");
    assert!(finished.iter().all(|e| e["ok"] == true), "{finished:?}");
    assert_eq!(scanned_boot(&daemon, "srv-1"), ("sim-boot-1".into(), false));
    // Never: the device says so when scanned, and compliance reports it.
    assert_eq!(scanned_boot(&daemon, "srv-3"), ("sim-boot-0".into(), true));
    assert_eq!(scanned_boot(&daemon, "srv-4"), ("sim-boot-0".into(), true));
    let doc = daemon.json(&["compliance", "--json"]);
    assert_valid("compliance.v1.json", &doc);
    assert_eq!(doc["summary"]["reboot_pending"], 2, "{}", doc["summary"]);
    let pending: Vec<&str> = doc["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["reboot_pending"] == true)
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(pending, ["srv-3", "srv-4"]);
    let shown = text(&daemon.cli(&["compliance"]).stdout);
    assert!(shown.contains("2 reboot pending"), "{shown}");
}

#[test]
fn a_device_that_never_comes_back_fails_at_reboot_timeout_and_a_rollback_reboots_again() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"));
    let policy = write(
        dir.path(),
        "policy.toml",
        r#"
name = "firmware"
[[rings]]
name = "lab"
select = { tags = ["lab"] }
reboot_timeout = "1m"
[[rings]]
name = "pilot"
select = { tags = ["pilot"] }
max_failures = 0
reboot_timeout = "5s"
[on_halt]
rollback = "none"
"#,
    );
    let inventory = inventory(
        dir.path(),
        &[
            ("srv-1", "lab", ""),
            ("srv-2", "pilot", ", \"sim.reboot-seconds\" = \"never\""),
        ],
    );
    let id = daemon.start_rollout(&policy, &inventory);
    let status = daemon.ended(&id, 3);
    assert_eq!(status["rings"][0]["reboots"], 1, "{status}");
    assert_eq!(status["rings"][1]["failed"], 1, "{status}");
    let reason = device_in(&daemon.devices(&id), "srv-2")["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains("not back from its reboot within 5s (unresponsive)"),
        "{reason}"
    );
    assert!(
        status["halt_reason"]
            .as_str()
            .is_some_and(|r| r.contains("pilot")),
        "{status}"
    );

    // The operator rolls the lab back: its steps needed a restart, so does going back.
    assert_eq!(scanned_boot(&daemon, "srv-1").0, "sim-boot-1");
    let out = daemon.cli(&["rollback", &id, "--ring", "lab"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status = daemon.ended(&id, 3);
    assert_eq!(status["rings"][0]["rolled_back"], 1, "{status}");
    let d = device_in(&daemon.devices(&id), "srv-1").clone();
    assert_eq!(d["state"], "rolled-back", "{d}");
    assert_eq!(d["versions"]["bios"], "2.10.0", "{d}");
    assert_eq!(d["versions"]["nic-firmware"], "22.0.0", "{d}");
    assert_eq!(scanned_boot(&daemon, "srv-1"), ("sim-boot-2".into(), false));
}

#[test]
fn a_daemon_killed_while_a_device_restarts_does_not_reboot_it_a_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let policy = write(
        dir.path(),
        "policy.toml",
        r#"
name = "firmware"
[[rings]]
name = "lab"
select = "rest"
reboot_timeout = "2m"
"#,
    );
    // Its restart takes 8 s: the daemon is killed in the middle of it.
    let inventory = inventory(
        dir.path(),
        &[("srv-1", "lab", ", \"sim.reboot-seconds\" = \"8\"")],
    );
    let mut daemon = Daemon::start_with(&data, &["--log", "info"]);
    let id = daemon.start_rollout(&policy, &inventory);
    let started = Instant::now();
    while !daemon.log().contains("srv-1: restarting") {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "srv-1 never restarted: {}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut child = daemon.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();

    let daemon = Daemon::start_with(&data, &["--log", "info"]);
    let status = daemon.ended(&id, 0);
    assert_eq!(status["rings"][0]["done"], 1, "{status}");
    // Resumed, it found the device restarting, waited, and saw it come back: one
    // restart in all, not two.
    assert!(
        !daemon.log().contains("srv-1: restarting"),
        "rebooted again: {}",
        daemon.log()
    );
    assert!(
        daemon
            .log()
            .contains("srv-1: resumed reboot wait, the device was not rebooted again"),
        "{}",
        daemon.log()
    );
    assert_eq!(scanned_boot(&daemon, "srv-1"), ("sim-boot-1".into(), false));
    let d = device_in(&daemon.devices(&id), "srv-1").clone();
    assert_eq!(d["versions"]["nic-firmware"], "22.31.6", "{d}");
}
