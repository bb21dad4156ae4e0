//! `ringleader serve`: the command line of the daemon (`ringleader_daemon::serve`).

use clap::Args;
use ringleader_api::exit::ExitStatus;
use ringleader_daemon::serve::Options;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Run the daemon: rollouts and the HTTP API.
///
/// Rollouts started through the API (`ringleader rollout start`) are kept in
/// DIR/rollouts/, each with its write-ahead log; unfinished ones resume when the daemon
/// starts. The API listens on 127.0.0.1:7878 by default.
///
/// Security: read endpoints need no token on a loopback address; every change
/// (starting a rollout, approve, pause, resume, abort, rollback) needs the bearer token
/// the daemon writes to DIR/api-token (mode 0600) on first start. Listening on a
/// non-loopback address requires TLS (--tls-cert and --tls-key), or the explicit
/// --insecure-plaintext-on-network; there, reads need the token too.
///
/// SIGTERM or Ctrl-C: stops taking requests, gives plugin calls in flight
/// --shutdown-grace to finish, flushes, exits; the next start resumes.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Data directory: rollouts, the simulated devices' state, the API token.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:7878", value_name = "ADDR")]
    listen: SocketAddr,
    /// Operator config: `[plugins.NAME]` capability grants and settings,
    /// `[credentials.NAME]` (docs/operations.md, "The operator config"). Read once, at
    /// start.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A schedules file (docs/schedules.md): the daemon runs its standing schedules,
    /// starting each run's rollout of what is approved and not yet installed, and an
    /// expedited one for a new patch the policy expedites (with `[sources] poll`).
    /// Read at start, with the policies it names; runs: `ringleader schedule runs`.
    #[arg(long, value_name = "FILE")]
    schedules: Option<PathBuf>,
    /// A patch-source plugin: a bundled plugin's name (`ringleader plugin list`), or a
    /// manifest's path (anything with a `/` or ending in `.toml` or `.wasm`); repeat
    /// for several. Default: the built-in simulated vendor.
    #[arg(long = "source", value_name = "PLUGIN")]
    sources: Vec<PathBuf>,
    /// An installer plugin: a bundled plugin's name or a manifest's path; repeat for
    /// several. The first is the default; a device whose inventory entry has
    /// `installer = "NAME"` uses the one of that name. Default: the built-in simulated
    /// vendor's.
    #[arg(long = "installer", value_name = "PLUGIN")]
    installers: Vec<PathBuf>,
    /// TLS certificate chain (PEM), for listening beyond loopback. Loaded again, with
    /// the key, on SIGHUP and when the files change (checked every 30 s).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Listen beyond loopback WITHOUT TLS: tokens and data cross the network in
    /// plain text. Only for a network you trust completely.
    #[arg(long)]
    insecure_plaintext_on_network: bool,
    /// How long plugin calls in flight may take to finish when the daemon stops.
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    shutdown_grace: humantime::Duration,
    /// Most bytes of a rollout start (its policy and inventory, as JSON; about 270
    /// bytes a device: 100,000 devices are ~27 MB). Other requests are capped at 2 MiB.
    #[arg(long, default_value = "64MiB", value_name = "SIZE", value_parser = parse_size)]
    max_inventory_size: usize,
    /// How long a client has, once connected, to send a whole request header (and
    /// finish the TLS handshake).
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    header_timeout: humantime::Duration,
    /// How long a kept-alive connection may wait for its next request.
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    idle_timeout: humantime::Duration,
    /// How long a request body may stop arriving before the request fails (408).
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    body_timeout: humantime::Duration,
    /// Most connections open at once; lowered to what the file limit (ulimit -n)
    /// allows. Beyond it, the oldest idle connection is closed to make room.
    #[arg(long, default_value = "1024", value_name = "N")]
    max_connections: usize,
    /// Most event streams (`GET /v1/rollouts/ID/events/stream`) open at once; more
    /// are answered 503.
    #[arg(long, default_value = "64", value_name = "N")]
    max_event_streams: usize,
    /// How often an event stream with nothing to send gets a keep-alive comment.
    #[arg(long, default_value = "15s", value_name = "DURATION")]
    sse_keep_alive: humantime::Duration,
}

impl From<ServeArgs> for Options {
    fn from(a: ServeArgs) -> Options {
        Options {
            data: a.data,
            listen: a.listen,
            config: a.config,
            schedules: a.schedules,
            sources: a.sources,
            installers: a.installers,
            tls_cert: a.tls_cert,
            tls_key: a.tls_key,
            insecure_plaintext_on_network: a.insecure_plaintext_on_network,
            shutdown_grace: a.shutdown_grace.into(),
            max_inventory_size: a.max_inventory_size,
            header_timeout: a.header_timeout.into(),
            idle_timeout: a.idle_timeout.into(),
            body_timeout: a.body_timeout.into(),
            max_connections: a.max_connections,
            max_event_streams: a.max_event_streams,
            sse_keep_alive: a.sse_keep_alive.into(),
        }
    }
}

/// A size in bytes: a number, with `KiB`, `MiB` or `GiB` after it when not bytes.
fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let factor: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "`{other}` is not a unit: give bytes, or KiB, MiB, GiB (`64MiB`)"
            ));
        }
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{text}` is not a size (`64MiB`, `1048576`)"))
}

pub async fn run(args: ServeArgs) -> ExitCode {
    match ringleader_daemon::serve::serve(args.into()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(ExitStatus::Failure)
        }
    }
}
