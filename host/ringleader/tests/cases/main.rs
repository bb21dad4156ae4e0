//! The data-driven cases of `tests/cases/` that run the `ringleader` binary, one test
//! per case folder, named `SUITE::FOLDER` (the format, and how to run one case or bless
//! one: `tests/cases/README.md`):
//!
//! - `plugin-check/<case>/manifest.toml` (`$SHA256` stands for the real checksum of the
//!   simulated source component), run as `ringleader plugin check`;
//! - `policy-check/<case>/policy.toml`, run as `ringleader policy check`;
//! - `inventory-check/<case>/inventory.toml` or `inventory.json`, run as `ringleader
//!   inventory check`;
//! - `catalog-check/<case>/catalog.toml` or `catalog.json`, run as `ringleader catalog
//!   check`;
//!
//! - `schedule-next/<case>/schedules.toml` (with the policies it names), run as
//!   `ringleader schedule next --count 6 --after 2026-11-01T00:00:00Z`;
//!
//! each with the expected `stdout.txt` / `stderr.txt` (`$DIR` stands for the case's
//! scratch directory; a missing file means no output) and exit status `status.txt`.
//! Run with `BLESS=1` to write the expected files, then review them.
//!
//! The harness is libtest-mimic's, so that every case is a test of its own.

use libtest_mimic::{Arguments, Failed, Trial};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::LazyLock;

/// A folder of cases under `tests/cases/`.
struct Suite {
    name: &'static str,
    /// Fewer case folders than this means cases went missing.
    at_least: usize,
    /// Runs the command of the case folder (first argument) with a scratch directory
    /// (second) and returns its output.
    run: fn(&Path, &Path) -> Result<Output, String>,
}

const SUITES: &[Suite] = &[
    Suite {
        name: "plugin-check",
        at_least: 10,
        run: plugin_check,
    },
    Suite {
        name: "policy-check",
        at_least: 10,
        run: policy_check,
    },
    Suite {
        name: "inventory-check",
        at_least: 10,
        run: inventory_check,
    },
    Suite {
        name: "catalog-check",
        at_least: 10,
        run: catalog_check,
    },
    Suite {
        name: "schedule-next",
        at_least: 11,
        run: schedule_next,
    },
];

fn main() {
    let args = Arguments::from_args();
    let trials = SUITES.iter().flat_map(trials).collect();
    libtest_mimic::run(&args, trials).exit();
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/cases")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ringleader(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringleader"))
        .args(args)
        .env("RINGLEADER_LOG", "error")
        .env_remove("RINGLEADER_CACHE_DIR")
        .output()
        .expect("run ringleader")
}

/// A test per case folder of `suite`, and one that fails when folders went missing.
fn trials(suite: &'static Suite) -> Vec<Trial> {
    let dir = cases_dir().join(suite.name);
    let mut cases: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.filter_map(Result::ok).map(|e| e.path()).collect(),
        Err(e) => {
            let message = format!("read the cases in {}: {e}", dir.display());
            return vec![Trial::test(suite.name, move || Err(message.into()))];
        }
    };
    cases.sort();
    let count = cases.len();
    let mut trials = vec![Trial::test(
        format!("{}::(at least {} cases)", suite.name, suite.at_least),
        move || {
            if count < suite.at_least {
                return Err(format!("cases of {} went missing: {count} left", suite.name).into());
            }
            Ok(())
        },
    )];
    trials.extend(cases.into_iter().map(|case| {
        let name = case.file_name().unwrap_or_default().to_string_lossy();
        Trial::test(format!("{}::{name}", suite.name), move || {
            run_case(suite, &case)
        })
    }));
    trials
}

