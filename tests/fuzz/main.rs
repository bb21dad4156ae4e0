//! Fuzzing on stable Rust: every parser of a file people write, fed mutations of the
//! project's own files, must answer with a value or a located error; never a panic,
//! never a hang.
//!
//! Targets: `policy` (then planned, so its times go through the scheduler),
//! `inventory-toml`, `inventory-json`, `catalog-toml`, `catalog-json` (an operator's
//! catalog, `ringleader-catalog`; valid ones then built into the planner's catalog),
//! `manifest`, `config` (the operator config:
//! `[plugins.NAME]`, `[credentials.NAME]`), and `csaf` and `lvfs`: the feed parsers of
//! the `csaf-source` and `lvfs-source` plugins, through the runtime (`plugins.rs`).
//! Seeds of the parsers: every file under
//! `rollout-policies/`, `docs/examples/` and `tests/cases/`. Mutations (byte flips,
//! inserts, deletions, duplications, splices of two seeds, TOML/JSON tokens and
//! hostile values) come from a small PRNG seeded per target, so a run is reproducible
//! from its seed.
//!
//! Each target runs for `RINGLEADER_FUZZ_SECS` seconds (default 8: about a minute in
//! all with the replays), `RINGLEADER_FUZZ_SEED` picks another seed,
//! `RINGLEADER_FUZZ_TARGETS=csaf,lvfs` runs only those. Inputs under
//! `tests/cases/fuzz/<target>/` (crashes found once) are replayed first, every run. A
//! failing input is written to `target/fuzz-failures/<target>/` and named in the
//! failure: move it to `tests/cases/fuzz/<target>/` with the fix. See `docs/fuzzing.md`.

mod plugins;

use ringleader_planner::catalog::Catalog;
use ringleader_planner::inventory::{Inventory, InventoryError};
use ringleader_planner::plan::Planner;
use ringleader_planner::policy::Policy;
use ringleader_runtime::OperatorConfig;
use ringleader_runtime::config::ConfigError;
use ringleader_runtime::manifest::{Manifest, ManifestError};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An input this long is not worth parsing (the parsers are linear; bigger inputs only
/// cost executions).
const MAX_INPUT: usize = 64 * 1024;

/// An input that takes longer than this is a hang.
const HANG: Duration = Duration::from_secs(10);

/// What a target checks an input with: made once per run, on the fuzzing thread (the
/// plugin targets keep one file server and one loaded plugin for all their inputs).
type Checker = Box<dyn FnMut(&[u8]) -> Result<(), String>>;

struct Target {
    name: &'static str,
    /// The inputs mutated.
    seeds: fn() -> Vec<Vec<u8>>,
    mutate: fn(&mut Rng, &[Vec<u8>]) -> Vec<u8>,
    start: fn() -> Checker,
}

const fn parser(name: &'static str, start: fn() -> Checker) -> Target {
    Target {
        name,
        seeds: corpus,
        mutate,
        start,
    }
}

const TARGETS: &[Target] = &[
    parser("policy", || Box::new(policy)),
    parser("inventory-toml", || Box::new(inventory_toml)),
    parser("inventory-json", || Box::new(inventory_json)),
    parser("catalog-toml", || Box::new(catalog_toml)),
    parser("catalog-json", || Box::new(catalog_json)),
    parser("manifest", || Box::new(manifest)),
    parser("config", || Box::new(config)),
    Target {
        name: "csaf",
        seeds: plugins::csaf_seeds,
        mutate: plugins::csaf_mutate,
        start: plugins::csaf,
    },
    Target {
        name: "lvfs",
        seeds: plugins::lvfs_seeds,
        mutate: plugins::lvfs_mutate,
        start: plugins::lvfs,
    },
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Text of `bytes`, or a check that the UTF-8 problem is located inside the file.
fn utf8<'a>(what: &str, bytes: &'a [u8]) -> Result<Option<&'a str>, String> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(Some(text)),
        Err(_) => {
            let d = ringleader_diag::not_utf8(what, Path::new("f"), bytes);
            located(&d, bytes)?;
            if !d.has_errors() {
                return Err("not UTF-8 but no error".into());
            }
            Ok(None)
        }
    }
}

