//! Compliance through the daemon, on a known simulated fleet whose devices really run
//! other versions than the inventory file says (`sim.drift.*`): the numbers of
//! `ringleader compliance` (JSON validated against its schema, CSV parsed back), its
//! filters, `GET /v1/compliance` and the gauges of `/metrics`.

use ringleader_tests::daemon::*;
use serde_json::Value;

/// The file says every device runs openssl 3.0.11; scans find what they really run.
/// The simulated vendor's patches: openssl 3.0.14 (high) and 3.0.15 (critical,
/// supersedes 3.0.14), linux 6.1.115 (medium), BMC 7.10.30 (high), BIOS 2.19.1
/// (medium), all released 2026-10-13.
const INVENTORY: &str = r#"
[[devices]]
id = "web-1"
tags = ["web", "lab"]
components = { openssl = "3.0.11", linux = "6.1.100" }

[[devices]]
id = "web-2"
tags = ["web"]
components = { openssl = "3.0.11", linux = "6.1.115" }
# Updated by hand to 3.0.14: that fix is in, 3.0.15's is not.
facts = { "sim.drift.openssl" = "3.0.14" }

[[devices]]
id = "web-3"
tags = ["web"]
components = { openssl = "3.0.11", linux = "6.1.100" }
facts = { "sim.drift.openssl" = "3.0.15", "sim.drift.linux" = "6.1.115" }

[[devices]]
id = "bmc-1"
components = { bmc-firmware = "7.0.0", bios = "2.10.0" }

[[devices]]
id = "gone-1"
transport = { kind = "ssh", address = "127.0.0.1:1" }
components = { openssl = "3.0.11" }
"#;

/// 50 days after the patches' release.
const AT: &str = "2026-12-02T00:00:00Z";

fn device<'a>(doc: &'a Value, id: &str) -> &'a Value {
    doc["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {doc}"))
}

fn missing(doc: &Value, id: &str) -> Vec<String> {
    device(doc, id)["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["patch"].as_str().unwrap().to_string())
        .collect()
}

fn severity<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["summary"]["by_severity"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["severity"] == name)
        .unwrap()
}

fn patch<'a>(doc: &'a Value, id: &str) -> &'a Value {
    doc["patches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {}", doc["patches"]))
}

