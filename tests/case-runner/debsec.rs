//! The Debian security source, data-driven: one folder per case under
//! `tests/cases/debian-security/`:
//!
//! - `tracker.json`: the Debian Security Tracker's JSON, served over HTTP on 127.0.0.1
//!   as `/<case>/json`, or under the name in `served-as.txt` when there is one (a name
//!   ending in `.gz` is served gzip-compressed);
//! - `devices.txt`: one device a line, `ID WORD...`, each word `fact:KEY=VALUE` (a
//!   fact such as `fact:os-codename=bookworm`) or `PACKAGE=VERSION` (a component of no
//!   scheme), `PACKAGE=VERSION~deb` / `~rpm` (of that scheme), `PACKAGE/SOURCE=...`
//!   (a binary package built from the source package SOURCE);
//! - `expected.txt`: the patches (a block each, every field), then what the plugin
//!   logged at info and warn (`info: ...`, `warn: ...`, the read summary left out), or
//!   the error `discover` returned (`error: ...`); the server's address is `{base}`.
//!
//! Every patch also goes through the planner's catalog, which must accept it. Run with
//! `BLESS=1` to write the expected files, then review them.

use super::{expected, input};
use libtest_mimic::Failed;
use ringleader_tests::guests::debsec::{cases, source};
use ringleader_tests::guests::encode::gzip;
use ringleader_tests::guests::{Logs, device};
use ringleader_tests::peers::serve_files as serve;
use ringleader_types::{Patch, Scheme};
use std::collections::HashMap;

/// `devices.txt`.
fn devices(text: &str) -> Result<Vec<ringleader_types::Device>, String> {
    let mut out = Vec::new();
    for (n, l) in text.lines().enumerate() {
        if l.trim().is_empty() || l.starts_with('#') {
            continue;
        }
        let mut words = l.split_whitespace();
        let id = words.next().unwrap_or_default();
        let mut d = device(id, &[]);
        for w in words {
            let (key, value) = w
                .split_once('=')
                .ok_or_else(|| format!("devices.txt:{}: `{w}` is not KEY=VALUE", n + 1))?;
            if let Some(fact) = key.strip_prefix("fact:") {
                d.facts.push((fact.into(), value.into()));
                continue;
            }
            let (version, scheme) = match value.rsplit_once("~deb") {
                Some((v, "")) => (v, Some(Scheme::Deb)),
                _ => match value.rsplit_once("~rpm") {
                    Some((v, "")) => (v, Some(Scheme::Rpm)),
                    _ => (value, None),
                },
            };
            let (key, source) = match key.split_once('/') {
                Some((binary, source)) => (binary, Some(source.to_string())),
                None => (key, None),
            };
            let mut c = device("x", &[(key, version)]).components.remove(0);
            c.scheme = scheme;
            c.source = source;
            d.components.push(c);
        }
        out.push(d);
    }
    Ok(out)
}

/// `Severity::High` as `high`.
fn name_of(value: &impl std::fmt::Debug) -> String {
    let debug = format!("{value:?}");
    debug.rsplit("::").next().unwrap_or_default().to_lowercase()
}

/// A patch as a block of lines.
fn block(p: &Patch) -> String {
    let or_dash = |s: String| if s.is_empty() { "-".to_string() } else { s };
    format!(
        "{}\n  component: {}\n  fixed: {}\n  applies-to: {}\n  scheme: {}\n  title: {}\n  vendor: {}\n  kind: {}\n  severity: {}\n  cves: {}\n  released: {}\n  reboot: {}\n  supersedes: {}\n  prerequisites: {}\n  url: {}\n  sha256: {}\n",
        p.id,
        p.component,
        p.fixed_version,
        or_dash(p.applies_to.clone()),
        p.scheme.map_or("-".to_string(), |s| s.to_string()),
        p.title,
        p.vendor,
        name_of(&p.kind),
        name_of(&p.severity),
        or_dash(p.cves.join(", ")),
        p.released,
        p.reboot_required,
        or_dash(p.supersedes.join(", ")),
        or_dash(p.prerequisites.join(", ")),
        or_dash(p.artifact.url.clone()),
        or_dash(p.artifact.sha256.clone()),
    )
}

/// The plugin's info and warn lines among the captured log, without the decoration;
/// not the summary (`read URL: ...`).
fn logged(log: &str, base: &str) -> Vec<String> {
    const TAG: &str = "plugin=debian-security-source";
    log.lines()
        .filter(|l| l.contains(TAG))
        .filter_map(|l| {
            let level = if l.contains(" INFO ") {
                "info"
            } else if l.contains(" WARN ") {
                "warn"
            } else {
                return None;
            };
            let message = l.split_once(": ").map_or(l, |(_, m)| m).trim();
            let message = message.strip_suffix(TAG).unwrap_or(message).trim();
            (!message.starts_with("read "))
                .then(|| format!("{level}: {}\n", message.replace(base, "{base}")))
        })
        .collect()
}

/// The case `name`: its tracker file, served as the case says, read for its devices.
pub async fn case(name: String) -> Result<(), Failed> {
    let bless = std::env::var_os("BLESS").is_some();
    let dir = cases().join(&name);
    let json = input(&dir, "tracker.json")?;
    let served_as = std::fs::read_to_string(dir.join("served-as.txt"))
        .map_or_else(|_| "json".to_string(), |s| s.trim().to_string());
    let body = if served_as.ends_with(".gz") {
        gzip(&json)
    } else {
        json
    };
    let path = format!("/{name}/{served_as}");
    let base = serve(HashMap::from([(path.clone(), body)]));
    let devices_txt =
        String::from_utf8(input(&dir, "devices.txt")?).map_err(|e| format!("devices.txt: {e}"))?;
    let fleet = devices(&devices_txt)?;
    let (logs, _capture) = Logs::capture();
    let plugin = source(Some(&format!("{base}{path}"))).await;
    let mut got = String::new();
    match plugin.discover(&fleet).await {
        Ok(patches) => {
            let reported = patches
                .iter()
                .map(|p| (p.clone(), "debian-security-source".to_string()))
                .collect();
            let catalog = ringleader_planner::catalog::Catalog::build(reported)
                .map_err(|e| format!("{name}: the catalog refused the patches: {e:?}"))?;
            if !catalog.refused.is_empty() {
                return Err(format!("{name}: refused {:?}", catalog.refused).into());
            }
            for p in &patches {
                got.push_str(&block(p));
            }
        }
        Err(e) => got.push_str(&format!(
            "error: {}\n",
            e.to_string().replace(&base, "{base}")
        )),
    }
    let log = logs.text();
    if std::env::var_os("SHOW_LOG").is_some() {
        eprintln!("{name}: {log}");
    }
    got.extend(logged(&log, &base));
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
