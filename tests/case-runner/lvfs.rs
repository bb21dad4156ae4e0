//! The LVFS firmware source, data-driven: one folder per case under `tests/cases/lvfs/`:
//!
//! - `metadata.xml`: the AppStream metadata, served over HTTP on 127.0.0.1 as
//!   `/<case>/firmware.xml`, or under the name in `served-as.txt` when there is one;
//!   a name ending in `.gz` or `.zst` is served compressed that way.
//! - `devices.txt`: one device a line, `ID COMPONENT=VERSION...`.
//! - `expected.txt`: the patches (one block each), then the plugin's warnings, or the
//!   error `discover` returned; the server's address is written `{base}`.
//!
//! Every patch also goes through the planner's catalog, which must accept it (its
//! versions and `applies-to` range). Run with `BLESS=1` to write the expected files,
//! then review them.

use super::{expected, input};
use libtest_mimic::Failed;
use ringleader_tests::guests::encode::{gzip, zstd};
use ringleader_tests::guests::lvfs::{cases, source};
use ringleader_tests::guests::{Logs, device};
use ringleader_tests::peers::serve_files as serve;
use ringleader_types::Patch;
use std::collections::HashMap;

/// `devices.txt`: `ID COMPONENT=VERSION...` per line.
fn devices(text: &str) -> Vec<ringleader_types::Device> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut words = l.split_whitespace();
            let id = words.next().unwrap();
            let components: Vec<(&str, &str)> = words
                .map(|w| w.split_once('=').expect("COMPONENT=VERSION"))
                .collect();
            device(id, &components)
        })
        .collect()
}

/// `Severity::High` as `high`.
fn name_of(value: &impl std::fmt::Debug) -> String {
    let debug = format!("{value:?}");
    debug.rsplit("::").next().unwrap_or_default().to_lowercase()
}

/// A patch as a block of lines, every field.
fn block(p: &Patch, base: &str) -> String {
    let or_dash = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    let released = jiff::Timestamp::from_second(p.released)
        .map_or_else(|_| "out of range".into(), |t| t.to_string());
    format!(
        "{}\n  component: {}\n  fixed: {}\n  applies-to: {}\n  title: {}\n  vendor: {}\n  kind: {}\n  severity: {}\n  cves: {}\n  released: {} ({released})\n  reboot: {}\n  supersedes: {}\n  prerequisites: {}\n  url: {}\n  sha256: {}\n  size: {}\n",
        p.id,
        p.component,
        p.fixed_version,
        or_dash(&p.applies_to),
        p.title,
        p.vendor,
        name_of(&p.kind),
        name_of(&p.severity),
        or_dash(&p.cves.join(", ")),
        p.released,
        p.reboot_required,
        or_dash(&p.supersedes.join(", ")),
        or_dash(&p.prerequisites.join(", ")),
        p.artifact.url.replace(base, "{base}"),
        p.artifact.sha256,
        p.artifact.size,
    )
}

/// The plugin's warnings among the captured log lines, without the log's decoration.
fn warnings(log: &str, base: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(" WARN ") && l.contains("plugin=lvfs-source"))
        .map(|l| {
            let message = l.split_once(": ").map_or(l, |(_, m)| m).trim();
            let message = message
                .strip_suffix("plugin=lvfs-source")
                .unwrap_or(message);
            format!("warn: {}\n", message.trim().replace(base, "{base}"))
        })
        .collect()
}

/// The case `name`: its metadata, served as the case says, read for its devices.
pub async fn case(name: String) -> Result<(), Failed> {
    let bless = std::env::var_os("BLESS").is_some();
    let dir = cases().join(&name);
    let xml = input(&dir, "metadata.xml")?;
    let served_as = std::fs::read_to_string(dir.join("served-as.txt"))
        .map_or_else(|_| "firmware.xml".to_string(), |s| s.trim().to_string());
    let body = if served_as.ends_with(".gz") {
        gzip(&xml)
    } else if served_as.ends_with(".zst") {
        zstd(&xml)
    } else {
        xml
    };
    let path = format!("/{name}/{served_as}");
    let base = serve(HashMap::from([(path.clone(), body)]));
    let devices_txt =
        String::from_utf8(input(&dir, "devices.txt")?).map_err(|e| format!("devices.txt: {e}"))?;
    let fleet = devices(&devices_txt);
    let (logs, _capture) = Logs::capture();
    let plugin = source(Some(&format!("{base}{path}"))).await;
    let mut got = String::new();
    match plugin.discover(&fleet).await {
        Ok(patches) => {
            // The host takes every patch: versions and ranges it can read.
            let reported = patches
                .iter()
                .map(|p| (p.clone(), "lvfs-source".to_string()))
                .collect();
            let catalog = ringleader_planner::catalog::Catalog::build(reported).unwrap();
            assert!(catalog.refused.is_empty(), "{name}: {:?}", catalog.refused);
            // Only components the devices have.
            for p in &patches {
                assert!(
                    fleet
                        .iter()
                        .any(|d| d.components.iter().any(|c| c.name == p.component)),
                    "{name}: {} is on no device",
                    p.id
                );
            }
            for p in &patches {
                got.push_str(&block(p, &base));
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
    got.extend(warnings(&log, &base));
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
