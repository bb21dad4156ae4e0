//! `ringleader`: staged patch and firmware rollouts through test rings.
//!
//! This crate is the only one that knows about the command line and JSON output.

mod catalog_cmd;
mod client;
mod demo_cmd;
mod inventory_cmd;
mod plan_cmd;
mod plugin_cmd;
mod plugin_run;
mod policy_cmd;
mod schedule_cmd;
mod serve_cmd;
mod token_cmd;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use ringleader_api::exit::ExitStatus;
use ringleader_api::rollout::Action;
use std::process::ExitCode;

/// Staged patch and firmware rollouts through test rings (lab, canary, pilot, broad),
/// with vendor plugins running sandboxed as WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "ringleader", version, about, long_about = None)]
struct Cli {
    /// Log filter for messages on stderr, e.g. `info` or `ringleader_runtime=debug`.
    /// Plugin log lines and refused capability calls appear at `info` and `warn`.
    #[arg(long, global = true, env = "RINGLEADER_LOG", default_value = "warn")]
    log: String,

    #[command(subcommand)]
    command: Command,
}

/// Commands whose arguments struct has its own doc comment carry none here: clap takes
/// the struct's (short and long help) when the variant has none.
#[derive(Debug, Subcommand)]
enum Command {
    Demo(demo_cmd::DemoArgs),
    /// Check, seal, inspect and run plugins.
    #[command(subcommand)]
    Plugin(plugin_cmd::PluginCommand),
    /// Check rollout policies.
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
    /// Check inventories.
    #[command(subcommand)]
    Inventory(inventory_cmd::InventoryCommand),
    /// Check an operator's own catalog of patches (catalog-source's file).
    #[command(subcommand)]
    Catalog(catalog_cmd::CatalogCommand),
    Plan(plan_cmd::PlanArgs),
    /// Standing schedules: when each runs, in its zone, through its policy's freezes
    /// (docs/schedules.md).
    #[command(subcommand)]
    Schedule(schedule_cmd::ScheduleCommand),
    Serve(serve_cmd::ServeArgs),
    /// Make, list and revoke the daemon's named API tokens.
    #[command(subcommand)]
    Token(token_cmd::TokenCommand),
    /// Start a rollout on the daemon.
    #[command(subcommand)]
    Rollout(client::RolloutCommand),
    Status(client::StatusArgs),
    Devices(client::DevicesArgs),
    /// The fleet registry: what each device really has (scans), and its history.
    #[command(subcommand)]
    Fleet(client::FleetCommand),
    /// Compliance across the fleet registry: per device the applicable fixes it lacks
    /// by severity and the age of the oldest; per patch the devices affected and
    /// patched; the share of devices fully patched per severity (docs/compliance.md).
    Compliance(client::ComplianceArgs),
    /// What the daemon's source polls found new or changed (`[sources] poll`), each
    /// patch with when it was first seen: what time to patch is measured from.
    Publications(client::PublicationsArgs),
    /// The webhooks of the operator config (`[webhooks.NAME]`) and how their
    /// notifications went: pending, delivered, dropped, the last error of each, and the
    /// latest deliveries (docs/notifications.md).
    Notifications(client::NotificationsArgs),
    /// Reports over the daemon's records: `time-to-patch`.
    #[command(subcommand)]
    Report(client::ReportCommand),
    Events(client::EventsArgs),
    /// Approve the ring that waits for approval.
    Approve(client::ActionArgs),
    /// Pause a rollout: what runs finishes, nothing new starts.
    Pause(client::ActionArgs),
    /// Resume a paused rollout.
    Resume(client::ActionArgs),
    /// Abort a rollout: nothing new starts, ever (a halted one too: abandon it).
    Abort(client::ActionArgs),
    /// Halt the ring running now and roll it back, at the ring's own pace; after a
    /// halt, roll back every ring that installed, one ring or one device.
    Rollback(client::RollbackArgs),
    /// After a halt, run the halted ring's failed devices again (after a fix).
    Retry(client::RetryArgs),
}

/// `n` and the noun for it: `1 device`, `2 devices`, `0 devices`.
pub(crate) fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Whether log lines on stderr are coloured: only on a terminal (a log file or a
/// journal gets plain text), and not when `NO_COLOR` is set to anything but empty
/// (no-color.org).
fn colour(stderr_is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Writes `text` to stdout; a reader that went away (`| head`) is not an error.
pub(crate) fn write_stdout(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        result => result,
    }
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // `plugin run` exists to watch one plugin: its log lines are shown unless --log or
    // RINGLEADER_LOG says otherwise.
    let log = match (&cli.command, matches.value_source("log")) {
        (Command::Plugin(plugin_cmd::PluginCommand::Run(_)), Some(ValueSource::DefaultValue)) => {
            plugin_run::DEFAULT_LOG.to_string()
        }
        _ => cli.log.clone(),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colour(
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
            std::env::var_os("NO_COLOR"),
        ))
        .with_target(false)
        .init();

    // Clients of the daemon are plain blocking HTTP calls.
    let command = match cli.command {
        Command::Rollout(client::RolloutCommand::Start(args)) => return client::start(args),
        Command::Status(args) => return client::status(args),
        Command::Devices(args) => return client::devices(args),
        Command::Fleet(cmd) => return client::fleet(cmd),
        Command::Compliance(args) => return client::compliance(args),
        Command::Publications(args) => return client::publications(args),
        Command::Notifications(args) => return client::notifications(args),
        Command::Report(cmd) => return client::report(cmd),
        Command::Events(args) => return client::events(args),
        Command::Approve(args) => return client::act(Action::Approve, args),
        Command::Pause(args) => return client::act(Action::Pause, args),
        Command::Resume(args) => return client::act(Action::Resume, args),
        Command::Abort(args) => return client::act(Action::Abort, args),
        Command::Rollback(args) => return client::rollback(args),
        Command::Retry(args) => return client::retry(args),
        Command::Token(cmd) => return token_cmd::run(cmd),
        other => other,
    };

    // The demo's work is CPU-bound plugin calls coordinated by one loop: one thread
    // avoids cross-thread wake-ups; everything else gets the multi-threaded runtime.
    let builder = match command {
        Command::Demo(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let mut builder = builder;
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::from(ExitStatus::Failure);
        }
    };
    runtime.block_on(async {
        match command {
            Command::Demo(args) => demo_cmd::run(args).await,
            Command::Plugin(cmd) => plugin_cmd::run(cmd).await,
            Command::Policy(cmd) => policy_cmd::run(cmd),
            Command::Inventory(cmd) => inventory_cmd::run(cmd),
            Command::Catalog(cmd) => catalog_cmd::run(cmd),
            Command::Schedule(cmd) => schedule_cmd::run(cmd),
            Command::Plan(args) => plan_cmd::run(args).await,
            Command::Serve(args) => serve_cmd::run(args).await,
            Command::Rollout(_)
            | Command::Status(_)
            | Command::Devices(_)
            | Command::Fleet(_)
            | Command::Compliance(_)
            | Command::Publications(_)
            | Command::Notifications(_)
            | Command::Report(_)
            | Command::Events(_)
            | Command::Approve(_)
            | Command::Pause(_)
            | Command::Resume(_)
            | Command::Abort(_)
            | Command::Rollback(_)
            | Command::Retry(_)
            | Command::Token(_) => unreachable!("handled above"),
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn logs_are_coloured_only_on_a_terminal_without_no_color() {
        use super::colour;
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())), "an empty NO_COLOR is unset");
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
        assert!(!colour(false, Some("".into())));
    }
}
