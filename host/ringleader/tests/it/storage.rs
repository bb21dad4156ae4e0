//! The daemon's state on disk under faults: a full disk, a damaged rollout store, and
//! the data directory's modes.

use crate::BIN;
use ringleader_tests::daemon::*;
use ringleader_tests::peers::SmallDisk;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

fn policy_file(dir: &Path, text: &str) -> String {
    let path = dir.join("policy.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Starts a virtual-time rollout of a simulated fleet; returns its id.
fn start(daemon: &Daemon, policy: &str, devices: usize) -> String {
    let devices = devices.to_string();
    let out = daemon.cli(&[
        "rollout",
        "start",
        "--policy",
        policy,
        "--simulate",
        &devices,
        "--virtual-time",
        "--start",
        "2026-11-02T08:00:00Z",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

/// A full disk stalls a rollout instead of killing the daemon: nothing is dispatched,
/// status, metrics and `/healthz` say so with the error, the daemon keeps answering,
/// clients following the events are told at once, and once space is freed the rollout
/// goes on by itself, with a `stalled` event.
#[test]
fn a_full_disk_stalls_a_rollout_which_goes_on_once_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_file(dir.path(), APPROVAL);
    let disk = SmallDisk::new("24m");
    let daemon = Daemon::start(&disk.path().join("data"));
    let id = start(&daemon, &policy, 300);
    daemon.wait_for(&id, |s| s["state"] == "awaiting-approval");

    // Followers, from before the stall to the rollout's end: the CLI and a stream.
    let follower = Command::new(BIN)
        .args(["events", &id, "--follow"])
        .env("RINGLEADER_URL", &daemon.url)
        .env("RINGLEADER_TOKEN", daemon.token())
        .env("RINGLEADER_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stream = {
        let url = format!("{}/v1/rollouts/{id}/events/stream", daemon.url);
        let token = daemon.token();
        std::thread::spawn(move || {
            let mut body = String::new();
            ureq::get(url)
                .header("Authorization", format!("Bearer {token}"))
                .call()
                .unwrap()
                .into_body()
                .into_reader()
                .read_to_string(&mut body)
                .unwrap();
            body
        })
    };

    disk.fill();
    // The approval is logged, and the log cannot be written.
    let out = daemon.cli(&["approve", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stalled = daemon.wait_for(&id, |s| s["state"] == "stalled");
    assert_valid("status.v1.json", &stalled);
    let error = stalled["error"].as_str().unwrap();
    assert!(error.contains("No space left on device"), "{stalled}");
    let (code, health) = daemon.http("GET", "/healthz", None, "");
    assert_eq!(code, 200);
    assert_valid("health.v1.json", &health);
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["problems"][0]["rollout"], id.as_str());
    let (_, metrics) = daemon.http("GET", "/metrics", None, "");
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(
        metrics.contains("ringleader_rollouts{state=\"stalled\"} 1"),
        "{metrics}"
    );
    let rest = |s: &serde_json::Value| s["rings"][1]["done"].as_u64().unwrap_or(0);
    assert_eq!(rest(&stalled), 0, "nothing is dispatched while stalled");
    // A page of events says why nothing new comes.
    let token = daemon.token();
    let (code, page) = daemon.http(
        "GET",
        &format!("/v1/rollouts/{id}/events?since=0&limit=1"),
        Some(&token),
        "",
    );
    assert_eq!(code, 200, "{page}");
    assert_valid("events.v1.json", &page);
    let told = page["stalled"].as_str().unwrap_or_default();
    assert!(told.contains("No space left on device"), "{page}");

    disk.free();
    // The rollout goes on from where its durable log left it: with the approval if
    // it reached the disk before the disk filled, else waiting for it again.
    let after = daemon.wait_for(&id, |s| {
        s["state"] != "stalled" && s["state"] != "preparing"
    });
    if after["state"] == "awaiting-approval" {
        let out = daemon.cli(&["approve", &id]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let out = daemon.cli(&["status", &id, "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let (_, health) = daemon.http("GET", "/healthz", None, "");
    assert_eq!(health["status"], "ok", "{health}");
    let out = daemon.cli(&["events", &id, "--json"]);
    let events = text(&out.stdout);
    assert!(events.contains("\"type\":\"stalled\""), "{events}");
    assert!(events.contains("No space left on device"), "{events}");
    let (_, page) = daemon.http(
        "GET",
        &format!("/v1/rollouts/{id}/events"),
        Some(&token),
        "",
    );
    assert!(page.get("stalled").is_none(), "no longer stalled: {page}");

    // The follower was told once, while it happened, and ended with the rollout.
    let followed = follower.wait_with_output().unwrap();
    assert!(followed.status.success(), "{}", text(&followed.stderr));
    let told = text(&followed.stderr);
    assert_eq!(
        told.matches(&format!("rollout {id} stalls: ")).count(),
        1,
        "{told}"
    );
    assert!(told.contains("No space left on device"), "{told}");
    let followed_out = text(&followed.stdout);
    assert!(
        followed_out.contains("stalled"),
        "the logged event too: {followed_out}\n{events}\n{}",
        daemon.log()
    );
    // The stream sent one `stalled` message without an id, then the logged event.
    let body = stream.join().unwrap();
    let messages: Vec<&str> = body.split("\n\n").collect();
    let stall: Vec<&&str> = messages
        .iter()
        .filter(|m| m.contains("\"schema\":\"ringleader.stall/v1\""))
        .collect();
    assert_eq!(stall.len(), 1, "{body}");
    assert!(
        stall[0].starts_with("event: stalled\ndata: "),
        "{}",
        stall[0]
    );
    assert!(!stall[0].contains("\nid:"), "{}", stall[0]);
    let data = stall[0].split_once("data: ").unwrap().1;
    assert_valid("stall.v1.json", &serde_json::from_str(data).unwrap());
    assert!(
        body.contains("\"type\":\"stalled\""),
        "the logged event too"
    );
}

/// A rollout whose store cannot be read is listed as unreadable with the reason, its
/// files left as they are, and the daemon serves the others; new rollouts do not take
/// its number.
#[test]
fn an_unreadable_rollout_is_quarantined_and_the_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let policy = policy_file(dir.path(), APPROVAL);
    let daemon = Daemon::start(&data);
    let first = start(&daemon, &policy, 50);
    daemon.wait_for(&first, |s| s["state"] == "awaiting-approval");
    let second = start(&daemon, &policy, 50);
    daemon.wait_for(&second, |s| s["state"] == "awaiting-approval");
    assert!(daemon.terminate().success());

    // r1's database truncated (no snapshot of it yet, or one: the same).
    let db = data.join("rollouts").join(&first).join("db");
    std::fs::File::create(&db).unwrap();
    let daemon = Daemon::start(&data);
    let status = daemon.json(&["status", &first, "--json"]);
    assert_valid("status.v1.json", &status);
    assert_eq!(status["state"], "unreadable", "{status}");
    let error = status["error"].as_str().unwrap();
    assert!(
        error.contains(&first) || error.contains("rollouts"),
        "{error}"
    );
    let listed = daemon.json(&["status", "--json"]);
    assert_valid("rollouts.v1.json", &listed);
    let states: Vec<&str> = listed["rollouts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(states[0], "unreadable", "{listed}");
    daemon.wait_for(&second, |s| s["state"] == "awaiting-approval");
    let out = daemon.cli(&["devices", &first]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("unreadable"),
        "{}",
        text(&out.stderr)
    );
    let (_, health) = daemon.http("GET", "/healthz", None, "");
    assert_eq!(health["status"], "degraded", "{health}");
    let third = start(&daemon, &policy, 10);
    assert_eq!(third, "r3");
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0, "left as it was");
}

/// Whatever the umask, everything under the data directory is the owner's alone; a
/// data directory that others can write is refused with a message.
#[test]
fn the_data_directory_is_owner_only_and_one_others_can_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = Command::new("sh")
        .args(["-c", "umask 000; exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_ringleader"))
        .args(["demo", "--devices", "50", "--json", "--data"])
        .arg(&data)
        .env("RINGLEADER_LOG", "error")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut seen = 0;
    let mut stack = vec![data.clone()];
    while let Some(path) = stack.pop() {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{}", path.display());
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
        }
        seen += 1;
    }
    assert!(seen > 5, "{seen}");

    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ringleader"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env("RINGLEADER_LOG", "error")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out.stderr);
    assert!(said.contains("can be written by other users"), "{said}");
    assert!(said.contains("chmod 700"), "{said}");
}

/// The simulated devices' state lost (its `db` truncated, its snapshots removed): the
/// daemon refuses to start and names the directory, rather than starting with devices
/// that forgot every install.
#[test]
fn a_daemon_whose_device_state_was_emptied_refuses_to_start_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let policy = policy_file(dir.path(), APPROVAL);
    let daemon = Daemon::start(&data);
    let id = start(&daemon, &policy, 50);
    daemon.wait_for(&id, |s| s["state"] == "awaiting-approval");
    assert!(daemon.terminate().success());
    let devices = data.join("devices");
    std::fs::File::create(devices.join("db")).unwrap();
    for entry in std::fs::read_dir(&devices).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with("snap.") {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ringleader"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env("RINGLEADER_LOG", "error")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out.stderr);
    assert!(said.contains(&devices.display().to_string()), "{said}");
    assert!(said.contains("no data where data was expected"), "{said}");
    assert!(!said.contains("panicked"), "{said}");
}

/// Three rings without approvals: the daemon runs them to the end by itself.
const THREE_RINGS: &str = r#"
name = "three-rings"
[[rings]]
name = "lab"
select = { tags = ["lab"] }
soak = "1h"
max_failures = "50%"
[[rings]]
name = "canary"
select = { percent = 10 }
soak = "2h"
max_failures = "20%"
unresponsive_after = "2h"
[[rings]]
name = "rest"
select = "rest"
batches = ["50%", "100%"]
max_failures = "20%"
unresponsive_after = "2h"
"#;

/// The daemon killed (SIGKILL, by itself as it is about to append a given record) in
/// every phase of a virtual-time rollout, and started again each time, ends the
/// rollout exactly as an uninterrupted daemon does: the same decisions at the same
/// virtual times, every result logged after its dispatch.
#[test]
fn a_daemon_killed_in_every_phase_ends_as_an_uninterrupted_run() {
    use ringleader_tests::logs;
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_file(dir.path(), THREE_RINGS);
    let start_rollout = |daemon: &Daemon| {
        let out = daemon.cli(&[
            "rollout",
            "start",
            "--policy",
            &policy,
            "--simulate",
            "200",
            "--fail-permille",
            "20",
            "--hang-permille",
            "5",
            "--virtual-time",
            "--start",
            "2026-11-02T08:00:00Z",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout).trim(), "r1");
    };
    let reference_data = dir.path().join("reference");
    let daemon = Daemon::start(&reference_data);
    start_rollout(&daemon);
    let out = daemon.cli(&["status", "r1", "--wait"]);
    let reference_code = out.status.code();
    let reference = daemon.json(&["status", "r1", "--json"]);
    assert!(daemon.terminate().success());
    let reference_log = logs::records(&reference_data.join("rollouts/r1"));
    let length = reference_log.len() as u64;
    assert!(length > 500, "a long rollout: {reference}");

    let data = dir.path().join("killed");
    let positions = 8;
    let mut kills = 0;
    for k in 1..=positions {
        let target = length * k / (positions + 1);
        let mut command = Command::new(BIN);
        command.env(ringleader_engine::store::KILL_AT_RECORD, target.to_string());
        let mut daemon = Daemon::start_in(command, &data, &[]);
        if k == 1 {
            start_rollout(&daemon);
        }
        let child = daemon.child.as_mut().unwrap();
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(120),
                "the daemon never reached record {target} of {length}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "killed at record {target}");
        daemon.child = None;
        kills += 1;
    }
    let daemon = Daemon::start(&data);
    let out = daemon.cli(&["status", "r1", "--wait"]);
    assert_eq!(out.status.code(), reference_code, "{}", text(&out.stdout));
    let resumed = daemon.json(&["status", "r1", "--json"]);
    assert!(daemon.terminate().success());
    assert_eq!(kills, positions);
    for key in ["state", "rings", "time", "halt_reason"] {
        assert_eq!(resumed[key], reference[key], "{key}");
    }
    let log = logs::records(&data.join("rollouts/r1"));
    logs::assert_write_ahead(&log);
    logs::assert_same_decisions(&reference_log, &log);
}

/// A rollout's `meta/inputs` is `ringleader.inputs/v1` (docs/schemas/inputs.v1.json),
/// written alike by the daemon and the demo; a rollout whose inputs a daemon wrote
/// before v1 (no `schema`, no `hang_permille`) still opens after an upgrade, and runs
/// as the same rollout started anew does.
#[test]
fn rollout_inputs_are_v1_from_daemon_and_demo_and_those_written_before_still_open() {
    use ringleader_engine::store::Store;
    let inputs_of = |dir: &Path| -> serde_json::Value {
        let text = Store::open(dir).unwrap().inputs().unwrap().unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let before = serde_json::json!({
        "policy_name": "policy.toml",
        "policy": THREE_RINGS,
        "fleet": {"kind": "simulated", "devices": 40, "seed": 1, "fail_permille": 2, "hang_permille": 1},
        "clock": {"virtual": {"seed": 1}},
        "start": "2026-11-02T08:00:00Z",
    });
    let store = Store::open(&data.join("rollouts/r1")).unwrap();
    store.set_inputs(&before.to_string()).unwrap();
    drop(store);

    let daemon = Daemon::start(&data);
    let policy = policy_file(dir.path(), THREE_RINGS);
    let again = start(&daemon, &policy, 40);
    assert_eq!(again, "r2");
    for id in ["r1", "r2"] {
        let out = daemon.cli(&["status", id, "--wait"]);
        assert!(
            matches!(out.status.code(), Some(0 | 3)),
            "{id}: {}",
            text(&out.stdout)
        );
    }
    let (old, new) = (
        daemon.json(&["status", "r1", "--json"]),
        daemon.json(&["status", "r2", "--json"]),
    );
    for key in ["state", "rings", "time", "halt_reason"] {
        assert_eq!(old[key], new[key], "{key}");
    }
    assert!(daemon.terminate().success());
    assert_eq!(
        inputs_of(&data.join("rollouts/r1")),
        before,
        "never rewritten"
    );
    let written = inputs_of(&data.join("rollouts/r2"));
    assert_valid("inputs.v1.json", &written);
    assert_eq!(written["clock"]["virtual"]["hang_permille"], 1, "{written}");

    let demo = |data: &Path, seed: &str| {
        Command::new(BIN)
            .args([
                "demo",
                "--devices",
                "20",
                "--json",
                "--seed",
                seed,
                "--data",
            ])
            .arg(data)
            .env("RINGLEADER_LOG", "error")
            .output()
            .unwrap()
    };
    let data = dir.path().join("demo");
    let out = demo(&data, "1");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let written = inputs_of(&data.join("engine"));
    assert_valid("inputs.v1.json", &written);
    assert_eq!(
        written["policy_name"], "bundled:monthly-os.toml",
        "{written}"
    );
    // Other arguments are refused, saying which the directory holds.
    let out = demo(&data, "2");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("holds a demo started with other arguments (devices=20 seed=1 fail-permille=2 hang-permille=1 policy=bundled:monthly-os.toml start=2026-11-02T08:00:00Z)"),
        "{}",
        text(&out.stderr)
    );
    // A demo started before v1 recorded its arguments as text: it resumes with them.
    let data = dir.path().join("demo-before");
    let store = Store::open(&data.join("engine")).unwrap();
    let line = "devices=20 seed=1 fail-permille=2 hang-permille=1 policy=bundled:monthly-os start=2026-11-02T08:00:00Z";
    store.set_inputs(line).unwrap();
    drop(store);
    let out = demo(&data, "1");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        Store::open(&data.join("engine"))
            .unwrap()
            .inputs()
            .unwrap()
            .as_deref(),
        Some(line)
    );
}