/// Every problem is at a place in the file, and prints without raw control characters.
fn located(d: &ringleader_diag::Diagnostics, bytes: &[u8]) -> Result<(), String> {
    let lines = bytes.iter().filter(|b| **b == b'\n').count() + 1;
    for p in &d.list {
        if p.line == 0 || p.column == 0 || p.line > lines {
            return Err(format!(
                "problem outside the file ({} lines): {}",
                lines,
                d.format(p)
            ));
        }
        let shown = d.format(p);
        if shown.chars().any(ringleader_diag::needs_escape) {
            return Err(format!("raw control character in {shown:?}"));
        }
    }
    Ok(())
}

fn policy(bytes: &[u8]) -> Result<(), String> {
    let Some(text) = utf8("policy", bytes)? else {
        return Ok(());
    };
    let (policy, d) = Policy::parse(Path::new("policy.toml"), text);
    located(&d, bytes)?;
    match policy {
        None if !d.has_errors() => Err("refused without an error".into()),
        None => Ok(()),
        Some(policy) => {
            // A valid policy plans: its soaks, freezes and windows go through the
            // scheduler's arithmetic.
            let inventory = Inventory::parse(
                Path::new("i.toml"),
                "[[devices]]\nid = \"a\"\ntags = [\"lab\"]\ntimezone = \"Pacific/Kiritimati\"\n\
                 [[devices]]\nid = \"b\"\nsite = \"ams\"\ntimezone = \"America/St_Johns\"\n",
            )
            .map_err(|e| e.to_string())?;
            let catalog = Catalog::build(Vec::new()).map_err(|e| e.to_string())?;
            let planner = Planner {
                policy: &policy,
                inventory: &inventory,
                catalog: &catalog,
                at: "2026-11-30T00:00:00Z".parse().map_err(|e| format!("{e}"))?,
            };
            let plan = planner.plan();
            let _ = planner.explain("a");
            let _ = plan.rings.len();
            Ok(())
        }
    }
}

fn inventory(name: &str, bytes: &[u8]) -> Result<(), String> {
    let Some(text) = utf8("inventory", bytes)? else {
        return Ok(());
    };
    match Inventory::parse(Path::new(name), text) {
        Ok(_) => Ok(()),
        Err(InventoryError::Invalid(d)) if d.has_errors() => located(&d, bytes),
        Err(e) => Err(format!("unlocated error: {e}")),
    }
}

fn inventory_toml(bytes: &[u8]) -> Result<(), String> {
    inventory("inventory.toml", bytes)
}

fn inventory_json(bytes: &[u8]) -> Result<(), String> {
    inventory("inventory.json", bytes)
}

fn catalog(name: &str, bytes: &[u8]) -> Result<(), String> {
    let Some(text) = utf8("catalog", bytes)? else {
        return Ok(());
    };
    match ringleader_catalog::parse(Path::new(name), text) {
        // What the source returns, the planner reads: refusals and cycles are answers.
        Ok(patches) => {
            let reported = patches.into_iter().map(|p| (p, "catalog".into())).collect();
            let _ = Catalog::build(reported);
            Ok(())
        }
        Err(ringleader_catalog::CatalogError::Invalid(d)) if d.has_errors() => located(&d, bytes),
        Err(ringleader_catalog::CatalogError::Invalid(_)) => Err("refused without an error".into()),
        Err(e) => Err(format!("unlocated error: {e}")),
    }
}

fn catalog_toml(bytes: &[u8]) -> Result<(), String> {
    catalog("catalog.toml", bytes)
}

fn catalog_json(bytes: &[u8]) -> Result<(), String> {
    catalog("catalog.json", bytes)
}

fn manifest(bytes: &[u8]) -> Result<(), String> {
    let Some(text) = utf8("plugin manifest", bytes)? else {
        return Ok(());
    };
    match Manifest::parse(Path::new("/nonexistent/x.plugin.toml"), text) {
        Ok(_) => Ok(()),
        Err(ManifestError::Invalid(d)) if d.has_errors() => located(&d, bytes),
        Err(ManifestError::Invalid(_)) => Err("refused without an error".into()),
        Err(e) => Err(format!("unlocated error: {e}")),
    }
}