/// Runs one case: stdout and stderr are compared with the case's `stdout.txt` and
/// `stderr.txt` after `$DIR` replaces the scratch directory, and the exit status with
/// `status.txt`.
fn run_case(suite: &Suite, case: &Path) -> Result<(), Failed> {
    let name = case.file_name().unwrap_or_default().to_string_lossy();
    let place = format!("case {}/{name}", suite.name);
    if !case.is_dir() {
        return Err(format!(
            "{place}: not a folder (each case is a folder: tests/cases/README.md)"
        )
        .into());
    }
    let bless = std::env::var_os("BLESS").is_some();
    let dir = tempfile::tempdir().map_err(|e| format!("{place}: a scratch directory: {e}"))?;
    let out = (suite.run)(case, dir.path()).map_err(|e| format!("{place}: {e}"))?;
    let dir_text = dir.path().display().to_string();
    let stdout = text(&out.stdout).replace(&dir_text, "$DIR");
    let stderr = text(&out.stderr).replace(&dir_text, "$DIR");
    let mut failures = Vec::new();
    for (file, actual) in [("stdout.txt", &stdout), ("stderr.txt", &stderr)] {
        let expected_path = case.join(file);
        if bless {
            if actual.is_empty() {
                let _ = std::fs::remove_file(&expected_path);
            } else {
                std::fs::write(&expected_path, actual)
                    .map_err(|e| format!("{place}: write {file}: {e}"))?;
            }
            continue;
        }
        // No file: the command writes nothing there (blessing removes empty ones).
        let expected = match std::fs::read_to_string(&expected_path) {
            Ok(expected) => expected,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(format!("{place}: read {file}: {e}").into()),
        };
        if &expected != actual {
            failures.push(format!(
                "{place}: {file} differs\n--- expected\n{expected}\n--- actual\n{actual}"
            ));
        }
    }
    let status_path = case.join("status.txt");
    let status = out
        .status
        .code()
        .map_or("signal".to_string(), |c| c.to_string());
    if bless {
        std::fs::write(&status_path, format!("{status}\n"))
            .map_err(|e| format!("{place}: write status.txt: {e}"))?;
    } else {
        let expected = std::fs::read_to_string(&status_path).map_err(|e| {
            format!(
                "{place}: read status.txt (the expected exit status): {e}; run with BLESS=1 to write it, then review it"
            )
        })?;
        let expected = expected.trim();
        if expected != "signal" && expected.parse::<i32>().is_err() {
            return Err(format!(
                "{place}: status.txt holds `{expected}`, not an exit status (a number, or `signal`)"
            )
            .into());
        }
        if expected != status {
            failures.push(format!(
                "{place}: exit status {status}, expected {expected}\n{stderr}"
            ));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n\n").into())
    }
}

/// The file `name` of the case folder, which the case needs.
fn input(case: &Path, name: &str) -> Result<String, String> {
    std::fs::read_to_string(case.join(name)).map_err(|e| format!("read {name}: {e}"))
}

/// The SHA-256 in the sealed manifest of the simulated source.
static SIM_SOURCE_SHA256: LazyLock<String> = LazyLock::new(|| {
    let manifest = std::fs::read_to_string(ringleader_bundled_plugins::manifest_path(
        "sim-vendor-source",
    ))
    .unwrap();
    manifest
        .lines()
        .find_map(|l| l.strip_prefix("sha256 = \""))
        .map(|s| s.trim_end_matches('"').to_string())
        .unwrap()
});

fn plugin_check(case: &Path, dir: &Path) -> Result<Output, String> {
    let component = ringleader_bundled_plugins::component_path("sim-vendor-source");
    let name = case.file_name().unwrap_or_default().to_string_lossy();
    std::fs::copy(&component, dir.join("sim-vendor-source.wasm")).unwrap();
    let manifest = input(case, "manifest.toml")?.replace("$SHA256", &SIM_SOURCE_SHA256);
    let path = dir.join(format!("{name}.plugin.toml"));
    std::fs::write(&path, manifest).unwrap();
    Ok(ringleader(&[
        "plugin",
        "check",
        "--no-cache",
        path.to_str().unwrap(),
    ]))
}

fn policy_check(case: &Path, _dir: &Path) -> Result<Output, String> {
    if !case.join("policy.toml").exists() {
        return Err("no policy.toml".into());
    }
    Ok(Command::new(env!("CARGO_BIN_EXE_ringleader"))
        .args(["policy", "check", "policy.toml"])
        .current_dir(case)
        .output()
        .unwrap())
}

fn inventory_check(case: &Path, _dir: &Path) -> Result<Output, String> {
    let file = ["inventory.toml", "inventory.json"]
        .into_iter()
        .find(|f| case.join(f).exists())
        .ok_or("a case has inventory.toml or inventory.json")?;
    Ok(Command::new(env!("CARGO_BIN_EXE_ringleader"))
        .args(["inventory", "check", file])
        .current_dir(case)
        .output()
        .unwrap())
}

fn catalog_check(case: &Path, _dir: &Path) -> Result<Output, String> {
    let file = ["catalog.toml", "catalog.json"]
        .into_iter()
        .find(|f| case.join(f).exists())
        .ok_or("a case has catalog.toml or catalog.json")?;
    Ok(Command::new(env!("CARGO_BIN_EXE_ringleader"))
        .args(["catalog", "check", file])
        .current_dir(case)
        .output()
        .unwrap())
}

fn schedule_next(case: &Path, _dir: &Path) -> Result<Output, String> {
    if !case.join("schedules.toml").exists() {
        return Err("no schedules.toml".into());
    }
    Ok(Command::new(env!("CARGO_BIN_EXE_ringleader"))
        .args([
            "schedule",
            "next",
            "--schedules",
            "schedules.toml",
            "--count",
            "6",
            "--after",
            "2026-11-01T00:00:00Z",
        ])
        .current_dir(case)
        .output()
        .unwrap())
}
