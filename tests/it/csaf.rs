//! The CSAF advisory source, data-driven: one folder per case under
//! `tests/cases/csaf/`, each an `advisory.json` served over HTTP on 127.0.0.1 and the
//! expected patches (or the error naming the place in the document) in `expected.txt`.
//! Run with `BLESS=1` to write the expected files, then review them.

use super::*;
use ringleader_tests::peers::serve_files as serve;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn cases() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cases/csaf")
}

async fn source(index: &str) -> Plugin {
    let manifest = ringleader_runtime::Manifest::load(&manifest("csaf-source")).unwrap();
    let mut grants = Grants::default();
    grants.allow_as_declared("csaf-source", &manifest.capabilities);
    if let Some(grant) = grants.plugins.get_mut("csaf-source") {
        grant.settings.insert("index".into(), index.into());
    }
    let rt = runtime(grants, Services::default());
    load(&rt, "csaf-source").await
}

fn fleet() -> Vec<ringleader_types::Device> {
    vec![
        device(
            "rhel-1",
            &[
                ("telnet", "1:0.17-64.el7"),
                ("telnet-server", "1:0.17-64.el7"),
            ],
        ),
        device(
            "deb-1",
            &[
                ("openssl", "3.0.11-1"),
                ("libssl3", "3.0.11-1"),
                ("shim", "15.7"),
            ],
        ),
        device(
            "deb-2",
            &[("hello", "1.0"), ("libhello", "1.0"), ("hello-doc", "1.0")],
        ),
    ]
}

/// One line per patch: id, component, fixed version, severity, CVEs, release time,
/// artifact URL, and its SHA-256 when the advisory gives one.
fn line(p: &ringleader_types::Patch) -> String {
    let sha256 = if p.artifact.sha256.is_empty() {
        String::new()
    } else {
        format!(" sha256:{}", p.artifact.sha256)
    };
    format!(
        "{} {} {} {} {} {} {}{sha256}",
        p.id,
        p.component,
        p.fixed_version,
        format!("{:?}", p.severity)
            .rsplit("::")
            .next()
            .unwrap_or_default()
            .to_lowercase(),
        p.cves.join(","),
        p.released,
        if p.artifact.url.is_empty() {
            "-"
        } else {
            &p.artifact.url
        }
    )
}

#[tokio::test]
async fn csaf_cases() {
    let bless = std::env::var_os("BLESS").is_some();
    let names = case_names(&cases(), 8);
    let mut files = HashMap::new();
    for name in &names {
        let body = std::fs::read(cases().join(name).join("advisory.json")).unwrap();
        files.insert(format!("/{name}/advisory.json"), body);
        files.insert(
            format!("/{name}/index.txt"),
            b"# one advisory\nadvisory.json\n".to_vec(),
        );
    }
    let base = serve(files);
    let mut failures = Vec::new();
    for name in &names {
        let (logs, _capture) = Logs::capture();
        let plugin = source(&format!("{base}/{name}/index.txt")).await;
        let patches = plugin.discover(&fleet()).await.unwrap();
        let mut got: Vec<String> = patches.iter().map(line).collect();
        got.sort();
        let log = logs.text();
        if std::env::var_os("SHOW_LOG").is_some() {
            eprintln!("{name}: {log}");
        }
        for warning in log.lines() {
            assert!(!warning.contains("could not be fetched"), "{warning}");
            if let Some(why) = warning.split("is not valid CSAF 2.0: ").nth(1) {
                // The warning names the document.
                assert!(
                    warning.contains(&format!("/{name}/advisory.json")),
                    "{warning}"
                );
                let why = why.trim();
                let why = why.strip_suffix("plugin=csaf-source").unwrap_or(why);
                got.push(format!("error: {}", why.trim()));
            }
        }
        let got = got.iter().map(|l| format!("{l}\n")).collect::<String>();
        let expected_file = cases().join(name).join("expected.txt");
        if bless {
            std::fs::write(&expected_file, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_file).unwrap_or_default();
        if got != expected {
            failures.push(format!("{name}:\n--- expected\n{expected}--- got\n{got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    a_broken_or_missing_advisory_does_not_stop_the_others().await;
}

/// Part of `csaf_cases`, run after it.
async fn a_broken_or_missing_advisory_does_not_stop_the_others() {
    let mut files = HashMap::new();
    for name in [
        "rpm-names-and-relationships",
        "not-json",
        "purls-and-cvss-scores",
    ] {
        files.insert(
            format!("/feed/{name}.json"),
            std::fs::read(cases().join(name).join("advisory.json")).unwrap(),
        );
    }
    // A port nothing listens on: connection refused.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    files.insert(
        "/feed/index.txt".into(),
        format!("rpm-names-and-relationships.json\nnot-json.json\nmissing.json\nhttp://127.0.0.1:{closed}/gone.json\npurls-and-cvss-scores.json\n")
            .into_bytes(),
    );
    let base = serve(files);
    let plugin = source(&format!("{base}/feed/index.txt")).await;
    let (logs, capture) = Logs::capture();
    let patches = plugin.discover(&fleet()).await.unwrap();
    drop(capture);
    // Each document that could not be fetched is named, with a sentence saying why:
    // the host's (naming the URL) or the server's answer, never Rust's debug form.
    let log = logs.text();
    let missing = format!("{base}/feed/missing.json");
    assert!(
        log.contains(&format!(
            "advisory {missing} could not be fetched: {missing} answered HTTP 404 (transient error, tried twice)"
        )),
        "{log}"
    );
    let gone = format!("http://127.0.0.1:{closed}/gone.json");
    assert!(
        log.contains(&format!(
            "advisory {gone} could not be fetched: GET {gone}: "
        )),
        "{log}"
    );
    assert!(!log.contains("Transient("), "{log}");
    let ids: Vec<&str> = patches.iter().map(|p| p.id.as_str()).collect();
    assert!(ids.contains(&"RHSA-2022:0011/telnet"), "{ids:?}");
    assert!(ids.contains(&"EXL-2024-0042/openssl"), "{ids:?}");
    // Only packages the devices have.
    let one = vec![device("only-openssl", &[("openssl", "3.0.11-1")])];
    let patches = plugin.discover(&one).await.unwrap();
    assert!(
        patches.iter().all(|p| p.component == "openssl"),
        "{patches:?}"
    );

    // Without the operator's setting, the error says what to set.
    let unset = {
        let manifest = ringleader_runtime::Manifest::load(&manifest("csaf-source")).unwrap();
        let mut grants = Grants::default();
        grants.allow_as_declared("csaf-source", &manifest.capabilities);
        load(&runtime(grants, Services::default()), "csaf-source").await
    };
    let err = unset.discover(&fleet()).await.unwrap_err().to_string();
    assert!(err.contains("settings = { index"), "{err}");
}