fn config(bytes: &[u8]) -> Result<(), String> {
    let Some(text) = utf8("config", bytes)? else {
        return Ok(());
    };
    match OperatorConfig::parse(Path::new("config.toml"), text) {
        Ok(_) => Ok(()),
        Err(ConfigError::Invalid(d)) if d.has_errors() => located(&d, bytes),
        Err(ConfigError::Invalid(_)) => Err("refused without an error".into()),
        Err(e) => Err(format!("unlocated error: {e}")),
    }
}

/// SplitMix64: small, fast, and the same sequence for the same seed everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Tokens of TOML and JSON, and values that reach the validators' corners.
const TOKENS: &[&str] = &[
    "\"",
    "'",
    "=",
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    ",",
    ":",
    "\n",
    ".",
    "#",
    "\\",
    "\\u",
    "\"\"\"",
    "[[rings]]\nname = \"r\"\nselect = \"rest\"\n",
    "[[freeze]]\n",
    "[windows.w]\n",
    "[[devices]]\nid = \"x\"\n",
    "[plugins.x]\n",
    "[credentials.c]\n",
    "[expedite]\n",
    "[[defer]]\n",
    "[[approved]]\n",
    "\"36525d\"",
    "\"36526d\"",
    "\"2920000d\"",
    "\"99999999999999999999d\"",
    "\"0001-01-01\"",
    "\"8999-12-31\"",
    "\"9999-12-31\"",
    "\"23:59\"",
    "\"00:00\"",
    "-1",
    "0",
    "9223372036854775807",
    "-9223372036854775808",
    "1e400",
    "nan",
    "inf",
    "-0.0",
    "\"100%\"",
    "\"-1%\"",
    "\"NaN%\"",
    "true",
    "null",
    "\"\\r\"",
    "\u{202e}",
    "\u{200b}",
    "\u{feff}",
    "\u{1b}[2J",
    "\u{85}",
    "é",
    "\"rest\"",
    "soak = ",
    "days = ",
    "from = ",
    "to = ",
    "timezone = ",
    "http = [\"*\"]",
    "unresponsive_after = ",
    "soak_factor = ",
    "batches = [",
    "select = {",
];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut input = seeds[rng.below(seeds.len())].clone();
    for _ in 0..=rng.below(8) {
        let len = input.len();
        let at = rng.below(len + 1);
        match rng.below(8) {
            0 if len > 0 => input[at.min(len - 1)] ^= 1 << rng.below(8),
            1 => input.insert(at, rng.next() as u8),
            2 if len > 0 => {
                let end = (at + 1 + rng.below(16)).min(len);
                input.drain(at.min(end)..end);
            }
            3 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(64)).min(len);
                let copy = input[start..end].to_vec();
                input.splice(at..at, copy);
            }
            4 => {
                // A piece of another seed.
                let other = &seeds[rng.below(seeds.len())];
                let start = rng.below(other.len() + 1);
                let end = (start + rng.below(256)).min(other.len());
                input.splice(at..at, other[start..end].iter().copied());
            }
            5 if len > 0 => {
                // Replace a value's text (after `=` or `:`) with a token.
                let sep = input[at.min(len - 1)..]
                    .iter()
                    .position(|b| *b == b'=' || *b == b':')
                    .map(|p| at.min(len - 1) + p + 1);
                if let Some(start) = sep {
                    let end = input[start..]
                        .iter()
                        .position(|b| *b == b'\n' || *b == b',')
                        .map_or(input.len(), |p| start + p);
                    let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                    input.splice(start..end, [b" ".as_slice(), token].concat());
                }
            }
            6 => {
                // A line of the input, repeated.
                let start = input[..at]
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |p| p + 1);
                let end = input[at..]
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(len, |p| at + p + 1);
                let line = input[start..end].to_vec();
                input.splice(end..end, line);
            }
            _ => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                input.splice(at..at, token.iter().copied());
            }
        }
    }
    input.truncate(MAX_INPUT);
    input
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn corpus() -> Vec<Vec<u8>> {
    let mut paths = Vec::new();
    for dir in ["rollout-policies", "docs/examples", "tests/cases"] {
        files(&root().join(dir), &mut paths);
    }
    paths.sort();
    let seeds: Vec<Vec<u8>> = paths
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .filter(|b| b.len() <= MAX_INPUT)
        .collect();
    assert!(seeds.len() > 50, "the seed corpus went missing");
    seeds
}

