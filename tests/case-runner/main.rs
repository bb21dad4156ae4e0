//! The data-driven cases of the source plugins, one test per case folder, named
//! `SUITE::FOLDER` (the format, and how to run one case or bless one:
//! `tests/cases/README.md`):
//!
//! - `csaf`: the CSAF advisory source over `tests/cases/csaf/`;
//! - `lvfs`: the LVFS firmware source over `tests/cases/lvfs/`;
//! - `debian-security`: the Debian security source over `tests/cases/debian-security/`.
//!
//! Each case serves its files on 127.0.0.1 and runs the real plugin through the
//! runtime. The harness is libtest-mimic's, so that every case is a test of its own.

mod csaf;
mod debsec;
mod lvfs;

use libtest_mimic::{Arguments, Failed, Trial};
use std::future::Future;
use std::path::{Path, PathBuf};

fn main() {
    let args = Arguments::from_args();
    let mut trials = suite_trials(
        "csaf",
        &ringleader_tests::guests::csaf::cases(),
        8,
        csaf::case,
    );
    trials.extend(suite_trials(
        "lvfs",
        &ringleader_tests::guests::lvfs::cases(),
        12,
        lvfs::case,
    ));
    trials.extend(suite_trials(
        "debian-security",
        &ringleader_tests::guests::debsec::cases(),
        9,
        debsec::case,
    ));
    libtest_mimic::run(&args, trials).exit();
}

/// A test per case folder of `dir` (`SUITE::FOLDER`, run by `case` with the folder's
/// name), and one that fails when fewer than `at_least` are there (cases went missing).
fn suite_trials<F: Future<Output = Result<(), Failed>> + 'static>(
    suite: &'static str,
    dir: &Path,
    at_least: usize,
    case: fn(String) -> F,
) -> Vec<Trial> {
    let mut cases: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(Result::ok).map(|e| e.path()).collect(),
        Err(e) => {
            let message = format!("read the cases in {}: {e}", dir.display());
            return vec![Trial::test(suite, move || Err(message.into()))];
        }
    };
    cases.sort();
    let count = cases.len();
    let mut trials = vec![Trial::test(
        format!("{suite}::(at least {at_least} cases)"),
        move || {
            if count < at_least {
                return Err(format!("cases of {suite} went missing: {count} left").into());
            }
            Ok(())
        },
    )];
    trials.extend(cases.into_iter().map(|path| {
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        Trial::test(format!("{suite}::{name}"), move || {
            if !path.is_dir() {
                return Err(format!(
                    "case {suite}/{name}: not a folder (each case is a folder: tests/cases/README.md)"
                )
                .into());
            }
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("a runtime: {e}"))?
                .block_on(case(name))
        })
    }));
    trials
}

/// The file `name` of a case folder, which the case needs.
fn input(dir: &Path, name: &str) -> Result<Vec<u8>, Failed> {
    std::fs::read(dir.join(name))
        .map_err(|e| format!("read {}: {e}", dir.join(name).display()).into())
}

/// The case's expected output (`expected.txt`): a case without one fails, saying how
/// to write it.
fn expected(dir: &Path) -> Result<String, Failed> {
    let path = dir.join("expected.txt");
    std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "read {}: {e}; run with BLESS=1 to write it, then review it",
            path.display()
        )
        .into()
    })
}
