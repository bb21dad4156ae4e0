//! `serve --schedules FILE`: the daemon runs a standing schedule in real time. A
//! critical patch first seen by the source polls starts an expedited rollout of that
//! patch alone within the schedule's `expedite_within`; one no device needs (each has
//! a newer version, as its last scan found) is a run
//! with nothing to do, recorded with why; a broken schedules file (or one naming a
//! source the daemon lacks) stops the daemon before it starts, located. Schedules by
//! the registry's tags and with their own sources take only those devices and patches.
//! A halted rollout holds its patches until an operator aborts it.

use ringleader_tests::daemon::*;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn patch(id: &str, component: &str, fixed: &str, severity: &str) -> String {
    format!(
        "[[patches]]\nid = \"{id}\"\ncomponent = \"{component}\"\nfixed-version = \"{fixed}\"\nkind = \"security\"\nseverity = \"{severity}\"\nreleased = \"2026-11-01\"\n"
    )
}

fn runs(daemon: &Daemon) -> Value {
    let out = daemon.cli(&["schedule", "runs", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_valid("scheduled-runs.v1.json", &doc);
    doc
}

fn until_runs(daemon: &Daemon, n: usize) -> Value {
    for _ in 0..150 {
        let doc = runs(daemon);
        if doc["runs"].as_array().unwrap().len() >= n {
            return doc;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("fewer than {n} runs: {:#}\n{}", runs(daemon), daemon.log());
}

#[test]
fn a_new_critical_patch_starts_an_expedited_rollout_of_it_alone_and_a_run_with_nothing_to_do_says_why()
 {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "fleet.toml",
        "[[devices]]\nid = \"ws-1\"\ncomponents = { openssl = \"3.0.11\" }\n\n[[devices]]\nid = \"ws-2\"\ncomponents = { openssl = \"3.0.11\" }\n",
    );
    write(
        dir.path(),
        "policy.toml",
        "name = \"fast\"\n[[rings]]\nname = \"all\"\nselect = \"rest\"\nmax_failures = \"100%\"\n\n[expedite]\nseverity = [\"critical\"]\n",
    );
    let schedules = write(
        dir.path(),
        "schedules.toml",
        "[[schedules]]\nname = \"weekly\"\nwhen = \"every monday 20:00\"\ninventory = \"fleet.toml\"\npolicy = \"policy.toml\"\nexpedite_within = \"1s\"\n",
    );
    let feed = dir.path().join("catalog.toml");
    let vendor = "vendor = \"corp\"\n";
    std::fs::write(
        &feed,
        format!("{vendor}{}", patch("corp-low", "openssl", "3.0.12", "low")),
    )
    .unwrap();
    let config = write(
        dir.path(),
        "ringleader.toml",
        &format!(
            "[sources]\npoll = \"1s\"\n[plugins.catalog-source]\nhttp = [\"{{setting:catalog}}\"]\nsettings = {{ catalog = \"file://{}\" }}\n",
            feed.display()
        ),
    );
    let daemon = Daemon::start_with(
        &dir.path().join("data"),
        &[
            "--config",
            &config,
            "--source",
            "catalog-source",
            "--schedules",
            &schedules,
        ],
    );
    // The registry learns the devices (the polls ask sources for its devices).
    let inventory = dir.path().join("fleet.toml").display().to_string();
    let out = daemon.cli(&["fleet", "scan", "--inventory", &inventory]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let doc = runs(&daemon);
    assert_eq!(doc["file"], schedules.as_str());
    assert_eq!(doc["schedules"][0]["name"], "weekly");
    let next: jiff::Timestamp = doc["schedules"][0]["next"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(next > jiff::Timestamp::now());
    assert_eq!(
        next.to_zoned(jiff::tz::TimeZone::UTC).weekday(),
        jiff::civil::Weekday::Monday
    );
    assert_eq!(doc["runs"], serde_json::json!([]));

    // A critical fix is published: its own run, of it alone, within the second.
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::write(
        &feed,
        format!(
            "{vendor}{}{}",
            patch("corp-low", "openssl", "3.0.12", "low"),
            patch("corp-crit", "openssl", "3.0.16", "critical")
        ),
    )
    .unwrap();
    let doc = until_runs(&daemon, 1);
    let run = &doc["runs"][0];
    assert_eq!(run["schedule"], "weekly");
    assert_eq!(run["expedited"], "corp-crit");
    assert_eq!(run["outcome"], "started", "{run:#}");
    assert_eq!(run["patches"], serde_json::json!(["corp-crit"]));
    assert_eq!(run["devices"], 2);
    let id = run["rollout"].as_str().unwrap().to_string();
    let out = daemon.cli(&["status", &id, "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let events = daemon.events(&id);
    let installed: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "step-succeeded")
        .collect();
    assert_eq!(installed.len(), 2, "{events:#?}");
    assert!(
        installed.iter().all(|e| e["patch"] == "corp-crit"),
        "the low one waits for the window"
    );
    assert_eq!(events[0]["by"], "schedule:weekly");

    // The devices are scanned again (they have 3.0.16 now); a critical fix for an
    // older version is published: no device needs it, a run with nothing to do.
    let out = daemon.cli(&["fleet", "scan", "--inventory", &inventory]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::write(
        &feed,
        format!(
            "{vendor}{}{}{}",
            patch("corp-low", "openssl", "3.0.12", "low"),
            patch("corp-crit", "openssl", "3.0.16", "critical"),
            patch("corp-old", "openssl", "3.0.13", "critical")
        ),
    )
    .unwrap();
    let doc = until_runs(&daemon, 2);
    let run = &doc["runs"][0];
    assert_eq!(run["expedited"], "corp-old");
    assert_eq!(run["outcome"], "nothing-to-do", "{run:#}");
    assert_eq!(
        run["why"],
        "no device needs corp-old: each has it, lacks what it patches or a prerequisite, or is in no ring"
    );
    assert!(run["rollout"].is_null());
    let out = daemon.cli(&["schedule", "runs"]);
    let shown = text(&out.stdout);
    assert!(shown.contains("weekly (expedited corp-crit)"), "{shown}");
    assert!(shown.contains(&format!("started       {id}")), "{shown}");
}

#[test]
fn a_broken_schedules_file_stops_the_daemon_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let schedules = write(
        dir.path(),
        "schedules.toml",
        "[[schedules]]\nname = \"weekly\"\nwhen = \"every funday 20:00\"\ninventory = \"fleet.toml\"\npolicy = \"missing.toml\"\n\n[[schedules]]\nname = \"web\"\nwhen = \"every monday 20:00\"\ntags = [\"web\"]\nsources = [\"csaf\"]\npolicy = \"missing.toml\"\n",
    );
    let data = dir.path().join("data");
    let out = std::process::Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .args(["--schedules", &schedules])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains(&format!("{schedules}:3:")), "{err}");
    assert!(err.contains("funday"), "{err}");
    // A source the daemon does not have, at its place, with the ones it has.
    assert!(
        err.contains(&format!(
            "{schedules}:11:12: `schedules[1].sources[0]`: `csaf` is not a source of this daemon (its sources: sim-vendor-source)"
        )),
        "{err}"
    );
}

/// The recurrence's run, on the real clock: at its minute, a rollout of what the
/// approval rules approve by then; a patch approved only later is left waiting, with
/// the time it will be. Three schedules share the minute: one patches the registry's
/// devices tagged `web` with the catalog's patches alone (the simulated vendor's are
/// not even waiting), one the inventory file with the simulated vendor's alone, and
/// one names a tag no device has: a run with nothing to do, and why. A device that
/// cannot take a patch (it lacks its prerequisite) is not counted.
#[test]
fn schedules_run_at_their_minute_on_their_devices_with_their_sources_patches() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = write(
        dir.path(),
        "fleet.toml",
        "[[devices]]\nid = \"ws-1\"\ntags = [\"web\"]\ncomponents = { openssl = \"3.0.11\", curl = \"8.0.0\", bmc-firmware = \"7.00.00\" }\n\n[[devices]]\nid = \"db-1\"\ntags = [\"db\"]\ncomponents = { openssl = \"3.0.11\", nic-firmware = \"22.0.0\" }\n",
    );
    write(
        dir.path(),
        "policy.toml",
        "name = \"plain\"\n[[rings]]\nname = \"all\"\nselect = \"rest\"\nmax_failures = \"100%\"\n",
    );
    // The next whole minute at least 15 s away.
    let now = jiff::Timestamp::now().as_second();
    let minute = (now + 15 + 59) / 60 * 60;
    let at = jiff::Timestamp::from_second(minute).unwrap();
    let hhmm = at.strftime("%H:%M").to_string();
    let when = format!("every 1 days from 2026-01-01 at {hhmm}");
    let schedules = write(
        dir.path(),
        "schedules.toml",
        &format!(
            "[[schedules]]\nname = \"daily\"\nwhen = \"{when}\"\ntags = [\"web\"]\nsources = [\"catalog-source\"]\npolicy = \"policy.toml\"\n\n[[schedules.approve]]\nseverities = [\"critical\"]\nafter_days = 0\n\n[[schedules.approve]]\nseverities = [\"low\"]\nafter_days = 3650\n\n[[schedules]]\nname = \"firmware\"\nwhen = \"{when}\"\ninventory = \"fleet.toml\"\nsources = [\"sim-vendor-source\"]\nkinds = [\"firmware\"]\npolicy = \"policy.toml\"\n\n[[schedules]]\nname = \"kiosks\"\nwhen = \"{when}\"\ntags = [\"kiosk\"]\npolicy = \"policy.toml\"\n"
        ),
    );
    // What the schedules file says, before the daemon runs it.
    let out = std::process::Command::new(bin())
        .args(["schedule", "list", "--json", "--schedules", &schedules])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_valid("schedules.v1.json", &doc);
    assert_eq!(doc["schedules"][0]["tags"], serde_json::json!(["web"]));
    assert_eq!(doc["schedules"][0]["inventory"], "");
    assert_eq!(
        doc["schedules"][0]["sources"],
        serde_json::json!(["catalog-source"])
    );
    assert_eq!(doc["schedules"][1]["inventory"], inventory.as_str());
    assert_eq!(doc["schedules"][2]["sources"], serde_json::json!([]));
    let out = std::process::Command::new(bin())
        .args(["schedule", "list", "--schedules", &schedules])
        .output()
        .unwrap();
    let shown = text(&out.stdout);
    assert!(
        shown.contains("devices:   the fleet registry's tagged web\n  sources:   catalog-source\n"),
        "{shown}"
    );
    assert!(
        shown.contains("sources:   every source of the daemon"),
        "{shown}"
    );

    let feed = dir.path().join("catalog.toml");
    std::fs::write(
        &feed,
        format!(
            "vendor = \"corp\"\n{}{}",
            patch("corp-ssl", "openssl", "3.0.16", "critical"),
            patch("corp-curl", "curl", "8.11.0", "low")
        ),
    )
    .unwrap();
    let config = write(
        dir.path(),
        "ringleader.toml",
        &format!(
            "[plugins.catalog-source]\nhttp = [\"{{setting:catalog}}\"]\nsettings = {{ catalog = \"file://{}\" }}\n",
            feed.display()
        ),
    );
    let daemon = Daemon::start_with(
        &dir.path().join("data"),
        &[
            "--config",
            &config,
            "--source",
            "catalog-source",
            "--source",
            "sim-vendor-source",
            "--schedules",
            &schedules,
        ],
    );
    let out = daemon.cli(&["fleet", "scan", "--inventory", &inventory]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc = runs(&daemon);
    assert_eq!(doc["schedules"][0]["next"], at.to_string());
    assert_eq!(doc["runs"], serde_json::json!([]));

    // Up to 75 s to the minute, and a little for the runs.
    let mut doc = Value::Null;
    for _ in 0..450 {
        doc = runs(&daemon);
        if doc["runs"].as_array().unwrap().len() >= 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let run_of = |name: &str| {
        doc["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["schedule"] == name)
            .unwrap_or_else(|| panic!("no run of {name}: {doc:#}"))
            .clone()
    };
    let run = run_of("daily");
    assert_eq!(run["at"], at.to_string(), "{doc:#}");
    assert!(run["expedited"].is_null());
    assert_eq!(run["outcome"], "started", "{run:#}");
    assert_eq!(run["patches"], serde_json::json!(["corp-ssl"]));
    assert_eq!(run["devices"], 1, "ws-1 alone has the tag: {run:#}");
    let waiting: Vec<&Value> = run["waiting"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| &w["id"])
        .collect();
    assert_eq!(
        waiting,
        ["corp-curl"],
        "not the simulated vendor's: {run:#}"
    );
    assert!(
        run["waiting"][0]["from"]
            .as_str()
            .unwrap()
            .starts_with("2036-"),
        "{run:#}"
    );
    let firmware = run_of("firmware");
    assert_eq!(firmware["outcome"], "started", "{firmware:#}");
    // db-1 lacks the NIC firmware's prerequisite (a BIOS): not counted, not patched.
    assert_eq!(
        firmware["patches"],
        serde_json::json!(["acme-bmc-7.10.30", "acme-nic-22.31.6"])
    );
    assert_eq!(firmware["devices"], 1, "{firmware:#}");
    let kiosks = run_of("kiosks");
    assert_eq!(kiosks["outcome"], "nothing-to-do", "{kiosks:#}");
    assert!(
        kiosks["why"]
            .as_str()
            .unwrap()
            .starts_with("no device of the fleet registry has the tag kiosk"),
        "{kiosks:#}"
    );
    // The next run is a day later.
    let next: jiff::Timestamp = doc["schedules"][0]["next"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(next.as_second() - minute, 86_400);
    for (run, patch) in [(&run, "corp-ssl"), (&firmware, "acme-bmc-7.10.30")] {
        let id = run["rollout"].as_str().unwrap().to_string();
        let out = daemon.cli(&["status", &id, "--wait"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        let events = daemon.events(&id);
        let patched: Vec<(Value, Value)> = events
            .iter()
            .filter(|e| e["type"] == "step-succeeded")
            .map(|e| (e["device"].clone(), e["patch"].clone()))
            .collect();
        assert_eq!(
            patched,
            [(Value::from("ws-1"), Value::from(patch))],
            "{id}: {events:#?}"
        );
    }
}

/// A rollout a halt stopped holds its patches, also after the daemon is killed and
/// started again: a later run that would roll out one of them (here an expedited fix
/// that needs it first) does nothing and says which rollout holds it and what to do;
/// once an operator aborts that rollout, the next run rolls the patch out again.
#[test]
fn a_halted_rollout_holds_its_patches_until_an_operator_aborts_it() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = write(
        dir.path(),
        "fleet.toml",
        "[[devices]]\nid = \"ws-1\"\ntags = [\"lab\"]\ncomponents = { openssl = \"3.0.11\", curl = \"8.0.0\" }\n\n[[devices]]\nid = \"ws-2\"\ncomponents = { openssl = \"3.0.11\", curl = \"8.0.0\" }\n",
    );
    write(
        dir.path(),
        "policy.toml",
        &format!("{APPROVAL}\n[expedite]\nseverity = [\"critical\"]\n"),
    );
    let schedules = write(
        dir.path(),
        "schedules.toml",
        "[[schedules]]\nname = \"weekly\"\nwhen = \"every monday 20:00\"\ninventory = \"fleet.toml\"\npolicy = \"policy.toml\"\nexpedite_within = \"1s\"\n",
    );
    let feed = dir.path().join("catalog.toml");
    let needs_ssl = |id: &str, fixed: &str| {
        format!(
            "{}prerequisites = [\"corp-ssl\"]\n",
            patch(id, "curl", fixed, "critical")
        )
    };
    let publish = |patches: &[String]| {
        std::fs::write(&feed, format!("vendor = \"corp\"\n{}", patches.concat())).unwrap()
    };
    publish(&[patch("corp-low", "openssl", "3.0.12", "low")]);
    let config = write(
        dir.path(),
        "ringleader.toml",
        &format!(
            "[sources]\npoll = \"1s\"\n[plugins.catalog-source]\nhttp = [\"{{setting:catalog}}\"]\nsettings = {{ catalog = \"file://{}\" }}\n",
            feed.display()
        ),
    );
    let serve = || {
        Daemon::start_with(
            &dir.path().join("data"),
            &[
                "--config",
                &config,
                "--source",
                "catalog-source",
                "--schedules",
                &schedules,
            ],
        )
    };
    let daemon = serve();
    let out = daemon.cli(&["fleet", "scan", "--inventory", &inventory]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // The critical openssl fix: the lab installs it, then an operator rolls it back.
    std::thread::sleep(Duration::from_millis(1500));
    let mut published = vec![
        patch("corp-low", "openssl", "3.0.12", "low"),
        patch("corp-ssl", "openssl", "3.0.16", "critical"),
    ];
    publish(&published);
    let doc = until_runs(&daemon, 1);
    let run = &doc["runs"][0];
    assert_eq!(run["outcome"], "started", "{run:#}");
    assert_eq!(run["patches"], serde_json::json!(["corp-ssl"]));
    let halted = run["rollout"].as_str().unwrap().to_string();
    daemon.wait_for(&halted, |s| s["state"] == "awaiting-approval");
    let out = daemon.cli(&["rollback", &halted]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = daemon.cli(&["status", &halted, "--wait"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    // Killed and started again: the rollout is halted still, and holds its patch.
    drop(daemon);
    let daemon = serve();

    // A critical curl fix that needs it first: held, with the rollout that holds it.
    published.push(needs_ssl("corp-curl", "8.11.0"));
    publish(&published);
    let doc = until_runs(&daemon, 2);
    let run = &doc["runs"][0];
    assert_eq!(run["expedited"], "corp-curl");
    assert_eq!(run["outcome"], "nothing-to-do", "{run:#}");
    assert_eq!(
        run["why"],
        format!(
            "held by a halted rollout: corp-curl, corp-ssl by {halted}; `ringleader retry` it after a fix, or `ringleader abort` it, and the next run takes what it leaves"
        )
    );
    assert!(run["rollout"].is_null());

    // Aborted, it holds nothing: the next fix that needs it rolls out both.
    let out = daemon.cli(&["abort", &halted]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    daemon.wait_for(&halted, |s| s["state"] == "aborted");
    published.push(needs_ssl("corp-curl-2", "8.11.1"));
    publish(&published);
    let doc = until_runs(&daemon, 3);
    let run = &doc["runs"][0];
    assert_eq!(run["expedited"], "corp-curl-2");
    assert_eq!(run["outcome"], "started", "{run:#}");
    assert_eq!(
        run["patches"],
        serde_json::json!(["corp-curl-2", "corp-ssl"])
    );
}