/// Runs `check` on `input` catching panics: the failure, if any.
fn run_one(check: &mut Checker, input: &[u8]) -> Option<String> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| check(input))) {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(panic) => Some(format!(
            "panic: {}",
            panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(not a string)")
        )),
    }
}

fn save(target: &str, input: &[u8]) -> PathBuf {
    let dir = root().join("target/fuzz-failures").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    });
    let path = dir.join(format!("{hash:016x}"));
    std::fs::write(&path, input).unwrap();
    path
}

struct Report {
    executions: u64,
    failures: Vec<String>,
}

/// Replays the target's regression cases, then fuzzes it for `budget`.
fn fuzz(target: &'static Target, seed: u64, budget: Duration) -> Report {
    let current: Arc<Mutex<Vec<u8>>> = Arc::default();
    let (tx, rx) = mpsc::channel();
    let shared = current.clone();
    std::thread::spawn(move || {
        let seeds = (target.seeds)();
        let mut check = match std::panic::catch_unwind(target.start) {
            Ok(check) => check,
            Err(_) => {
                let _ = tx.send(Report {
                    executions: 0,
                    failures: vec!["the target could not start (it panicked)".into()],
                });
                return;
            }
        };
        let mutate_with = target.mutate;
        let target = target.name;
        let mut report = Report {
            executions: 0,
            failures: Vec::new(),
        };
        let mut regressions = Vec::new();
        files(
            &root().join("tests/cases/fuzz").join(target),
            &mut regressions,
        );
        regressions.sort();
        for path in regressions {
            let input = std::fs::read(&path).unwrap();
            if let Some(e) = run_one(&mut check, &input) {
                report.failures.push(format!("{}: {e}", path.display()));
            }
        }
        let mut rng = Rng(seed);
        let start = Instant::now();
        for seed_input in &seeds {
            // Every seed as it is, then mutations.
            if let Some(e) = run_one(&mut check, seed_input) {
                report.failures.push(format!(
                    "seed input {}: {e}",
                    save(target, seed_input).display()
                ));
            }
            report.executions += 1;
        }
        while start.elapsed() < budget && report.failures.len() < 10 {
            let input = (mutate_with)(&mut rng, &seeds);
            *shared.lock().unwrap() = input.clone();
            if let Some(e) = run_one(&mut check, &input) {
                report
                    .failures
                    .push(format!("{}: {e}", save(target, &input).display()));
            }
            report.executions += 1;
        }
        // A plugin target reports its calls when dropped: before the executions.
        drop(check);
        let _ = tx.send(report);
    });
    match rx.recv_timeout(budget + HANG + Duration::from_secs(30)) {
        Ok(report) => report,
        Err(_) => {
            let input = current.lock().unwrap().clone();
            Report {
                executions: 0,
                failures: vec![format!("hang on {}", save(target.name, &input).display())],
            }
        }
    }
}

#[test]
fn every_parser_answers_every_input_with_a_value_or_a_located_error() {
    // A panic inside a target is caught and reported; keep the output readable.
    std::panic::set_hook(Box::new(|_| {}));
    let secs: f64 = std::env::var("RINGLEADER_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8.0);
    let base: u64 = std::env::var("RINGLEADER_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(11);
    // `RINGLEADER_FUZZ_TARGETS=csaf,lvfs`: only those.
    let only = std::env::var("RINGLEADER_FUZZ_TARGETS").ok();
    let mut failures = Vec::new();
    for (i, target) in TARGETS.iter().enumerate() {
        if let Some(only) = &only
            && !only.split(',').any(|t| t.trim() == target.name)
        {
            continue;
        }
        let seed = base.wrapping_mul(1_000_003).wrapping_add(i as u64);
        let report = fuzz(target, seed, Duration::from_secs_f64(secs));
        let target = target.name;
        eprintln!(
            "fuzz {target}: {} executions in {secs}s (seed {seed}), {} failures",
            report.executions,
            report.failures.len()
        );
        failures.extend(
            report
                .failures
                .into_iter()
                .map(|f| format!("{target}: {f}")),
        );
    }
    let _ = std::panic::take_hook();
    assert!(
        failures.is_empty(),
        "move each input to tests/cases/fuzz/<target>/ with its fix:\n{}",
        failures.join("\n")
    );
}
