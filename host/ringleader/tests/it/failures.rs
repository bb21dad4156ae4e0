//! Failures handled to the last device, through the daemon and its clients: a failed
//! device rolled back, a rollback that fails keeping its reason in status, devices and
//! events (text and JSON, schema-validated), an operator's rollback of one device, one
//! ring or every ring after a halt, a retry, and a restart in the middle of an
//! operator's rollback.

use crate::BIN;
use ringleader_tests::daemon::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// The lab halts on its first failure; the policy rolls the ring back (`rollback`) or
/// only stops (`none`).
fn policy(dir: &Path, rollback: &str) -> String {
    let path = dir.join(format!("{rollback}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"
name = "failures"
[[rings]]
name = "lab"
select = {{ tags = ["lab"] }}
max_failures = 0
[[rings]]
name = "rest"
select = "rest"
[on_halt]
rollback = "{rollback}"
"#
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// Simulated devices: `lab` of them in the lab ring, two more in `rest`; `facts`
/// added to the devices named.
fn inventory(dir: &Path, lab: usize, facts: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for i in 0..lab + 2 {
        let id = format!("ws-{i}");
        let extra = facts
            .iter()
            .find(|(d, _)| *d == id)
            .map_or(String::new(), |(_, f)| format!(", {f}"));
        out.push_str(&format!(
            "[[devices]]\nid = \"{id}\"\nsite = \"ams\"\ntimezone = \"Europe/Amsterdam\"\ntags = [{}]\ncomponents = {{ openssl = \"3.0.11\" }}\nfacts = {{ \"sim.seed\" = \"1\"{extra} }}\n\n",
            if i < lab { "\"lab\"" } else { "" }
        ));
    }
    let path = dir.join("fleet.toml");
    std::fs::write(&path, out).unwrap();
    path.display().to_string()
}

#[test]
fn a_failed_device_is_rolled_back_and_a_failed_rollback_keeps_its_reason_in_every_view() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_with(&dir.path().join("data"), &["--log", "info"]);
    let policy = policy(dir.path(), "failed-ring");
    // ws-1's install fails; ws-2's install fails and so does its rollback.
    let inventory = inventory(
        dir.path(),
        3,
        &[
            ("ws-1", "\"sim.fail-permille\" = \"1000\""),
            (
                "ws-2",
                "\"sim.fail-permille\" = \"1000\", \"sim.rollback-fail-permille\" = \"1000\"",
            ),
        ],
    );
    let id = daemon.start_rollout(&policy, &inventory);
    let status = daemon.ended(&id, 3);
    let lab = &status["rings"][0];
    assert_eq!(lab["rolled_back"], 2, "{status}");
    assert_eq!(lab["rollback_failed"], 1, "{status}");
    let out = daemon.cli(&["status", &id]);
    let shown = text(&out.stdout);
    assert!(shown.contains("ROLLBACK FAILED"), "{shown}");

    let devices = daemon.devices(&id);
    // The failed device went back too, its reason kept.
    let failed = device_in(&devices, "ws-1");
    assert_eq!(failed["state"], "rolled-back", "{failed}");
    assert_eq!(failed["versions"]["openssl"], "3.0.11", "{failed}");
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("flash verification error"),
        "{failed}"
    );
    let broken = device_in(&devices, "ws-2");
    assert_eq!(broken["state"], "rollback-failed", "{broken}");
    let why = broken["rollback_reason"].as_str().unwrap();
    assert!(why.contains("the previous image is corrupt"), "{why}");
    assert!(why.contains("back to 3.0.11"), "{why}");
    let out = daemon.cli(&["devices", &id]);
    let shown = text(&out.stdout);
    assert!(
        shown.contains("ws-2: rollback failed: ") && shown.contains("ws-1: failed: "),
        "{shown}"
    );

    let events = daemon.events(&id);
    let finished: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "rollback-finished" && e["ok"] == false)
        .collect();
    assert_eq!(finished.len(), 1, "{events:?}");
    assert_eq!(finished[0]["device"], "ws-2");
    assert!(
        finished[0]["reason"]
            .as_str()
            .unwrap()
            .contains("the previous image is corrupt")
    );
    let out = daemon.cli(&["events", &id]);
    let shown = text(&out.stdout);
    assert!(shown.contains("the previous image is corrupt"), "{shown}");
    // The daemon's log says it at info, with the device.
    let log = daemon.log();
    assert!(
        log.lines().any(|l| l.contains("INFO")
            && l.contains("rollback of ws-2 failed")
            && l.contains("the previous image is corrupt")),
        "{log}"
    );
    // The device's own history says it too.
    let (code, history) = daemon.http("GET", &format!("/v1/rollouts/{id}/devices/ws-2"), None, "");
    assert_eq!(code, 200, "{history}");
    assert_valid("device.v1.json", &history);
    assert!(
        history["device"]["rollback_reason"]
            .as_str()
            .is_some_and(|r| r.contains("the previous image is corrupt")),
        "{history}"
    );
    assert!(
        history["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "rollback-finished" && e["reason"].is_string()),
        "{history}"
    );
}

#[test]
fn after_a_halt_an_operator_rolls_back_one_device_one_ring_or_all_and_retries() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"));
    let policy = policy(dir.path(), "none");
    let inventory = inventory(
        dir.path(),
        3,
        &[("ws-1", "\"sim.fail-permille\" = \"1000\"")],
    );
    let id = daemon.start_rollout(&policy, &inventory);
    let status = daemon.ended(&id, 3);
    assert_eq!(
        status["rings"][0]["rolled_back"], 0,
        "the policy only stops"
    );
    assert_eq!(status["rings"][0]["failed"], 1, "{status}");

    // Nothing applies: a 409 with the reason, and nothing is logged.
    let refused = |args: &[&str], why: &str| {
        let out = daemon.cli(args);
        assert!(!out.status.success(), "{args:?}");
        assert!(text(&out.stderr).contains(why), "{}", text(&out.stderr));
    };
    refused(&["retry", &id, "--device", "ws-0"], "did not fail");
    refused(
        &["rollback", &id, "--device", "ws-3"],
        "nothing to roll back",
    );
    refused(&["rollback", &id, "--ring", "nope"], "no ring `nope`");
    let (code, answer) = daemon.http(
        "POST",
        &format!("/v1/rollouts/{id}/rollback?ring=rest"),
        Some(&daemon.token()),
        "",
    );
    assert_eq!(code, 409, "{answer}");
    assert_valid("error.v1.json", &answer);

    // One device.
    let out = daemon.cli(&["rollback", &id, "--device", "ws-0", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_valid(
        "accepted.v1.json",
        &serde_json::from_slice(&out.stdout).unwrap(),
    );
    let status = daemon.ended(&id, 3);
    assert_eq!(status["rings"][0]["rolled_back"], 1, "{status}");
    assert_eq!(
        device_in(&daemon.devices(&id), "ws-0")["state"],
        "rolled-back"
    );
    assert_eq!(device_in(&daemon.devices(&id), "ws-2")["state"], "done");

    // Retry the failed device: it runs again (and, its failure being for good here,
    // fails again and halts the ring again); ws-0, rolled back, installs again.
    let out = daemon.cli(&["retry", &id, "--device", "ws-1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status = daemon.ended(&id, 3);
    let lab = &status["rings"][0];
    assert_eq!(
        (&lab["done"], &lab["failed"]),
        (&2.into(), &1.into()),
        "{status}"
    );

    // Every ring that installed: the lab (the rest never started).
    let out = daemon.cli(&["rollback", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status = daemon.ended(&id, 3);
    assert_eq!(status["rings"][0]["rolled_back"], 3, "{status}");
    refused(&["rollback", &id], "nothing to roll back");

    // Each command audited before it, by the token's name.
    let events = daemon.events(&id);
    let audits: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "audit")
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        audits,
        [
            "start",
            "rollback device=ws-0",
            "retry device=ws-1",
            "rollback"
        ],
        "{events:?}"
    );
    let retried = events.iter().filter(|e| e["type"] == "retry").count();
    assert_eq!(retried, 1);

    // Abandon: a halted rollout can be aborted.
    let out = daemon.cli(&["abort", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = daemon.cli(&["status", &id, "--wait"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stdout));
}

#[test]
fn a_daemon_killed_during_an_operator_rollback_resumes_it_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let policy = policy(dir.path(), "none");
    let inventory = inventory(
        dir.path(),
        4,
        &[("ws-1", "\"sim.fail-permille\" = \"1000\"")],
    );
    let daemon = Daemon::start(&data);
    let id = daemon.start_rollout(&policy, &inventory);
    let status = daemon.ended(&id, 3);
    let length = status["cursor"].as_u64().unwrap();
    assert!(daemon.terminate().success());

    // The rollback's records after the halt: resumed, audit, rollback, a tick, four
    // dispatches (durable together), then results; the daemon dies among the results.
    let target = length + 9;
    let mut command = Command::new(BIN);
    command.env(ringleader_engine::store::KILL_AT_RECORD, target.to_string());
    let mut daemon = Daemon::start_in(command, &data, &[]);
    daemon.wait_for(&id, |s| s["state"] == "halted");
    // Its core is rebuilt from the log in the background: devices answer once it is.
    let started = std::time::Instant::now();
    while daemon
        .http("GET", &format!("/v1/rollouts/{id}/devices"), None, "")
        .0
        != 200
    {
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = daemon.cli(&["rollback", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let child = daemon.child.as_mut().unwrap();
    let started = std::time::Instant::now();
    let killed = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the daemon never reached record {target}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(killed.signal(), Some(9), "killed at record {target}");
    daemon.child = None;

    let daemon = Daemon::start(&data);
    let status = daemon.ended(&id, 3);
    assert_eq!(status["rings"][0]["rolled_back"], 4, "{status}");
    let events = daemon.events(&id);
    assert!(events.iter().any(|e| e["type"] == "resumed"));
    // Each device's rollback dispatched once before the kill; those cut off are run
    // again (a rollback is safe to repeat), none lost.
    let finished = events
        .iter()
        .filter(|e| e["type"] == "rollback-finished" && e["ok"] == true)
        .count();
    assert_eq!(finished, 4, "{events:?}");
}
