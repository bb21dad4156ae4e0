//! ringleader-version against the published test vectors and the real tools:
//!
//! - `cases`: `tests/cases/versions/*.txt`, one test per line, named `FILE:LINE: TEXT`
//!   (run one with `cargo test -p ringleader-version --test it -- --exact 'NAME'`);
//! - `oracle`: generated versions, ordered as dpkg (`dpkg --compare-versions`) and
//!   rpm (`rpm.labelCompare`, for the system Python) order them; and the data files'
//!   order cases, checked against the same tools.
//!
//! The harness is libtest-mimic's, so that every data case is a test of its own.

mod cases;
mod generate;
mod oracle;

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    let mut trials = cases::trials();
    trials.extend(oracle::trials());
    libtest_mimic::run(&args, trials).exit();
}
