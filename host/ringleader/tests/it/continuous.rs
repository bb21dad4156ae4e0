//! `ringleader demo --continuous`: the standing schedule's logic over a simulated month
//! in virtual time, judged from what a script reads (`ringleader.demo-continuous/v1`):
//! the schedule's runs at their instants, approval rules holding patches back, a
//! critical fix published mid-month expedited within the schedule's delay, time to
//! patch, the same month for the same seed, and halted rollouts holding their patches.

use ringleader_tests::daemon::assert_valid;
use serde_json::Value;
use std::process::Command;

fn month(devices: &str, seed: &str) -> Value {
    month_with(&["--devices", devices, "--seed", seed])
}

fn month_with(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ringleader"))
        .args(["demo", "--continuous", "--json"])
        .args(args)
        .env("RINGLEADER_LOG", "error")
        .output()
        .expect("run ringleader");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    assert_eq!(out.status.code(), Some(0), "{doc:#}");
    assert_valid("demo-continuous.v1.json", &doc);
    doc
}

fn runs(doc: &Value, expedited: bool) -> Vec<&Value> {
    doc["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["expedited"].is_string() == expedited)
        .collect()
}

fn first_seen(doc: &Value, id: &str) -> String {
    doc["publications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("{id} is not published: {doc:#}"))["first_seen"]
        .as_str()
        .unwrap()
        .to_string()
}

fn has(run: &Value, id: &str) -> bool {
    run["patches"].as_array().unwrap().iter().any(|p| p == id)
}

fn waits(run: &Value, id: &str) -> Option<String> {
    run["waiting"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == id)
        .map(|w| w["from"].as_str().unwrap().to_string())
}

#[test]
fn a_simulated_month_runs_the_schedule_holds_patches_for_approval_and_expedites_the_critical_fix() {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| month("60", "7"));
        let b = s.spawn(|| month("60", "7"));
        (a.join().unwrap(), b.join().unwrap())
    });
    // The same seed, the same month: every publication, run, rollout and figure.
    let strip = |mut d: Value| {
        d.as_object_mut().unwrap().remove("real_duration_ms");
        d
    };
    assert_eq!(
        strip(a.clone()),
        strip(b),
        "the month differs between two runs"
    );

    // `every tuesday at 22:00 Europe/Amsterdam`: 21:00 UTC in November (CET).
    let weekly: Vec<&str> = runs(&a, false)
        .iter()
        .map(|r| r["at"].as_str().unwrap())
        .collect();
    assert_eq!(
        weekly,
        [
            "2026-11-03T21:00:00Z",
            "2026-11-10T21:00:00Z",
            "2026-11-17T21:00:00Z",
            "2026-11-24T21:00:00Z",
            "2026-12-01T21:00:00Z"
        ]
    );
    let first = runs(&a, false)[0];
    assert_eq!(first["outcome"], "started", "{first:#}");

    // approve_after_days: the high BMC follow-up, published 2026-11-10 14:00, waits 3
    // days; the medium kernel, published 2026-11-04 09:00, waits 7.
    let at = |day: &str| {
        runs(&a, false)
            .into_iter()
            .find(|r| r["at"].as_str().unwrap().starts_with(day))
            .unwrap()
    };
    assert_eq!(
        waits(at("2026-11-10"), "acme-bmc-7.10.31").as_deref(),
        Some("2026-11-13T14:00:00Z"),
        "{:#}",
        at("2026-11-10")
    );
    assert_eq!(
        waits(at("2026-11-10"), "debian-sim-linux-6.1.119").as_deref(),
        Some("2026-11-11T09:00:00Z")
    );
    for r in runs(&a, false) {
        if r["at"].as_str().unwrap() < "2026-11-13T14:00:00Z" {
            assert!(
                !has(r, "acme-bmc-7.10.31"),
                "rolled out before approval: {r:#}"
            );
        }
        if r["at"].as_str().unwrap() < "2026-11-11T09:00:00Z" {
            assert!(
                !has(r, "debian-sim-linux-6.1.119"),
                "before approval: {r:#}"
            );
        }
    }
    assert!(
        has(at("2026-11-17"), "acme-bmc-7.10.31"),
        "{:#}",
        at("2026-11-17")
    );
    assert!(has(at("2026-11-17"), "debian-sim-linux-6.1.119"));

    // The critical openssl fix published mid-month: first seen at the poll after its
    // release (16:00), expedited 15 minutes later on its own, and installed.
    assert_eq!(
        first_seen(&a, "debian-sim-openssl-3.0.16"),
        "2026-11-17T16:00:00Z"
    );
    let expedited = runs(&a, true)
        .into_iter()
        .find(|r| r["expedited"] == "debian-sim-openssl-3.0.16")
        .unwrap_or_else(|| panic!("not expedited: {a:#}"));
    assert_eq!(expedited["at"], "2026-11-17T16:15:00Z");
    assert_eq!(expedited["outcome"], "started");
    assert_eq!(
        expedited["patches"],
        serde_json::json!(["debian-sim-openssl-3.0.16"])
    );
    let rollout = a["rollouts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == expedited["rollout"])
        .unwrap();
    assert_eq!(rollout["expedited"], true);
    assert!(rollout["installs"].as_u64().unwrap() > 0, "{rollout:#}");
    // The weekly run that evening leaves it to the expedited rollout.
    assert!(!has(at("2026-11-17"), "debian-sim-openssl-3.0.16"));

    // Time to patch: the critical fixes, expedited, are all installed within 14 days.
    let critical = a["time_to_patch"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["severity"] == "critical")
        .unwrap();
    assert!(critical["pairs"].as_u64().unwrap() > 0, "{critical:#}");
    assert_eq!(critical["outstanding"], 0, "{critical:#}");
    assert_eq!(critical["within_14_days"], 1.0, "{critical:#}");
    assert_eq!(a["time_to_patch"][0]["severity"], "critical");
}

/// Installs that fail often halt the first rollouts in their lab ring. The simulation
/// has no operator to retry or abort them, so no later rollout takes what they halted
/// on, and the next run, which would, says which rollout holds it.
#[test]
fn a_halted_rollout_s_patches_are_not_rolled_out_again() {
    let doc = month_with(&["--fail-permille", "60", "--devices", "400", "--days", "10"]);
    let rollouts = doc["rollouts"].as_array().unwrap();
    let halted: Vec<&Value> = rollouts.iter().filter(|r| r["state"] == "halted").collect();
    assert!(!halted.is_empty(), "{doc:#}");
    let last_end = halted
        .iter()
        .map(|r| r["finished"].as_str().unwrap())
        .max()
        .unwrap();
    let patches = |r: &Value| -> Vec<String> {
        r["patches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect()
    };
    for h in &halted {
        let finished = h["finished"].as_str().unwrap();
        for later in rollouts
            .iter()
            .filter(|r| r["started"].as_str().unwrap() > finished)
        {
            let again: Vec<String> = patches(later)
                .into_iter()
                .filter(|p| patches(h).contains(p))
                .collect();
            assert!(
                again.is_empty(),
                "{} rolls out {again:?} again, which {} halted on: {doc:#}",
                later["id"],
                h["id"]
            );
        }
    }
    let held = doc["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["at"].as_str().unwrap() > last_end)
        .unwrap_or_else(|| panic!("no run after the halts: {doc:#}"));
    assert_eq!(held["outcome"], "nothing-to-do", "{held:#}");
    let why = held["why"].as_str().unwrap();
    assert!(why.starts_with("held by a halted rollout: "), "{held:#}");
    assert!(
        why.ends_with("(the simulation has no operator to retry or abort it)"),
        "{held:#}"
    );
    for h in &halted {
        let by = format!("{} by {}", patches(h).join(", "), h["id"].as_str().unwrap());
        assert!(why.contains(&by), "{by}: {held:#}");
    }
}
