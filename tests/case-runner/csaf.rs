//! The CSAF advisory source, data-driven: one folder per case under
//! `tests/cases/csaf/`, each an `advisory.json` served over HTTP on 127.0.0.1 and the
//! expected patches (or the error naming the place in the document) in `expected.txt`.
//! Optional, checked when present: `schemes.txt`, the patches that name a version
//! scheme (`ID SCHEME` a line, sorted); `log.txt`, lines the source must log (`$URL` is
//! the document's URL). Run with `BLESS=1` to write the expected files (`expected.txt`
//! only), then review them.

use super::{expected, input};
use libtest_mimic::Failed;
use ringleader_tests::guests::Logs;
use ringleader_tests::guests::csaf::{cases, fleet, source};
use ringleader_tests::peers::serve_files as serve;
use std::collections::HashMap;

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

/// The case `name`: its advisory, alone in a feed, read for [`fleet`].
pub async fn case(name: String) -> Result<(), Failed> {
    let bless = std::env::var_os("BLESS").is_some();
    let dir = cases().join(&name);
    let files = HashMap::from([
        (
            format!("/{name}/advisory.json"),
            input(&dir, "advisory.json")?,
        ),
        (
            format!("/{name}/index.txt"),
            b"# one advisory\nadvisory.json\n".to_vec(),
        ),
    ]);
    let base = serve(files);
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
    let mut schemes: Vec<String> = patches
        .iter()
        .filter_map(|p| Some(format!("{} {}\n", p.id, p.scheme?)))
        .collect();
    schemes.sort();
    let schemes = schemes.concat();
    if let Ok(expected) = std::fs::read_to_string(dir.join("schemes.txt"))
        && expected != schemes
    {
        return Err(format!("{name}: schemes\n--- expected\n{expected}--- got\n{schemes}").into());
    }
    if let Ok(expected) = std::fs::read_to_string(dir.join("log.txt")) {
        let url = format!("{base}/{name}/advisory.json");
        for line in expected.lines().map(|l| l.replace("$URL", &url)) {
            if !log.contains(&line) {
                return Err(format!("{name}: not logged: {line}\n--- log\n{log}").into());
            }
        }
    }
    let got = got.iter().map(|l| format!("{l}\n")).collect::<String>();
    if bless {
        std::fs::write(dir.join("expected.txt"), &got)
            .map_err(|e| format!("write expected.txt: {e}"))?;
        return Ok(());
    }
    let expected = expected(&dir)?;
    if got != expected {
        return Err(format!("{name}:\n--- expected\n{expected}--- got\n{got}").into());
    }
    Ok(())
}
