//! ringleader-version against the published test vectors and the real tools:
//!
//! - `cases`: `tests/cases/versions/*.txt`, one test per line, named `FILE:LINE: TEXT`
//!   (run one with `cargo test -p ringleader-version --test it -- --exact 'NAME'`).
//!
//! The harness is libtest-mimic's, so that every data case is a test of its own.

mod cases;

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    let trials = cases::trials();
    libtest_mimic::run(&args, trials).exit();
}
