//! `ringleader demo --continuous`: the standing schedule's logic over a simulated month
//! in virtual time, judged from what a script reads (`ringleader.demo-continuous/v1`):
//! the schedule's runs at their instants, approval rules holding patches back, a
//! critical fix published mid-month expedited within the schedule's delay, time to
//! patch, and the same month for the same seed.

use ringleader_tests::daemon::assert_valid;
use serde_json::Value;
use std::process::Command;

fn month(devices: &str, seed: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ringleader"))
        .args([
            "demo",
            "--continuous",
            "--json",
            "--devices",
            devices,
            "--seed",
            seed,
        ])
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