#[test]
fn compliance_of_a_scanned_fleet_by_severity_cve_and_tag_as_json_csv_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fleet.toml");
    std::fs::write(&path, INVENTORY).unwrap();
    let inventory = path.display().to_string();
    let daemon = Daemon::start(&dir.path().join("data"));
    let out = daemon.cli(&["fleet", "scan", "--inventory", &inventory, "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "gone-1 fails: {}",
        text(&out.stderr)
    );

    let doc = daemon.json(&["compliance", "--at", AT, "--json"]);
    assert_valid("compliance.v1.json", &doc);
    assert_eq!(doc["at"], AT);
    let summary = &doc["summary"];
    assert_eq!(summary["devices"], 5, "{summary}");
    assert_eq!(summary["fully_patched"], 1, "web-3: {summary}");
    assert_eq!(summary["not_scanned_recently"], 1, "gone-1: {summary}");
    assert_eq!(summary["unreachable"], 1, "gone-1: {summary}");
    let share = |name: &str| {
        let s = severity(&doc, name);
        (
            s["devices_missing"].as_u64().unwrap(),
            s["share_patched"].as_f64().unwrap(),
        )
    };
    assert_eq!(share("critical"), (3, 0.4));
    assert_eq!(share("high"), (1, 0.8));
    assert_eq!(share("medium"), (2, 0.6));
    assert_eq!(share("low"), (0, 1.0));
    assert_eq!(severity(&doc, "critical")["oldest_missing_days"], 50);

    // Observed versions, not the file's: web-2 has 3.0.14's fix, web-3 everything.
    // 3.0.14 is superseded by 3.0.15 where both apply: counted once, as 3.0.15.
    assert_eq!(
        missing(&doc, "web-1"),
        ["debian-sim-openssl-3.0.15", "debian-sim-linux-6.1.115"]
    );
    let web1 = device(&doc, "web-1");
    assert_eq!(web1["observed"], true);
    assert_eq!(web1["reachable"], true);
    assert_eq!(web1["missing_by_severity"]["critical"], 1);
    assert_eq!(web1["missing_by_severity"]["medium"], 1);
    assert_eq!(web1["oldest_missing_days"], 50);
    let ssl = &web1["missing"][0];
    assert_eq!(
        ssl["covers"],
        serde_json::json!(["debian-sim-openssl-3.0.14"])
    );
    assert_eq!(ssl["installed"], "3.0.11");
    assert_eq!(missing(&doc, "web-2"), ["debian-sim-openssl-3.0.15"]);
    assert_eq!(device(&doc, "web-2")["missing"][0]["installed"], "3.0.14");
    assert_eq!(
        device(&doc, "web-2")["missing"][0]["covers"],
        serde_json::json!([])
    );
    assert_eq!(device(&doc, "web-3")["fully_patched"], true);
    assert_eq!(
        missing(&doc, "bmc-1"),
        ["acme-bmc-7.10.30", "acme-bios-2.19.1"]
    );
    // Never reached: the file's versions, its error, overdue.
    let gone = device(&doc, "gone-1");
    assert_eq!(gone["observed"], false);
    assert_eq!(gone["reachable"], false);
    assert_eq!(gone["error"]["kind"], "unreachable");
    assert_eq!(gone["scan_overdue"], true);
    assert_eq!(missing(&doc, "gone-1"), ["debian-sim-openssl-3.0.15"]);
    // Per patch: affected and patched devices.
    let counts = |id: &str| {
        let p = patch(&doc, id);
        (
            p["affected"].as_u64().unwrap(),
            p["patched"].as_u64().unwrap(),
        )
    };
    assert_eq!(counts("debian-sim-openssl-3.0.14"), (2, 2));
    assert_eq!(counts("debian-sim-openssl-3.0.15"), (3, 1));
    assert_eq!(counts("debian-sim-linux-6.1.115"), (1, 2));
    assert_eq!(counts("acme-bmc-7.10.30"), (1, 0));

    // Filters: at least critical; a CVE of the superseded patch; a tag.
    let critical = daemon.json(&["compliance", "--at", AT, "--severity", "critical", "--json"]);
    assert_valid("compliance.v1.json", &critical);
    assert_eq!(critical["summary"]["fully_patched"], 2, "bmc-1 and web-3");
    assert_eq!(missing(&critical, "web-1"), ["debian-sim-openssl-3.0.15"]);
    let cve = daemon.json(&["compliance", "--at", AT, "--cve", "CVE-2024-4603", "--json"]);
    assert_valid("compliance.v1.json", &cve);
    assert_eq!(missing(&cve, "web-1"), ["debian-sim-openssl-3.0.15"]);
    assert_eq!(missing(&cve, "gone-1"), ["debian-sim-openssl-3.0.15"]);
    assert_eq!(
        device(&cve, "web-2")["fully_patched"],
        true,
        "it has 3.0.14"
    );
    let ids: Vec<&str> = cve["patches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["debian-sim-openssl-3.0.14"]);
    let lab = daemon.json(&["compliance", "--at", AT, "--tag", "lab", "--json"]);
    assert_eq!(lab["summary"]["devices"], 1);
    assert_eq!(lab["devices"][0]["id"], "web-1");

    // CSV: a header, one row per device and missing patch, a CVE list quoted.
    let out = daemon.cli(&["compliance", "--at", AT, "--csv"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv_text = text(&out.stdout);
    assert!(
        csv_text.contains("\"CVE-2024-5535, CVE-2024-6119, CVE-2024-4603, CVE-2024-4741\""),
        "{csv_text}"
    );
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header[..3], ["device", "tags", "patch"]);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 6, "{csv_text}");
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let web1_ssl = rows
        .iter()
        .find(|r| &r[0] == "web-1" && &r[2] == "debian-sim-openssl-3.0.15")
        .unwrap();
    assert_eq!(
        &web1_ssl[column("cves")],
        "CVE-2024-5535, CVE-2024-6119, CVE-2024-4603, CVE-2024-4741"
    );
    assert_eq!(&web1_ssl[column("severity")], "critical");
    assert_eq!(&web1_ssl[column("age_days")], "50");
    assert_eq!(&web1_ssl[column("tags")], "web lab");

    // The table, the API and its errors.
    let table = daemon.cli(&["compliance", "--at", AT]);
    let table = text(&table.stdout);
    assert!(table.contains("1 of 5 devices fully patched"), "{table}");
    assert!(table.contains("debian-sim-openssl-3.0.15"), "{table}");
    let (code, api) = daemon.http("GET", &format!("/v1/compliance?at={AT}"), None, "");
    assert_eq!(code, 200, "{api}");
    assert_eq!(api["summary"], doc["summary"]);
    let (code, error) = daemon.http("GET", "/v1/compliance?severity=urgent", None, "");
    assert_eq!(code, 400, "{error}");
    assert!(
        error["error"].as_str().unwrap().contains("not a severity"),
        "{error}"
    );
    let out = daemon.cli(&["compliance", "--at", "yesterday"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));

    // `devices --fleet --behind`: the devices lacking a fix, across the fleet.
    let behind = daemon.json(&["devices", "--fleet", "--behind", "--json"]);
    assert_valid("compliance.v1.json", &behind);
    let ids: Vec<&str> = behind["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["bmc-1", "gone-1", "web-1", "web-2"]);
    let out = daemon.cli(&["devices", "--fleet", "--behind"]);
    let shown = text(&out.stdout);
    assert!(
        shown.contains("debian-sim-openssl-3.0.15 (critical)"),
        "{shown}"
    );
    assert!(!shown.contains("web-3"), "{shown}");

    // Gauges.
    let (code, metrics) = daemon.http("GET", "/metrics", None, "");
    assert_eq!(code, 200);
    let metrics = metrics.as_str().unwrap();
    for line in [
        "ringleader_compliance_devices_missing_fixes{severity=\"critical\"} 3",
        "ringleader_compliance_devices_missing_fixes{severity=\"high\"} 1",
        "ringleader_fleet_devices_not_scanned_recently 1",
        "ringleader_compliance_devices 5",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ringleader_compliance_oldest_missing_critical_fix_days ")),
        "{metrics}"
    );
}

#[test]
fn compliance_for_now_is_reused_until_a_scan_changes_the_registry() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("fleet.toml");
    std::fs::write(&inventory, INVENTORY).unwrap();
    let inventory = inventory.display().to_string();
    let daemon = Daemon::start(&dir.path().join("data"));
    let scan = |args: &[&str]| {
        let out = daemon.cli(args);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{}",
            text(&out.stderr)
        );
    };
    scan(&["fleet", "scan", "--inventory", &inventory, "--json"]);
    let now = || {
        let doc = daemon.json(&["compliance", "--json"]);
        assert_valid("compliance.v1.json", &doc);
        doc
    };
    let began = std::time::Instant::now();
    let first = now();
    // Compressed for a client that accepts it: the same document.
    let (encoding, vary, body) = gzip_get(&daemon, "/v1/compliance");
    assert_eq!(encoding.as_deref(), Some("gzip"));
    assert_eq!(vary.as_deref(), Some("accept-encoding"));
    let unpacked: Value = serde_json::from_slice(&gunzip(&body)).unwrap();
    assert_eq!(unpacked, first);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // The same registry and catalog, a second later: the same answer, computed once.
    let again = now();
    assert_eq!(again["at"], first["at"], "reused within 10 s");
    assert_eq!(again, first);
    // Past the reuse time: answered at once with the last one, while a newer one is
    // computed in the background, and then the newer one.
    std::thread::sleep(std::time::Duration::from_secs(10).saturating_sub(began.elapsed()));
    let stale = now();
    assert_eq!(
        stale["at"], first["at"],
        "the last answer, while a newer is computed"
    );
    let newer = (0..100)
        .map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(100));
            now()
        })
        .find(|doc| doc["at"] != first["at"])
        .expect("a newer answer within 10 s");
    assert_eq!(newer["summary"], first["summary"]);
    let first = newer;
    // A scan changes the registry: computed afresh.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    scan(&["fleet", "scan", "--device", "web-1", "--json"]);
    let after = now();
    assert_ne!(after["at"], first["at"], "{after}");
    // An explicit time is never a reused answer.
    let (status, at) = daemon.http(
        "GET",
        &format!("/v1/compliance?at={AT}"),
        Some(&daemon.token()),
        "",
    );
    assert_eq!(status, 200, "{at}");
    assert_eq!(at["at"], AT);
}

/// `GET path` accepting gzip: the answer's `Content-Encoding`, `Vary` and body.
fn gzip_get(daemon: &Daemon, path: &str) -> (Option<String>, Option<String>, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let request = ureq::http::Request::builder()
        .uri(format!("{}{path}", daemon.url))
        .header("Authorization", format!("Bearer {}", daemon.token()))
        .header("Accept-Encoding", "br;q=1, gzip;q=0.5")
        .body(Vec::new())
        .unwrap();
    let response = agent.run(request).unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let (encoding, vary) = (header("content-encoding"), header("vary"));
    let body = response.into_body().read_to_vec().unwrap();
    (encoding, vary, body)
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}
