//! The `ringleader` binary, run as a user, an operator or a script would run it: one
//! test binary, a module per area (`cargo test -p ringleader --test it -- serve::`).
//!
//! - `continuous`: `demo --continuous`, a standing schedule over a simulated month;
//! - `cli`: the commands that need no daemon (`plan`, `policy check`, `plugin check`,
//!   `demo`, ...);
//! - `client`: the client commands facing an answer that is not the document expected;
//! - `serve`: the daemon and its clients, real processes on 127.0.0.1;
//! - `storage`: the daemon's state on disk under faults;
//! - `e2e`: rollouts through real peers with the real plugins;
//! - `failures`: failures handled to the last device: reasons in every view, an
//!   operator's rollback and retry after a halt, a restart during one;
//! - `scheduled`: `serve --schedules`, a standing schedule run in real time;
//! - `notify`: webhooks against the docs' receiver, down at first;
//! - `plugin_run`: `ringleader plugin run`, as a plugin author runs it;
//! - `walkthrough`: the plugin authors' guide, done as a reader would.
//!
//! The daemon harness is `ringleader_tests::daemon`. The data-driven cases of
//! `tests/cases/` (`policy-check`, `plugin-check`, `inventory-check`) are the `cases`
//! test binary, one test per case folder.

mod cli;
mod client;
mod compliance;
mod continuous;
mod e2e;
mod failures;
mod fleet;
mod notify;
mod plugin_run;
mod reboots;
mod scheduled;
mod serve;
mod storage;
mod walkthrough;

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_ringleader");
