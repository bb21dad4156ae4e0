//! `ringleader serve` and its clients, run as real processes on 127.0.0.1: what a
//! script or an operator sees. JSON output is validated against `docs/schemas/`.

use crate::BIN;
use ringleader_tests::daemon::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Two rings, no soak, no approval: completes on its own.
const QUICK: &str = r#"
name = "quick"
[[rings]]
name = "lab"
select = { tags = ["lab"] }
[[rings]]
name = "rest"
select = "rest"
max_failures = "20%"
"#;

fn policy_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Starts a virtual-time rollout of a simulated fleet; returns its id.
fn start(daemon: &Daemon, policy: &str, devices: usize, extra: &[&str]) -> String {
    let devices = devices.to_string();
    let mut args = vec![
        "rollout",
        "start",
        "--policy",
        policy,
        "--simulate",
        &devices,
        "--virtual-time",
        "--start",
        "2026-11-02T08:00:00Z",
    ];
    args.extend_from_slice(extra);
    let out = daemon.cli(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

#[test]
fn a_script_follows_a_rollout_to_completion_with_status_events_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"));
    let policy = policy_file(dir.path(), "quick.toml", QUICK);
    let id = start(&daemon, &policy, 400, &[]);
    assert_eq!(id, "r1");
    let script = Command::new("python3")
        .arg(repo("tests/scripts/follow_rollout.py"))
        .arg(BIN)
        .arg(&id)
        .env("RINGLEADER_URL", &daemon.url)
        .env("RINGLEADER_LOG", "error")
        .output()
        .expect("python3 runs the script");
    assert!(
        script.status.success(),
        "{}{}",
        text(&script.stdout),
        text(&script.stderr)
    );
    let summary = text(&script.stdout);
    assert!(summary.starts_with("ok: "), "{summary}");
    assert!(summary.contains("rings lab rest"), "{summary}");

    // Everything scripts read matches its schema.
    let status = daemon.json(&["status", &id, "--json"]);
    assert_valid("status.v1.json", &status);
    let list = daemon.json(&["status", "--json"]);
    assert_valid("rollouts.v1.json", &list);
    for item in list["rollouts"].as_array().unwrap() {
        assert_valid("status.v1.json", item);
    }
    let devices = daemon.json(&["devices", &id, "--json"]);
    assert_valid("devices.v1.json", &devices);
    assert_eq!(devices["devices"].as_array().unwrap().len(), 400);
    let one = devices["devices"][0]["id"].as_str().unwrap().to_string();
    let (code, device) = daemon.http("GET", &format!("/v1/rollouts/{id}/devices/{one}"), None, "");
    assert_eq!(code, 200);
    assert_valid("device.v1.json", &device);
    let history: Vec<&str> = device["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(history.first(), Some(&"dispatched"), "{history:?}");
    for event in device["history"].as_array().unwrap() {
        assert_valid("event.v1.json", event);
        assert_eq!(event["device"], one.as_str());
    }
    // The history (read through the log's index of jobs) is every event of the log
    // about the device.
    let mut about_it = Vec::new();
    let mut since = 0;
    loop {
        let path = format!("/v1/rollouts/{id}/events?since={since}&limit=10000");
        let (code, page) = daemon.http("GET", &path, None, "");
        assert_eq!(code, 200);
        let events = page["events"].as_array().unwrap();
        about_it.extend(
            events
                .iter()
                .filter(|e| e["device"] == one.as_str())
                .map(|e| e["cursor"].as_u64().unwrap()),
        );
        if events.is_empty() || page["ended"] == true {
            break;
        }
        since = page["next"].as_u64().unwrap();
    }
    let cursors: Vec<u64> = device["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["cursor"].as_u64().unwrap())
        .collect();
    assert_eq!(cursors, about_it);
    let (code, page) = daemon.http(
        "GET",
        &format!("/v1/rollouts/{id}/events?since=0&limit=50"),
        None,
        "",
    );
    assert_eq!(code, 200);
    assert_valid("events.v1.json", &page);
    for event in page["events"].as_array().unwrap() {
        assert_valid("event.v1.json", event);
    }
    let out = daemon.cli(&["events", &id, "--json"]);
    for line in text(&out.stdout).lines() {
        assert_valid("event.v1.json", &serde_json::from_str(line).unwrap());
    }
    let (code, health) = daemon.http("GET", "/healthz", None, "");
    assert_eq!(code, 200);
    assert_valid("health.v1.json", &health);

    // The server-sent stream ends with the rollout's completion.
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let mut body = String::new();
    agent
        .get(format!("{}/v1/rollouts/{id}/events/stream", daemon.url))
        .call()
        .unwrap()
        .into_body()
        .into_reader()
        .read_to_string(&mut body)
        .unwrap();
    assert!(
        body.contains("event: dispatched"),
        "{}",
        &body[..body.len().min(500)]
    );
    assert!(
        body.trim_end().ends_with("\"type\":\"completed\"}"),
        "{}",
        &body[body.len().saturating_sub(500)..]
    );

    // Metrics in Prometheus text format.
    let mut metrics = String::new();
    agent
        .get(format!("{}/metrics", daemon.url))
        .call()
        .unwrap()
        .into_body()
        .into_reader()
        .read_to_string(&mut metrics)
        .unwrap();
    assert!(
        metrics.contains("ringleader_rollouts{state=\"completed\"} 1"),
        "{metrics}"
    );
    let steps: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ringleader_device_steps_total{result=\"succeeded\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(steps > 400.0, "{metrics}");
    assert!(metrics.contains("# TYPE ringleader_plugin_call_duration_seconds histogram"));
    assert!(metrics.contains("ringleader_plugin_call_duration_seconds_bucket{le=\"+Inf\"}"));
}

/// A simulated fleet started through the daemon in virtual time rolls out as the demo
/// rolls the same fleet out, devices that never report (`--hang-permille`) included.
#[test]
fn a_simulated_rollout_of_the_daemon_ends_as_the_demo_of_the_same_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let policy = QUICK.replace("max_failures", "unresponsive_after = \"2h\"\nmax_failures");
    let policy = policy_file(dir.path(), "quick.toml", &policy);
    let fleet = [
        "--seed",
        "3",
        "--fail-permille",
        "10",
        "--hang-permille",
        "40",
    ];
    let daemon = Daemon::start(&dir.path().join("data"));
    let id = start(&daemon, &policy, 300, &fleet);
    daemon.cli(&["status", &id, "--wait"]);
    let status = daemon.json(&["status", &id, "--json"]);
    let mut args = vec!["demo", "--json", "--devices", "300", "--policy", &policy];
    args.extend_from_slice(&fleet);
    let out = Command::new(BIN).args(&args).output().unwrap();
    let demo: Value = serde_json::from_slice(&out.stdout).unwrap();
    for (ring, ours) in demo["rings"].as_array().unwrap().iter().enumerate() {
        let theirs = &status["rings"][ring];
        for key in ["name", "devices", "done", "failed", "rolled_back"] {
            assert_eq!(
                ours[key], theirs[key],
                "ring {ring} `{key}`: {demo} {status}"
            );
        }
    }
    assert_eq!(demo["virtual_end"], status["time"], "{demo} {status}");
}

#[test]
fn status_wait_exit_codes_tell_completed_halted_and_aborted_apart() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"));
    let quick = policy_file(dir.path(), "quick.toml", QUICK);
    let approval = policy_file(dir.path(), "approval.toml", APPROVAL);

    let halts = start(&daemon, &quick, 200, &["--fail-permille", "600"]);
    let out = daemon.cli(&["status", &halts, "--wait"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("halted because"),
        "{}",
        text(&out.stdout)
    );

    let waits = start(&daemon, &approval, 200, &[]);
    let status = daemon.wait_for(&waits, |s| s["state"] == "awaiting-approval");
    assert_eq!(status["waiting"]["for"], "approval");
    assert_eq!(status["waiting"]["ring"], "rest");
    let out = daemon.cli(&["abort", &waits, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_valid(
        "accepted.v1.json",
        &serde_json::from_slice(&out.stdout).unwrap(),
    );
    let out = daemon.cli(&["status", &waits, "--wait"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stdout));

    let completes = start(&daemon, &quick, 100, &[]);
    let out = daemon.cli(&["status", &completes, "--wait", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["state"], "completed");
}

/// `auto_approve`: the ring that needs approval opens without a person when the ring
/// before passed, and the event stream says so with the reason.
#[test]
fn a_ring_approved_by_rule_needs_no_person_and_the_events_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"));
    let policy = APPROVAL.replace(
        "approval = \"required\"\n",
        "approval = \"required\"\nauto_approve = { success = \"99%\", failures = 0 }\n",
    );
    assert!(policy.contains("auto_approve"));
    let policy = policy_file(dir.path(), "auto.toml", &policy);
    let id = start(&daemon, &policy, 200, &["--fail-permille", "0"]);
    let out = daemon.cli(&["status", &id, "--wait", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let out = daemon.cli(&["events", &id, "--json"]);
    let events: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let approved = events
        .iter()
        .find(|e| e["type"] == "approved-by-rule")
        .unwrap_or_else(|| panic!("no approved-by-rule event: {events:#?}"));
    assert_valid("event.v1.json", approved);
    assert_eq!(approved["ring"], "rest");
    assert!(
        approved["reason"]
            .as_str()
            .unwrap()
            .starts_with("ring lab succeeded on 100.0% of its devices (at least 99%)"),
        "{approved}"
    );
    assert!(!events.iter().any(|e| e["type"] == "awaiting-approval"));
}

#[test]
fn changes_need_the_token_reads_do_not_and_every_change_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let daemon = Daemon::start(&data);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("api-token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let approval = policy_file(dir.path(), "approval.toml", APPROVAL);
    let id = start(&daemon, &approval, 100, &[]);
    daemon.wait_for(&id, |s| s["state"] == "awaiting-approval");

    // No token, wrong token: 401 with a JSON error, and the CLI's exit code 7.
    let (code, body) = daemon.http("POST", &format!("/v1/rollouts/{id}/approve"), None, "");
    assert_eq!(code, 401);
    assert_valid("error.v1.json", &body);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer")
    );
    let (code, _) = daemon.http(
        "POST",
        &format!("/v1/rollouts/{id}/approve"),
        Some("wrong"),
        "",
    );
    assert_eq!(code, 401);
    let out = daemon.cli_as(&["approve", &id], None);
    assert_eq!(out.status.code(), Some(7));
    assert!(
        text(&out.stderr).contains("--token-file"),
        "{}",
        text(&out.stderr)
    );
    // Reads need none on loopback.
    let out = daemon.cli_as(&["status", &id, "--json"], None);
    assert!(out.status.success());

    // With the token: accepted, done, and in the log as an audit entry.
    let out = daemon.cli(&["approve", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = daemon.cli(&["status", &id, "--wait"]);
    assert_eq!(out.status.code(), Some(0));
    let out = daemon.cli(&["events", &id, "--json"]);
    let events: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The first record says who started the rollout.
    assert_eq!(events[0]["type"], "audit");
    assert_eq!(events[0]["action"], "start");
    assert_eq!(events[0]["by"], "api-token");
    let audit = events
        .iter()
        .position(|e| e["type"] == "audit" && e["action"] == "approve")
        .expect("an audit entry for the approval");
    assert_eq!(events[audit]["action"], "approve");
    assert_eq!(events[audit]["by"], "api-token");
    assert_eq!(events[audit + 1]["type"], "approve");
}

#[test]
fn named_tokens_are_audited_by_name_and_revoked_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let daemon = Daemon::start(&data);
    let data_arg = data.to_str().unwrap();
    let token_cmd = |args: &[&str]| {
        Command::new(BIN)
            .arg("token")
            .args(args)
            .args(["--data", data_arg])
            .output()
            .unwrap()
    };
    // Made while the daemon runs: a file, mode 0600, whose path is printed.
    let out = token_cmd(&["new", "ci-bot"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let file = text(&out.stdout).trim().to_string();
    assert_eq!(Path::new(&file), data.join("tokens/ci-bot"));
    let out = token_cmd(&["new", "ci-bot"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("exists"),
        "{}",
        text(&out.stderr)
    );
    let out = token_cmd(&["new", "../escape"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot name a token"),
        "{}",
        text(&out.stderr)
    );

    let ci = std::fs::read_to_string(&file).unwrap().trim().to_string();
    let approval = policy_file(dir.path(), "approval.toml", APPROVAL);
    let out = daemon.cli_as(
        &[
            "rollout",
            "start",
            "--policy",
            &approval,
            "--simulate",
            "50",
            "--virtual-time",
            "--start",
            "2026-11-02T08:00:00Z",
        ],
        Some(&ci),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    daemon.wait_for(&id, |s| s["state"] == "awaiting-approval");
    let out = daemon.cli_as(&["pause", &id], Some(&ci));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = daemon.cli(&["events", &id, "--json"]);
    let audit: Vec<(String, String)> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["type"] == "audit")
        .map(|e| (e["action"].to_string(), e["by"].to_string()))
        .collect();
    assert_eq!(
        audit,
        [
            ("\"start\"".into(), "\"ci-bot\"".into()),
            ("\"pause\"".into(), "\"ci-bot\"".into())
        ]
    );

    // Listed without the token itself.
    let out = token_cmd(&["list", "--json"]);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_valid("tokens.v1.json", &listed);
    assert_eq!(listed["tokens"][0]["name"], "ci-bot");
    assert_eq!(listed["tokens"][0]["ignored"], Value::Null);
    assert!(!text(&out.stdout).contains(&ci));

    // SIGHUP (a reload, for a daemon with TLS) does not stop a daemon without.
    daemon.signal("HUP");
    std::thread::sleep(Duration::from_millis(200));
    assert!(daemon.cli(&["status", &id]).status.success());

    // Revoked: refused from the next request on (exit 7), the daemon's own still works.
    let out = token_cmd(&["revoke", "ci-bot"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = daemon.cli_as(&["resume", &id], Some(&ci));
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    let out = daemon.cli(&["resume", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn bad_requests_are_named_and_a_missing_daemon_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"));
    let token = daemon.token();

    let out = daemon.cli(&["status", "r99"]);
    assert_eq!(out.status.code(), Some(6));
    assert!(
        text(&out.stderr).contains("no rollout with id `r99`"),
        "{}",
        text(&out.stderr)
    );
    let (code, body) = daemon.http("GET", "/v1/rollouts/r99", None, "");
    assert_eq!(code, 404);
    assert_valid("error.v1.json", &body);

    let (code, body) = daemon.http("POST", "/v1/rollouts", Some(&token), r#"{"policy": 3}"#);
    assert_eq!(code, 400);
    assert_valid("error.v1.json", &body);
    assert_eq!(body["field"], "policy");
    let (code, body) = daemon.http(
        "POST",
        "/v1/rollouts",
        Some(&token),
        r#"{"policy": {"name": "p.toml", "text": "name = \"p\"\n[[rings]]\nname = 5\n"}, "simulated": {"devices": 10}}"#,
    );
    assert_eq!(code, 400);
    assert_eq!(body["field"], "policy");
    assert!(
        body["error"].as_str().unwrap().contains("p.toml:3"),
        "{body}"
    );
    let (code, body) = daemon.http(
        "POST",
        "/v1/rollouts",
        Some(&token),
        r#"{"policy": {"name": "p.toml", "text": ""}, "simulated": {"devices": 10}, "clock": "sundial"}"#,
    );
    assert_eq!(code, 400);
    assert_eq!(body["field"], "clock");
    let (code, _) = daemon.http("POST", "/v1/rollouts/r1/reboot", Some(&token), "");
    assert_eq!(code, 404);

    // Nothing listens here: the CLI says so, and how to start it, without a trace.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let out = Command::new(BIN)
        .args(["status", "--server", &closed])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    let err = text(&out.stderr);
    assert!(err.contains("cannot reach the ringleader daemon"), "{err}");
    assert!(err.contains("ringleader serve --data"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn tokens_and_rollout_ids_are_read_exactly_and_refusals_are_logged_with_the_peer() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"));
    let token = daemon.token();
    let approval = policy_file(dir.path(), "approval.toml", APPROVAL);
    let id = start(&daemon, &approval, 20, &[]);
    assert_eq!(id, "r1");
    daemon.wait_for(&id, |s| s["state"] == "awaiting-approval");

    let pause = |id: &str, authorization: &str| {
        daemon.raw(
            format!(
                "POST /v1/rollouts/{id}/pause HTTP/1.1\r\nHost: x\r\nAuthorization: {authorization}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
    };
    // Two spaces: no token at all, refused (not trimmed into a good one).
    let answer = pause("r1", &format!("Bearer  {token}"));
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    // The refusal is logged at the default level, with the peer, never the token.
    let started = std::time::Instant::now();
    while !daemon
        .log()
        .contains("refused POST /v1/rollouts/r1/pause from 127.0.0.1:")
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no refusal logged: {}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!daemon.log().contains(&token), "{}", daemon.log());

    // Ids are exactly `r` and digits without a leading zero.
    for other in ["r01", "r+1", "R1", "r1x", "r"] {
        let answer = pause(other, &format!("Bearer {token}"));
        assert!(answer.starts_with("HTTP/1.1 404"), "{other}: {answer}");
        let (code, _) = daemon.http("GET", &format!("/v1/rollouts/{other}"), None, "");
        assert_eq!(code, 404, "{other}");
    }
    let status = daemon.json(&["status", "r1", "--json"]);
    assert_eq!(status["paused"], false, "{status}");
    let answer = pause("r1", &format!("Bearer {token}"));
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
}

#[test]
fn devices_and_events_text_show_versions_from_and_to() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"));
    let policy = policy_file(dir.path(), "quick.toml", QUICK);
    let id = start(&daemon, &policy, 20, &[]);
    daemon.wait_for(&id, |s| s["state"] == "completed");

    // Each device's versions now, as the JSON has them.
    let json = daemon.json(&["devices", &id, "--json"]);
    let out = daemon.cli(&["devices", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let header = table.lines().next().unwrap();
    assert!(header.contains("VERSIONS"), "{table}");
    let first = &json["devices"][0];
    let versions: Vec<String> = first["versions"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(c, v)| format!("{c} {}", v.as_str().unwrap()))
        .collect();
    assert!(!versions.is_empty(), "{first}");
    let row = table
        .lines()
        .find(|l| l.starts_with(first["id"].as_str().unwrap()))
        .unwrap();
    assert!(row.contains(&versions.join(", ")), "{row}\n{table}");

    // Step events name the component and its versions, from -> to, in JSON and text.
    let (_, page) = daemon.http(
        "GET",
        &format!("/v1/rollouts/{id}/events?since=0&limit=10000"),
        None,
        "",
    );
    let done = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "step-succeeded")
        .unwrap_or_else(|| panic!("{page}"))
        .clone();
    assert_valid("event.v1.json", &done);
    let (component, from, to) = (
        done["component"]
            .as_str()
            .unwrap_or_else(|| panic!("{done}")),
        done["from"].as_str().unwrap_or_else(|| panic!("{done}")),
        done["to"].as_str().unwrap_or_else(|| panic!("{done}")),
    );
    assert_ne!(from, to, "{done}");
    let out = daemon.cli(&["events", &id]);
    let lines = text(&out.stdout);
    let line = lines
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{} ", done["cursor"])))
        .unwrap_or_else(|| panic!("{lines}"));
    assert!(
        line.contains(&format!("  {component} {from} -> {to}")),
        "{line}"
    );
}

#[test]
fn a_daemon_logging_to_a_pipe_or_file_writes_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"));
    // A refusal is logged at the default level.
    let answer = daemon.raw(
        b"POST /v1/rollouts/r1/pause HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let started = std::time::Instant::now();
    while !daemon.log().contains("refused POST /v1/rollouts/r1/pause") {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no refusal logged: {}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = daemon.log();
    assert!(log.contains("WARN"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escapes in a log that is no terminal: {log:?}"
    );
}

#[test]
fn listening_beyond_loopback_needs_tls_or_a_loud_opt_out() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--data"])
        .arg(dir.path())
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("without TLS"), "{err}");
    assert!(err.contains("--tls-cert"), "{err}");
}

#[test]
fn beyond_loopback_with_tls_every_request_needs_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    // A free port, then all interfaces on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = dir.path().join("data");
    let mut child = Command::new(BIN)
        .args(["serve", "--data"])
        .arg(&data)
        .args(["--listen", &format!("0.0.0.0:{port}"), "--tls-cert"])
        .arg(&cert_path)
        .arg("--tls-key")
        .arg(&key_path)
        .env("RINGLEADER_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let listening = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("listening on"))
        .expect("the daemon listens");
    assert!(listening.contains("https://"), "{listening}");
    std::thread::spawn(move || for _ in lines {});
    let daemon = Daemon {
        child: Some(child),
        url: format!("https://127.0.0.1:{port}"),
        data,
        log: Default::default(),
    };
    let agent = trusting(&cert);
    let get = |token: Option<&str>| {
        let mut request = agent.get(format!("{}/v1/rollouts", daemon.url));
        if let Some(token) = token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        request.call().unwrap().status().as_u16()
    };
    assert_eq!(get(None), 401, "reads need the token beyond loopback");
    assert_eq!(get(Some(&daemon.token())), 200);
    // Plain HTTP to the TLS port is not answered.
    let plain: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    assert!(
        plain
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .call()
            .is_err()
    );
}

/// An HTTPS client that trusts only `cert`, with no connection kept between requests.
fn trusting(cert: &rcgen::CertifiedKey) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_idle_connections(0)
        .timeout_global(Some(Duration::from_secs(5)))
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(vec![
                    ureq::tls::Certificate::from_der(cert.cert.der()).to_owned(),
                ])))
                .build(),
        )
        .build()
        .into()
}

#[test]
fn a_renewed_tls_certificate_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let make = || {
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap()
    };
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let install = |cert: &rcgen::CertifiedKey| {
        std::fs::write(&cert_path, cert.cert.pem()).unwrap();
        std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    };
    let old = make();
    install(&old);
    let daemon = Daemon::start_with(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
    );
    assert!(daemon.url.starts_with("https://"), "{}", daemon.url);
    let healthz = format!("{}/healthz", daemon.url);
    let answers = |cert| trusting(cert).get(&healthz).call().is_ok();
    assert!(answers(&old));

    // Renewed: the files replaced, then SIGHUP (or, without it, the next check).
    let new = make();
    install(&new);
    daemon.signal("HUP");
    let started = std::time::Instant::now();
    while !answers(&new) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the renewed certificate is not served"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!answers(&old), "the replaced certificate is still served");

    // A renewal half written (a key that does not load): the certificate in use stays.
    std::fs::write(&key_path, "not a key\n").unwrap();
    daemon.signal("HUP");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        answers(&new),
        "the daemon serves on, with the certificate in use"
    );
}

#[test]
fn a_daemon_stopped_with_sigterm_resumes_its_rollouts_on_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let daemon = Daemon::start(&data);
    let approval = policy_file(dir.path(), "approval.toml", APPROVAL);
    let id = start(&daemon, &approval, 300, &[]);
    let before = daemon.wait_for(&id, |s| s["state"] == "awaiting-approval");
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}");

    let daemon = Daemon::start(&data);
    let after = daemon.wait_for(&id, |s| s["state"] != "preparing");
    assert_eq!(after["state"], "awaiting-approval", "{after}");
    assert_eq!(after["rings"], before["rings"]);
    let out = daemon.cli(&["approve", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = daemon.cli(&["status", &id, "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let out = daemon.cli(&["events", &id, "--json"]);
    assert!(text(&out.stdout).contains("\"type\":\"resumed\""));
}

#[test]
fn an_operator_rollback_rolls_the_last_ring_back() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"));
    let approval = policy_file(dir.path(), "approval.toml", APPROVAL);
    let id = start(&daemon, &approval, 300, &[]);
    let before = daemon.wait_for(&id, |s| s["state"] == "awaiting-approval");
    let lab_done = before["rings"][0]["done"].as_u64().unwrap();
    assert!(lab_done > 0);
    let out = daemon.cli(&["rollback", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = daemon.cli(&["status", &id, "--wait", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["halt_reason"], "an operator asked for a rollback");
    assert_eq!(status["ring"], "lab");
    assert_eq!(status["rings"][0]["rolled_back"], lab_done);
    assert_eq!(status["rings"][1]["pending"], status["rings"][1]["devices"]);
}

#[test]
fn every_route_of_the_api_is_in_the_openapi_document() {
    let source = std::fs::read_to_string(repo("host/ringleader-daemon/src/serve/api.rs")).unwrap();
    let openapi = std::fs::read_to_string(repo("docs/api/openapi.yaml")).unwrap();
    let routes: Vec<&str> = source
        .split(".route(\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(routes.len() >= 8, "{routes:?}");
    for route in routes {
        assert!(
            openapi.contains(&format!("  {route}:")),
            "{route} is served but not documented in docs/api/openapi.yaml"
        );
    }
    for schema in openapi.split("../schemas/").skip(1) {
        let file = schema.split('"').next().unwrap();
        assert!(
            Path::new(&repo("docs/schemas")).join(file).exists(),
            "openapi.yaml refers to a missing schema {file}"
        );
    }
}

#[test]
fn a_paused_rollout_starts_nothing_until_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"));
    let approval = policy_file(dir.path(), "approval.toml", APPROVAL);
    let id = start(&daemon, &approval, 200, &[]);
    daemon.wait_for(&id, |s| s["state"] == "awaiting-approval");
    assert!(daemon.cli(&["pause", &id]).status.success());
    let paused = daemon.wait_for(&id, |s| s["paused"] == true);
    assert_eq!(paused["waiting"]["for"], "resume");
    // Approved while paused: the ring opens, but nothing in it starts.
    assert!(daemon.cli(&["approve", &id]).status.success());
    let opened = daemon.wait_for(&id, |s| s["state"] == "running");
    assert_eq!(opened["paused"], true);
    assert_eq!(opened["rings"][1]["pending"], opened["rings"][1]["devices"]);
    let out = daemon.cli(&["status", &id]);
    assert!(
        text(&out.stdout).contains("waiting for an operator to resume it"),
        "{}",
        text(&out.stdout)
    );
    assert!(daemon.cli(&["resume", &id]).status.success());
    let out = daemon.cli(&["status", &id, "--wait", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let done: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(done["paused"], false);
    assert_eq!(
        done["rings"][1]["done"].as_u64().unwrap() + done["rings"][1]["failed"].as_u64().unwrap(),
        done["rings"][1]["devices"].as_u64().unwrap()
    );
}

#[test]
fn a_rollout_of_an_inventory_file_runs_in_real_time_to_the_fixed_versions() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"));
    let policy = policy_file(dir.path(), "quick.toml", QUICK);
    let mut inventory = String::new();
    for i in 0..6 {
        inventory.push_str(&format!(
            "[[devices]]\nid = \"ws-{i}\"\nsite = \"ams\"\ntimezone = \"Europe/Amsterdam\"\ntags = [{}]\ncomponents = {{ openssl = \"3.0.11\", linux = \"6.1.112\" }}\n\n",
            if i == 0 { "\"lab\"" } else { "" }
        ));
    }
    let inventory_path = policy_file(dir.path(), "fleet.toml", &inventory);
    let out = daemon.cli(&[
        "rollout",
        "start",
        "--policy",
        &policy,
        "--inventory",
        &inventory_path,
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let started: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_valid("status.v1.json", &started);
    assert_eq!(started["clock"], "real");
    let id = started["id"].as_str().unwrap().to_string();
    let out = daemon.cli(&["status", &id, "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let devices = daemon.json(&["devices", &id, "--json"]);
    for device in devices["devices"].as_array().unwrap() {
        assert_eq!(device["state"], "done", "{device}");
        assert!(device["pending"].as_array().unwrap().is_empty(), "{device}");
        assert_ne!(device["versions"]["openssl"], "3.0.11", "{device}");
    }
    // Nothing is behind once every patch is in.
    let behind = daemon.json(&["devices", &id, "--behind", "--json"]);
    assert!(behind["devices"].as_array().unwrap().is_empty(), "{behind}");

    // Inventories the daemon cannot run are refused (exit 1), saying why.
    let refused = |name: &str, inventory: &str, why: &str| {
        let file = policy_file(dir.path(), name, inventory);
        let out = daemon.cli(&[
            "rollout",
            "start",
            "--policy",
            &policy,
            "--inventory",
            &file,
        ]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert!(text(&out.stderr).contains(why), "{}", text(&out.stderr));
    };
    // A device naming credentials the operator's config does not define.
    refused(
        "ssh.toml",
        "[[devices]]\nid = \"db-1\"\ntransport = { kind = \"ssh\", address = \"10.0.0.9:22\", credentials = \"nope\" }\ncomponents = { openssl = \"3.0.11\" }\n",
        "device db-1: credentials `nope` are not defined",
    );
    // A device naming an installer the daemon does not load.
    refused(
        "other.toml",
        "[[devices]]\nid = \"bmc-1\"\ninstaller = \"redfish-firmware\"\ncomponents = { bios = \"1.0.0\" }\n",
        "device `bmc-1` names the installer `redfish-firmware`, which this daemon does not load",
    );
    // A broken inventory, with its location.
    refused("broken.toml", "[[devices]]\nid = 5\n", "broken.toml:2");
}

/// An HTTP answer read off the wire: status, headers (lowercase names), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn parse(raw: &str) -> Answer {
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP answer: {raw:?}"));
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Answer {
            status,
            headers,
            body: body.to_string(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[test]
fn every_error_the_api_sends_is_a_json_error_even_outside_handlers() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_with(&dir.path().join("data"), &["--max-inventory-size", "64KiB"]);
    let token = daemon.token();
    let approval = policy_file(dir.path(), "approval.toml", APPROVAL);
    let id = start(&daemon, &approval, 10, &[]);
    assert_eq!(id, "r1");
    let big = format!(
        r#"{{"policy": {{"name": "p.toml", "text": ""}}, "inventory": {{"name": "i.toml", "text": "{}"}}}}"#,
        "#".repeat(100 << 10)
    );
    let bad: Vec<(&str, &str, Option<&str>, &str, u16)> = vec![
        ("GET", "/nope", None, "", 404),
        ("GET", "/", None, "", 404),
        ("GET", "/v1/rollouts/r1/devices/a/b/c", None, "", 404),
        ("GET", "/v1/rollouts/r99", None, "", 404),
        ("POST", "/v1/rollouts/r1/reboot", Some(&token), "", 404),
        ("DELETE", "/v1/rollouts", None, "", 405),
        ("PUT", "/healthz", None, "", 405),
        ("GET", "/v1/rollouts/r1/approve", None, "", 405),
        ("POST", "/v1/rollouts/r1/events", None, "", 405),
        ("GET", "/v1/rollouts/r1/events?since=abc", None, "", 400),
        ("GET", "/v1/rollouts/r1/events?limit=-1", None, "", 400),
        ("GET", "/v1/rollouts/r1/events?wait=soon", None, "", 400),
        (
            "GET",
            "/v1/rollouts/r1/events/stream?since=x",
            None,
            "",
            400,
        ),
        ("GET", "/v1/rollouts/r1/devices?behind=maybe", None, "", 400),
        ("GET", "/v1/rollouts/r1/devices/%FF", None, "", 400),
        ("POST", "/v1/rollouts", Some(&token), "{not json", 400),
        (
            "POST",
            "/v1/rollouts",
            Some(&token),
            r#"{"policy": 3}"#,
            400,
        ),
        ("POST", "/v1/rollouts", None, "{}", 401),
        ("POST", "/v1/rollouts/r1/approve", Some("wrong"), "", 401),
        ("POST", "/v1/rollouts", Some(&token), &big, 413),
    ];
    let validator = schema("error.v1.json");
    for (method, path, token, body, expected) in bad {
        let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let (answer, json) = json_error(&daemon, &request, expected, &validator);
        let what = format!("{method} {path}: {} {:?}", answer.status, answer.body);
        if expected == 405 {
            assert!(answer.header("allow").is_some(), "{what}");
        }
        if expected == 413 {
            let error = json["error"].as_str().unwrap();
            assert!(error.contains("65536 bytes"), "{error}");
            assert!(error.contains("--max-inventory-size"), "{error}");
        }
    }
    // Requests the HTTP layer cannot read (answered before any handler) too.
    let unreadable: Vec<(String, u16, &str)> = vec![
        ("GARBAGE\r\n\r\n".into(), 400, "malformed"),
        (
            "GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n".into(),
            400,
            "malformed",
        ),
        (
            "GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n".into(),
            400,
            "malformed",
        ),
        (
            format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                "a".repeat(100 << 10)
            ),
            431,
            "64 KiB",
        ),
    ];
    for (request, expected, says) in unreadable {
        let (_, json) = json_error(&daemon, &request, expected, &validator);
        let error = json["error"].as_str().unwrap();
        assert!(error.contains(says), "{error}");
    }
}

/// Sends `request` as it is; asserts the answer is `expected` with a JSON error body
/// valid against `validator`, and returns both.
fn json_error(
    daemon: &Daemon,
    request: &str,
    expected: u16,
    validator: &jsonschema::Validator,
) -> (Answer, Value) {
    let answer = Answer::parse(&daemon.raw(request.as_bytes()));
    let what = format!(
        "{:?}: {} {:?}",
        &request[..request.len().min(60)],
        answer.status,
        answer.body
    );
    assert_eq!(answer.status, expected, "{what}");
    assert_eq!(
        answer.header("content-type"),
        Some("application/json"),
        "{what}"
    );
    let json: Value = serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{what}: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(&json)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:?}");
    (answer, json)
}

/// `[[devices]]` of an inventory: `n` simulated workstations, the first in the lab.
fn inventory(n: usize) -> String {
    let mut out = String::with_capacity(n * 200);
    for i in 0..n {
        out.push_str(&format!(
            "[[devices]]\nid = \"ws-{i:06}\"\nsite = \"ams\"\ntimezone = \"Europe/Amsterdam\"\ntags = [{}]\ncomponents = {{ openssl = \"3.0.11\", linux = \"6.1.112\" }}\n\n",
            if i == 0 { "\"lab\"" } else { "" }
        ));
    }
    out
}

#[test]
fn an_inventory_of_100000_devices_is_started_and_a_larger_body_than_allowed_gets_a_json_413() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"));
    let approval = policy_file(dir.path(), "approval.toml", APPROVAL);
    let fleet = inventory(100_000);
    let fleet_path = policy_file(dir.path(), "fleet.toml", &fleet);
    let out = daemon.cli(&[
        "rollout",
        "start",
        "--policy",
        &approval,
        "--inventory",
        &fleet_path,
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let started: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = started["id"].as_str().unwrap().to_string();
    // Planned: the lab device in the first ring, every other one waiting for approval.
    let planned = daemon.wait_for(&id, |s| s["state"] == "awaiting-approval");
    assert_eq!(planned["rings"][0]["devices"], 1, "{planned}");
    assert_eq!(planned["rings"][1]["devices"], 99_999, "{planned}");
    assert!(daemon.cli(&["abort", &id]).status.success());

    // Over the limit: 413, in JSON, naming the limit and the option; the CLI says so.
    let small = Daemon::start_with(&dir.path().join("small"), &["--max-inventory-size", "1MiB"]);
    let out = small.cli(&[
        "rollout",
        "start",
        "--policy",
        &approval,
        "--inventory",
        &fleet_path,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("over 1048576 bytes"), "{err}");
    assert!(err.contains("--max-inventory-size"), "{err}");
}

/// A daemon started under `prlimit --nofile=N:N`.
fn daemon_with_file_limit(data: &Path, files: u32, args: &[&str]) -> Daemon {
    let mut prlimit = Command::new("prlimit");
    prlimit.arg(format!("--nofile={files}:{files}")).arg(BIN);
    Daemon::start_in(prlimit, data, args)
}

/// Waits (at most `bound`) until the daemon has closed `stream`: true if it did.
fn closed_by_the_daemon(stream: &mut std::net::TcpStream, bound: Duration) -> bool {
    stream.set_read_timeout(Some(bound)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn past_the_connection_cap_idle_sockets_make_room_and_healthz_answers() {
    let dir = tempfile::tempdir().unwrap();
    // Timeouts far beyond the test: only the cap can make room.
    let daemon = daemon_with_file_limit(
        &dir.path().join("data"),
        256,
        &["--header-timeout", "10m", "--idle-timeout", "10m"],
    );
    let idle: Vec<std::net::TcpStream> = (0..300)
        .map(|_| std::net::TcpStream::connect(daemon.addr()).unwrap())
        .collect();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(20)))
        .max_idle_connections(0)
        .build()
        .into();
    for _ in 0..5 {
        let answer = agent
            .get(format!("{}/healthz", daemon.url))
            .call()
            .expect("/healthz answers with 300 idle sockets open");
        assert_eq!(answer.status().as_u16(), 200);
    }
    let log = daemon.log();
    assert!(
        log.contains("accepting at most 192 connections: the file limit 256"),
        "{log}"
    );
    // Said once for the burst, not once per connection.
    assert_eq!(
        log.matches("connection limit reached: 192 connections open")
            .count(),
        1,
        "{log}"
    );
    assert!(!log.contains("Too many open files"), "{log}");
    assert!(!log.contains("cannot accept"), "{log}");
    drop(idle);
}

#[test]
fn slow_and_idle_clients_are_disconnected_and_event_streams_are_kept_alive_and_capped() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let daemon = daemon_with_file_limit(
        &dir.path().join("data"),
        256,
        &[
            "--header-timeout",
            "2s",
            "--idle-timeout",
            "3s",
            "--body-timeout",
            "2s",
            "--sse-keep-alive",
            "1s",
            "--max-event-streams",
            "2",
        ],
    );
    let connect = || std::net::TcpStream::connect(daemon.addr()).unwrap();
    // Half a header, then nothing: closed after the header timeout.
    let mut slow = connect();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    assert!(closed_by_the_daemon(&mut slow, Duration::from_secs(30)));
    // Connected, nothing sent: the same.
    let mut silent = connect();
    assert!(closed_by_the_daemon(&mut silent, Duration::from_secs(30)));
    // A kept-alive connection after its request: closed after the idle timeout.
    let mut kept = connect();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut first = [0u8; 1024];
    let n = kept.read(&mut first).unwrap();
    assert!(
        text(&first[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        text(&first[..n])
    );
    assert!(closed_by_the_daemon(&mut kept, Duration::from_secs(30)));
    // A body that stops arriving: 408 in JSON, and closed.
    let mut trickle = connect();
    trickle
        .write_all(
            format!(
                "POST /v1/rollouts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 1000\r\n\r\n{{\"policy\":",
                daemon.token()
            )
            .as_bytes(),
        )
        .unwrap();
    trickle
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut raw = Vec::new();
    let _ = trickle.read_to_end(&mut raw);
    let answer = Answer::parse(&text(&raw));
    assert_eq!(answer.status, 408, "{}", answer.body);
    let json: Value = serde_json::from_str(&answer.body).unwrap();
    assert_valid("error.v1.json", &json);
    assert!(json["error"].as_str().unwrap().contains("--body-timeout"));

    // Event streams: keep-alive comments while nothing happens, at most two at once.
    let approval = policy_file(dir.path(), "approval.toml", APPROVAL);
    let id = start(&daemon, &approval, 10, &[]);
    daemon.wait_for(&id, |s| s["state"] == "awaiting-approval");
    let open_stream = || {
        let mut stream = connect();
        stream
            .write_all(
                format!("GET /v1/rollouts/{id}/events/stream HTTP/1.1\r\nHost: x\r\n\r\n")
                    .as_bytes(),
            )
            .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        BufReader::new(stream)
    };
    let mut streams = Vec::new();
    for _ in 0..2 {
        let mut stream = open_stream();
        let mut status = String::new();
        stream.read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        // The log's events, then a keep-alive comment (a line starting with `:`).
        let mut line = String::new();
        loop {
            line.clear();
            stream
                .read_line(&mut line)
                .expect("a keep-alive comment within 10 s");
            if line.starts_with(':') {
                break;
            }
        }
        streams.push(stream);
    }
    let mut third = open_stream();
    let mut raw = String::new();
    let _ = third.read_to_string(&mut raw);
    let answer = Answer::parse(&raw);
    assert_eq!(answer.status, 503, "{raw}");
    let json: Value = serde_json::from_str(&answer.body).unwrap();
    assert_valid("error.v1.json", &json);
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("--max-event-streams")
    );
    // One closed: a stream can be opened again (once the daemon sees it gone).
    drop(streams.pop());
    let started = std::time::Instant::now();
    loop {
        let mut again = open_stream();
        let mut status = String::new();
        again.read_line(&mut status).unwrap();
        if status.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{status}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
