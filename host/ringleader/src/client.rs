//! The commands that talk to a running daemon (`ringleader serve`): status, devices,
//! events, rollout start, and the operator actions. Exit codes are in `docs/cli.md`
//! (`ringleader_api::exit`). Answers are read into the API's own types
//! (`ringleader_api`); one the daemon sends that is not the document expected is an
//! error naming the URL and the document.

use anyhow::Context;
use clap::{Args, Subcommand};
use ringleader_api::Document;
use ringleader_api::device::DevicesV1;
use ringleader_api::error::ErrorV1;
use ringleader_api::event::EventsV1;
use ringleader_api::exit::ExitStatus;
use ringleader_api::rollout::{
    AcceptedV1, Action, Clock, FileV1, Gate, RolloutState, RolloutsV1, SimulatedV1, StartV1,
    StatusV1,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Where the daemon is and how to prove who we are.
#[derive(Debug, Clone, Args)]
pub struct Server {
    /// The daemon's URL.
    #[arg(
        long,
        env = "RINGLEADER_URL",
        default_value = "http://127.0.0.1:7878",
        value_name = "URL"
    )]
    server: String,
    /// File holding the API token: the daemon's own (DATA/api-token) or a named one
    /// (`ringleader token new NAME` prints its file; changes are audited by its name).
    /// The token itself may be given in RINGLEADER_TOKEN instead. Only changes need it
    /// on loopback.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
}

/// Roll out or follow a rollout on the daemon.
#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Start a rollout from a policy and an inventory (or a simulated fleet).
    ///
    /// Prints the new rollout's id (with --json, its status object). Follow it with
    /// `ringleader status ID --wait` or `ringleader events ID --follow`.
    Start(StartArgs),
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// The rollout policy (TOML).
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// The inventory (TOML or JSON).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "simulate",
        conflicts_with = "simulate"
    )]
    inventory: Option<PathBuf>,
    /// Instead of an inventory: the demo's simulated fleet of N devices.
    #[arg(long, value_name = "N")]
    simulate: Option<usize>,
    /// Run in virtual time with simulated install durations (for simulated devices):
    /// weeks pass in seconds.
    #[arg(long)]
    virtual_time: bool,
    /// Seed of the simulated fleet and its timing.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// With --simulate: installs that fail, per mille (one server model adds more).
    #[arg(long, default_value_t = 2, requires = "simulate")]
    fail_permille: u64,
    /// With --simulate: installs after which the device never reports, per mille.
    #[arg(long, default_value_t = 1, requires = "simulate")]
    hang_permille: u64,
    /// With --virtual-time: the virtual time it starts at (RFC 3339); default now.
    #[arg(long, value_name = "TIME", requires = "virtual_time")]
    start: Option<String>,
    /// Print the new rollout's status object (schema `ringleader.status/v1`).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: Server,
}

/// Where a rollout is: its state, per-ring progress, and why it waits.
///
/// Without ROLLOUT, lists every rollout. Exit status with --wait: 0 completed, 3 halted,
/// 4 aborted; without --wait: 0. Always: 5 when the daemon cannot be reached, 6 for an
/// unknown rollout.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The rollout's id (e.g. `r1`).
    rollout: Option<String>,
    /// Print the API's JSON object (schema `ringleader.status/v1`, or
    /// `ringleader.rollouts/v1` for the list).
    #[arg(long)]
    json: bool,
    /// Wait until the rollout completes, halts (and has rolled back) or is aborted.
    #[arg(long, requires = "rollout")]
    wait: bool,
    #[command(flatten)]
    server: Server,
}

/// Devices of a rollout: ring, state, versions now, patches still pending.
///
/// Without ROLLOUT, the latest rollout. With --fleet, every device of the fleet
/// registry instead, with the fixes it lacks (as `ringleader compliance`).
#[derive(Debug, Args)]
pub struct DevicesArgs {
    #[arg(conflicts_with = "fleet")]
    rollout: Option<String>,
    /// Only devices missing a patch that is due (released and past its deferral), with
    /// how long it has been due; with --fleet, those missing an applicable fix.
    #[arg(long)]
    behind: bool,
    /// Every device of the daemon's fleet registry (its last scan's versions), not a
    /// rollout's; --json prints `ringleader.compliance/v1`.
    #[arg(long)]
    fleet: bool,
    /// Print the API's JSON object (schema `ringleader.devices/v1`).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: Server,
}

/// A rollout's events: installs dispatched and their results, rings completing, halts,
/// operator actions.
///
/// Without ROLLOUT, the latest rollout. With --json, one JSON object per line (schema
/// `ringleader.event/v1`), each with a `cursor`: run again with --since CURSOR+1 to
/// resume after it.
#[derive(Debug, Args)]
pub struct EventsArgs {
    rollout: Option<String>,
    /// Start at this cursor (0: the beginning).
    #[arg(long, default_value_t = 0)]
    since: u64,
    /// Keep printing events as they happen, until the rollout ends.
    #[arg(long)]
    follow: bool,
    /// JSON Lines output.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: Server,
}

/// An operator action on a rollout.
#[derive(Debug, Args)]
pub struct ActionArgs {
    /// The rollout's id (e.g. `r1`).
    rollout: String,
    /// Print the API's answer (schema `ringleader.accepted/v1`).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: Server,
}

/// `ringleader rollback`: an action with a scope.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    action: ActionArgs,
    /// Roll back only this ring (by name).
    #[arg(long)]
    ring: Option<String>,
    /// Roll back only this device (by id).
    #[arg(long)]
    device: Option<String>,
}

/// `ringleader retry`.
#[derive(Debug, Args)]
pub struct RetryArgs {
    #[command(flatten)]
    action: ActionArgs,
    /// Retry only this failed device (by id).
    #[arg(long)]
    device: Option<String>,
}

/// A failure with its exit code.
struct Exit(ExitStatus, anyhow::Error);

impl<E: Into<anyhow::Error>> From<E> for Exit {
    fn from(e: E) -> Exit {
        Exit(ExitStatus::Failure, e.into())
    }
}

fn finish(result: Result<ExitStatus, Exit>) -> ExitCode {
    match result {
        Ok(status) => ExitCode::from(status),
        Err(Exit(status, e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(status)
        }
    }
}

/// The error for an answer that is not the document `T`.
fn not_a_document<T: Document>(method: &str, url: &str, e: impl std::fmt::Display) -> Exit {
    Exit(
        ExitStatus::Failure,
        anyhow::anyhow!(
            "the answer to {method} {url} is not a `{}` document: {e}\nis --server (RINGLEADER_URL) a ringleader daemon of this version?",
            T::SCHEMA
        ),
    )
}

/// A connection to the daemon.
struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    fn new(server: &Server) -> Result<Client, Exit> {
        Client::with_timeout(server, Duration::from_secs(120))
    }

    /// A client whose requests may each take up to `timeout` (a fleet scan answers
    /// when every device is done).
    fn with_timeout(server: &Server, timeout: Duration) -> Result<Client, Exit> {
        let token = match (&server.token_file, std::env::var("RINGLEADER_TOKEN").ok()) {
            (Some(path), _) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("failed to read the token file {}", path.display()))?
                    .trim()
                    .to_string(),
            ),
            (None, Some(token)) if !token.trim().is_empty() => Some(token.trim().to_string()),
            _ => None,
        };
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .user_agent(concat!("ringleader/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Client {
            base: server.server.trim_end_matches('/').to_string(),
            token,
            agent: ureq::Agent::new_with_config(config),
        })
    }

    /// `GET path`: its answer, document `T`.
    fn get<T: Document + DeserializeOwned>(&self, path: &str) -> Result<T, Exit> {
        self.call("GET", path, None)
    }

    /// `POST path` with `body` as JSON: its answer, document `T`.
    fn post<T: Document + DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, Exit> {
        self.call("POST", path, Some(serde_json::to_vec(body)?))
    }

    /// Sends a request; returns the answer of a 2xx read as document `T`, or the error
    /// with its exit code.
    fn call<T: Document + DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, Exit> {
        let text = self.call_text(method, path, body)?;
        serde_json::from_str(&text).map_err(|e| not_a_document::<T>(method, &self.url(path), e))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request; returns the text of a 2xx answer, or the error with its exit
    /// code.
    fn call_text(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> Result<String, Exit> {
        let url = self.url(path);
        // Large answers (a fleet's compliance) come compressed.
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Accept-Encoding", "gzip");
        if let Some(token) = &self.token {
            builder = builder.header("Authorization", format!("Bearer {token}"));
        }
        if body.is_some() {
            builder = builder.header("Content-Type", "application/json");
        }
        let request = builder.body(body.unwrap_or_default()).map_err(|e| {
            Exit(
                ExitStatus::Failure,
                anyhow::anyhow!("invalid server URL {url}: {e}"),
            )
        })?;
        let response = self.agent.run(request).map_err(|e| {
            Exit(
                ExitStatus::Unreachable,
                anyhow::anyhow!(
                    "cannot reach the ringleader daemon at {}: {e}\nstart it with `ringleader serve --data DIR`, or point --server (RINGLEADER_URL) at where it runs",
                    self.base
                ),
            )
        })?;
        let status = response.status().as_u16();
        let gzip = response
            .headers()
            .get("content-encoding")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
        let mut reader = response.into_body().into_reader().take(1 << 30);
        let mut text = String::new();
        let read = if gzip {
            flate2::read::GzDecoder::new(reader)
                .take(1 << 30)
                .read_to_string(&mut text)
        } else {
            reader.read_to_string(&mut text)
        };
        read.map_err(|e| {
            Exit(
                ExitStatus::Unreachable,
                anyhow::anyhow!("the daemon's answer was cut off or unreadable: {e}"),
            )
        })?;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        let message = match serde_json::from_str::<ErrorV1>(&text) {
            Ok(error) => error.error,
            Err(_) => format!(
                "{method} {url} answered HTTP {status} without a `{}` document: {}",
                ErrorV1::SCHEMA,
                text.trim()
            ),
        };
        let code = match status {
            401 => ExitStatus::Unauthorized,
            404 => ExitStatus::NotFound,
            _ => ExitStatus::Failure,
        };
        let hint = if status == 401 && self.token.is_none() {
            "\ngive the token with --token-file FILE (DATA/api-token, or a named token's file) or RINGLEADER_TOKEN"
        } else {
            ""
        };
        Err(Exit(code, anyhow::anyhow!("{message}{hint}")))
    }

    /// The given rollout, or the latest one.
    fn rollout_or_latest(&self, rollout: &Option<String>) -> Result<String, Exit> {
        if let Some(id) = rollout {
            return Ok(id.clone());
        }
        let list: RolloutsV1 = self.get("/v1/rollouts")?;
        list.rollouts.last().map(|r| r.id.clone()).ok_or_else(|| {
            Exit(
                ExitStatus::NotFound,
                anyhow::anyhow!(
                    "the daemon has no rollouts yet; start one with `ringleader rollout start`"
                ),
            )
        })
    }
}

/// `writeln!` into a `String` (which cannot fail).
macro_rules! outln {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}

/// Writes `text` to stdout; a reader that went away (`| head`) is not an error.
fn emit(text: &str) -> Result<(), Exit> {
    Ok(crate::write_stdout(text)?)
}

/// The JSON of a document, its keys sorted at every level, as `--json` has always
/// printed the daemon's answers.
fn sorted(doc: &impl Serialize) -> Result<serde_json::Value, Exit> {
    Ok(serde_json::to_value(doc)?)
}

/// Compact JSON (as serde_json writes it) indented as `serde_json::to_string_pretty`
/// would: two spaces a level, `": "` after keys, empty arrays and objects kept as
/// `[]` and `{}`. Byte by byte, without reading the document (a fleet's compliance is
/// tens of megabytes); strings are copied as they are.
fn indent_json(compact: &str) -> String {
    fn newline(out: &mut Vec<u8>, depth: usize) {
        out.push(b'\n');
        out.extend(std::iter::repeat_n(b' ', depth * 2));
    }
    let bytes = compact.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 2);
    let (mut depth, mut i) = (0usize, 0usize);
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'"' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                out.extend_from_slice(&bytes[start..(i + 1).min(bytes.len())]);
            }
            b'{' | b'[' => {
                let close = if b == b'{' { b'}' } else { b']' };
                if bytes.get(i + 1) == Some(&close) {
                    out.extend_from_slice(&[b, close]);
                    i += 1;
                } else {
                    out.push(b);
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(b);
            }
            b',' => {
                out.push(b',');
                newline(&mut out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            _ => out.push(b),
        }
        i += 1;
    }
    // Only ASCII was added, at places between whole UTF-8 characters.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn print_json(doc: &impl Serialize) -> Result<(), Exit> {
    emit(&format!(
        "{}\n",
        serde_json::to_string_pretty(&sorted(doc)?)?
    ))
}

/// A duration for people: the two largest units, e.g. `35d 18h`, `2h 5m`, `40s`.
fn short_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

pub fn start(args: StartArgs) -> ExitCode {
    finish(start_inner(args))
}

fn start_inner(args: StartArgs) -> Result<ExitStatus, Exit> {
    let client = Client::new(&args.server)?;
    let file = |path: &PathBuf| -> Result<FileV1, Exit> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read {}", path.display()))?;
        Ok(FileV1 {
            name: path.display().to_string(),
            text,
        })
    };
    let clock = if args.virtual_time {
        Clock::Virtual
    } else {
        Clock::Real
    };
    let mut body = StartV1 {
        policy: file(&args.policy)?,
        inventory: None,
        simulated: None,
        clock: Some(clock.as_str().to_string()),
        seed: args.virtual_time.then_some(args.seed),
        start: args.start.clone(),
    };
    match (&args.inventory, args.simulate) {
        (Some(path), _) => body.inventory = Some(file(path)?),
        (None, Some(devices)) => {
            body.simulated = Some(SimulatedV1 {
                devices,
                seed: args.seed,
                fail_permille: args.fail_permille,
                hang_permille: args.hang_permille,
            })
        }
        (None, None) => unreachable!("clap requires one"),
    }
    let status: StatusV1 = client.post("/v1/rollouts", &body)?;
    if args.json {
        print_json(&status)?;
    } else {
        let id = &status.id;
        emit(&format!("{id}\n"))?;
        eprintln!(
            "started rollout {id} (policy {}); follow it with `ringleader status {id} --wait` or `ringleader events {id} --follow`",
            status.policy.as_deref().unwrap_or("?")
        );
    }
    Ok(ExitStatus::Success)
}

pub fn status(args: StatusArgs) -> ExitCode {
    finish(status_inner(args))
}

fn status_inner(args: StatusArgs) -> Result<ExitStatus, Exit> {
    let client = Client::new(&args.server)?;
    let Some(id) = &args.rollout else {
        let list: RolloutsV1 = client.get("/v1/rollouts")?;
        if args.json {
            print_json(&list)?;
        } else {
            let mut out = String::new();
            if list.rollouts.is_empty() {
                outln!(
                    out,
                    "no rollouts; start one with `ringleader rollout start`"
                );
            } else {
                outln!(
                    out,
                    "{:<8} {:<24} {:<8} {:<18} {:<12}",
                    "ROLLOUT",
                    "POLICY",
                    "CLOCK",
                    "STATE",
                    "RING"
                );
            }
            for r in &list.rollouts {
                outln!(
                    out,
                    "{:<8} {:<24} {:<8} {:<18} {:<12}",
                    r.id,
                    r.policy.as_deref().unwrap_or(""),
                    r.clock.map_or("", Clock::as_str),
                    r.state.as_str(),
                    r.ring.as_deref().unwrap_or("-"),
                );
            }
            emit(&out)?;
        }
        return Ok(ExitStatus::Success);
    };
    let path = format!("/v1/rollouts/{id}");
    let mut status: StatusV1 = client.get(&path)?;
    if args.wait {
        while !status.ended {
            std::thread::sleep(Duration::from_millis(500));
            status = client.get(&path)?;
        }
    }
    if args.json {
        print_json(&status)?;
    } else {
        emit(&render_status(&status))?;
    }
    if !args.wait {
        return Ok(ExitStatus::Success);
    }
    Ok(match status.state {
        RolloutState::Completed => ExitStatus::Success,
        RolloutState::Halted => ExitStatus::Halted,
        RolloutState::Aborted => ExitStatus::Aborted,
        _ => ExitStatus::Failure,
    })
}

fn render_status(s: &StatusV1) -> String {
    let mut out = String::new();
    outln!(
        out,
        "rollout {}  policy {}  clock {}  state {}{}{}",
        s.id,
        s.policy.as_deref().unwrap_or("-"),
        s.clock.map_or("-", Clock::as_str),
        s.state,
        s.ring
            .as_ref()
            .map(|r| format!(" (ring {r})"))
            .unwrap_or_default(),
        if s.paused { ", paused" } else { "" },
    );
    if let Some(t) = s.time {
        outln!(out, "time    {t}");
    }
    if let Some(w) = &s.waiting {
        let ring = w.ring.as_deref().unwrap_or("");
        let until = w.until.map(|u| format!(" until {u}")).unwrap_or_default();
        let what = match w.for_ {
            Gate::Approval => format!(
                "an operator's approval of ring {ring} (`ringleader approve {}`)",
                s.id
            ),
            Gate::Soak => format!("ring {ring}'s soak{until}"),
            Gate::Resume => format!("an operator to resume it (`ringleader resume {}`)", s.id),
            Gate::Window => format!("a maintenance window, freeze or deferral in ring {ring}"),
        };
        outln!(out, "waiting for {what}");
    }
    if let Some(reason) = &s.halt_reason {
        outln!(out, "halted because {reason}");
    }
    if let Some(error) = &s.error {
        outln!(out, "failed: {error}");
    }
    outln!(
        out,
        "{:<12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>12} {:>16} {:>8} {:>15}",
        "RING",
        "DEVICES",
        "DONE",
        "FAILED",
        "ACTIVE",
        "PENDING",
        "ROLLED BACK",
        "ROLLBACK FAILED",
        "REBOOTS",
        "REBOOT PENDING"
    );
    for r in &s.rings {
        outln!(
            out,
            "{:<12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>12} {:>16} {:>8} {:>15}",
            r.name,
            r.devices,
            r.done,
            r.failed,
            r.active + r.rolling_back,
            r.pending,
            r.rolled_back,
            r.rollback_failed,
            r.reboots,
            r.reboot_pending,
        );
    }
    out
}

pub fn devices(args: DevicesArgs) -> ExitCode {
    finish(devices_inner(args))
}

fn devices_inner(args: DevicesArgs) -> Result<ExitStatus, Exit> {
    let client = Client::new(&args.server)?;
    if args.fleet {
        return fleet_devices(&client, args.behind, args.json);
    }
    let id = client.rollout_or_latest(&args.rollout)?;
    let path = format!(
        "/v1/rollouts/{id}/devices{}",
        if args.behind { "?behind=true" } else { "" }
    );
    let answer: DevicesV1 = client.get(&path)?;
    if args.json {
        print_json(&answer)?;
        return Ok(ExitStatus::Success);
    }
    let devices = &answer.devices;
    // Each device's installed version per component: `bios 2.19.1, linux 6.1.115`.
    let versions: Vec<String> = devices
        .iter()
        .map(|d| {
            d.versions
                .iter()
                .map(|(component, version)| format!("{component} {version}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    let width = versions
        .iter()
        .map(|v| v.chars().count())
        .max()
        .unwrap_or(0)
        .max("VERSIONS".len());
    let mut out = String::new();
    outln!(
        out,
        "{:<24} {:<10} {:<16} {:>8}  {:<width$}  PENDING",
        "DEVICE",
        "RING",
        "STATE",
        "BEHIND",
        "VERSIONS"
    );
    for (d, versions) in devices.iter().zip(&versions) {
        let behind = d.behind_seconds.map_or_else(|| "-".into(), short_duration);
        outln!(
            out,
            "{:<24} {:<10} {:<16} {:>8}  {:<width$}  {}",
            d.id,
            d.ring,
            d.state.as_str(),
            behind,
            versions,
            d.pending.join(", ")
        );
    }
    // Why devices failed, and why their rollbacks did, below the table.
    for d in devices {
        if let Some(reason) = &d.reason {
            outln!(out, "{}: failed: {reason}", d.id);
        }
        if let Some(reason) = &d.rollback_reason {
            outln!(out, "{}: rollback failed: {reason}", d.id);
        }
    }
    emit(&out)?;
    eprintln!("{}", crate::count(devices.len(), "device", "devices"));
    Ok(ExitStatus::Success)
}

pub fn events(args: EventsArgs) -> ExitCode {
    finish(events_inner(args))
}

fn events_inner(args: EventsArgs) -> Result<ExitStatus, Exit> {
    let client = Client::new(&args.server)?;
    let id = client.rollout_or_latest(&args.rollout)?;
    let mut cursor = args.since;
    // The stall last told (on stderr, once each time the rollout stalls).
    let mut stall: Option<String> = None;
    loop {
        let mut out: Vec<u8> = Vec::new();
        let wait = if args.follow { 30 } else { 0 };
        let answer: EventsV1 = client.get(&format!(
            "/v1/rollouts/{id}/events?since={cursor}&wait={wait}"
        ))?;
        for event in &answer.events {
            if args.json {
                serde_json::to_writer(&mut out, &sorted(event)?)?;
                writeln!(out)?;
            } else {
                let field = |k: &str, v: &Option<String>| {
                    v.as_ref().map(|v| format!("  {k} {v}")).unwrap_or_default()
                };
                // A step's component and versions: `  openssl 3.0.11-1 -> 3.0.15-1`.
                let versions = match (&event.component, &event.to) {
                    (Some(component), Some(to)) => format!(
                        "  {component} {} -> {to}",
                        event.from.as_deref().unwrap_or("(none)")
                    ),
                    _ => String::new(),
                };
                writeln!(
                    out,
                    "{}  {}  {:<20}{}{}{}{}{}{}{}",
                    event.cursor,
                    event.at,
                    event.kind.as_str(),
                    field("ring", &event.ring),
                    field("device", &event.device),
                    field("patch", &event.patch),
                    versions,
                    field("reason", &event.reason),
                    field("by", &event.by),
                    field("action", &event.action),
                )?;
            }
        }
        let mut stdout = std::io::stdout().lock();
        match stdout.write_all(&out).and_then(|()| stdout.flush()) {
            // The reader went away (`| head`): done.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                return Ok(ExitStatus::Success);
            }
            result => result?,
        }
        let now_stalled = answer.stalled;
        if now_stalled.is_some() && now_stalled != stall {
            eprintln!(
                "rollout {id} stalls: {}; nothing is dispatched until the daemon can write its log again, and it goes on by itself then",
                now_stalled.as_deref().unwrap_or_default()
            );
        }
        stall = now_stalled;
        let next = answer.next;
        if next == cursor && (!args.follow || answer.ended) {
            return Ok(ExitStatus::Success);
        }
        cursor = next;
    }
}

/// An operator's action: approve, pause, resume or abort.
pub fn act(action: Action, args: ActionArgs) -> ExitCode {
    finish(act_inner(action, args, &[]))
}

/// `ringleader rollback ID [--ring R] [--device D]`.
pub fn rollback(args: RollbackArgs) -> ExitCode {
    let scope = [("ring", args.ring), ("device", args.device)];
    finish(act_inner(Action::Rollback, args.action, &scope))
}

/// `ringleader retry ID [--device D]`.
pub fn retry(args: RetryArgs) -> ExitCode {
    let scope = [("device", args.device)];
    finish(act_inner(Action::Retry, args.action, &scope))
}

/// `s` as a URL query value (RFC 3986 unreserved characters kept).
fn query_value(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn act_inner(
    action: Action,
    args: ActionArgs,
    scope: &[(&str, Option<String>)],
) -> Result<ExitStatus, Exit> {
    let client = Client::new(&args.server)?;
    let query: Vec<String> = scope
        .iter()
        .filter_map(|(key, value)| Some(format!("{key}={}", query_value(value.as_deref()?))))
        .collect();
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{}", query.join("&"))
    };
    let answer: AcceptedV1 = client.post(
        &format!("/v1/rollouts/{}/{action}{query}", args.rollout),
        &serde_json::json!({}),
    )?;
    if args.json {
        print_json(&answer)?;
    } else {
        eprintln!("{action}: sent to rollout {}", args.rollout);
    }
    Ok(ExitStatus::Success)
}

/// The fleet registry on the daemon: scan devices, list them, show one.
#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Scan devices now: what each really has, through its installer's `scan`.
    ///
    /// With --inventory, the file's devices are added to the daemon's registry and
    /// scanned; without, every device of the registry (every inventory the daemon was
    /// given). Each device is read by the installer its rollouts use (a plugin built
    /// against WIT 0.3.0 or later), the daemon's `[scan]` concurrency at a time and
    /// within its per-device timeout. A device that cannot be scanned keeps its last
    /// scan, and its error is kept (`fleet list`, `fleet device ID`). Exit code 0 when
    /// every device was scanned, 1 when one failed.
    Scan(FleetScanArgs),
    /// Every device of the registry: last scan, last seen, error, differences with the
    /// inventory, drift, pending restart.
    List(FleetListArgs),
    /// One device: its last scan (components, OS, boot), differences with the
    /// inventory, its history of changes and failed scans, and what each rollout did
    /// to it (and who started that rollout).
    Device(FleetDeviceArgs),
}

#[derive(Debug, Args)]
pub struct FleetScanArgs {
    /// An inventory (TOML or JSON) whose devices are added to the registry and
    /// scanned.
    #[arg(long, value_name = "FILE")]
    inventory: Option<PathBuf>,
    /// Only this device (repeat for several).
    #[arg(long = "device", value_name = "ID")]
    devices: Vec<String>,
    /// Print the API's JSON object (schema `ringleader.fleet-scan/v1`).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: Server,
}

#[derive(Debug, Args)]
pub struct FleetListArgs {
    /// Print the API's JSON object (schema `ringleader.fleet/v1`).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: Server,
}

#[derive(Debug, Args)]
pub struct FleetDeviceArgs {
    /// The device's id.
    device: String,
    /// Print the API's JSON object (schema `ringleader.fleet-device/v1`).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: Server,
}

pub fn fleet(cmd: FleetCommand) -> ExitCode {
    finish(match cmd {
        FleetCommand::Scan(args) => fleet_scan(args),
        FleetCommand::List(args) => fleet_list(args),
        FleetCommand::Device(args) => fleet_device(args),
    })
}

/// A time as people read it: RFC 3339 to the second.
fn when(at: Option<jiff::Timestamp>) -> String {
    at.map_or_else(
        || "never".into(),
        |t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

fn fleet_scan(args: FleetScanArgs) -> Result<ExitStatus, Exit> {
    use ringleader_api::fleet::{FleetScanV1, ScanRequestV1};
    // A scan of a large fleet takes a while: the daemon answers when it is done.
    let client = Client::with_timeout(&args.server, Duration::from_secs(6 * 60 * 60))?;
    let inventory = match &args.inventory {
        Some(path) => Some(FileV1 {
            name: path.display().to_string(),
            text: std::fs::read_to_string(path)
                .with_context(|| format!("failed to read the inventory {}", path.display()))?,
        }),
        None => None,
    };
    if !args.json {
        eprintln!("scanning (the daemon answers when every device is done)...");
    }
    let answer: FleetScanV1 = client.post(
        "/v1/fleet/scan",
        &ScanRequestV1 {
            inventory,
            devices: args.devices.clone(),
        },
    )?;
    let status = if answer.failed == 0 {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    };
    if args.json {
        print_json(&answer)?;
        return Ok(status);
    }
    let mut out = String::new();
    outln!(
        out,
        "{:<24} {:<6} {:>10} {:>8} {:>8}  ERROR",
        "DEVICE",
        "OK",
        "COMPONENTS",
        "CHANGED",
        "MS"
    );
    for d in &answer.devices {
        outln!(
            out,
            "{:<24} {:<6} {:>10} {:>8} {:>8}  {}",
            d.id,
            if d.ok { "yes" } else { "no" },
            d.components.map_or_else(|| "-".into(), |n| n.to_string()),
            d.changed,
            d.duration_ms,
            d.error
                .as_ref()
                .map_or_else(String::new, |e| format!("{}: {}", e.kind, e.message))
        );
    }
    emit(&out)?;
    eprintln!(
        "{} scanned in {} ms: {} ok, {} failed",
        crate::count(answer.scanned, "device", "devices"),
        answer.duration_ms,
        answer.ok,
        answer.failed
    );
    Ok(status)
}

fn fleet_list(args: FleetListArgs) -> Result<ExitStatus, Exit> {
    use ringleader_api::fleet::FleetV1;
    let client = Client::new(&args.server)?;
    let answer: FleetV1 = client.get("/v1/fleet")?;
    if args.json {
        print_json(&answer)?;
        return Ok(ExitStatus::Success);
    }
    let mut out = String::new();
    outln!(
        out,
        "{:<24} {:<20} {:<20} {:>10} {:>6} {:<6} {:<7}  ERROR",
        "DEVICE",
        "LAST SCAN",
        "LAST SEEN",
        "COMPONENTS",
        "DIFFS",
        "DRIFT",
        "REBOOT"
    );
    for d in &answer.devices {
        outln!(
            out,
            "{:<24} {:<20} {:<20} {:>10} {:>6} {:<6} {:<7}  {}",
            d.id,
            when(d.last_scan),
            when(d.last_seen),
            d.components.map_or_else(|| "-".into(), |n| n.to_string()),
            d.differences,
            if d.drift { "yes" } else { "-" },
            if d.reboot_pending { "pending" } else { "-" },
            d.error
                .as_ref()
                .map_or_else(String::new, |e| format!("{}: {}", e.kind, e.message))
        );
    }
    emit(&out)?;
    eprintln!(
        "{}; {} not scanned recently",
        crate::count(answer.devices.len(), "device", "devices"),
        answer.not_scanned_recently
    );
    Ok(ExitStatus::Success)
}

fn fleet_device(args: FleetDeviceArgs) -> Result<ExitStatus, Exit> {
    use ringleader_api::fleet::FleetDeviceV1;
    let client = Client::new(&args.server)?;
    let d: FleetDeviceV1 = client.get(&format!("/v1/fleet/devices/{}", args.device))?;
    if args.json {
        print_json(&d)?;
        return Ok(ExitStatus::Success);
    }
    let mut out = String::new();
    outln!(out, "device {} (inventory {})", d.id, d.inventory);
    if let Some(scan) = &d.last_scan {
        outln!(
            out,
            "last scan {} by {} in {} ms: {}",
            when(Some(scan.at)),
            scan.installer,
            scan.duration_ms,
            crate::count(scan.components.len(), "component", "components")
        );
        if let Some(os) = &scan.os {
            outln!(
                out,
                "os: {}",
                os.pretty_name.clone().unwrap_or_else(|| format!(
                    "{} {}",
                    os.id,
                    os.version_id.clone().unwrap_or_default()
                ))
            );
        }
        if scan.boot.reboot_pending {
            outln!(
                out,
                "restart pending: {}",
                scan.boot.pending_reasons.join("; ")
            );
        }
    } else {
        outln!(out, "never scanned");
    }
    if let (Some(at), Some(e)) = (d.error_at, &d.error) {
        outln!(
            out,
            "last scan failed {}: {}: {}",
            when(Some(at)),
            e.kind,
            e.message
        );
    }
    if d.drift {
        outln!(
            out,
            "drift: a component went back to a lower version (see history)"
        );
    }
    if !d.differences.is_empty() {
        outln!(out, "differences with the inventory:");
        for diff in &d.differences {
            outln!(
                out,
                "  {:<10} {:<32} inventory {:<20} device {}",
                diff.kind.as_str(),
                diff.component,
                diff.declared.as_deref().unwrap_or("-"),
                diff.observed.as_deref().unwrap_or("-")
            );
        }
    }
    if !d.history.is_empty() {
        outln!(out, "history:");
        for h in &d.history {
            outln!(
                out,
                "  {} {:<12} {}",
                when(Some(h.at)),
                h.kind.as_str(),
                h.detail
            );
        }
    }
    for r in &d.rollouts {
        outln!(
            out,
            "rollout {} (started by {}): ring {}, {}{}",
            r.rollout,
            r.started_by,
            r.ring,
            r.state,
            r.reason
                .as_ref()
                .map_or_else(String::new, |why| format!(": {why}"))
        );
        for c in &r.changes {
            let versions = match (&c.component, &c.from, &c.to) {
                (Some(component), Some(from), Some(to)) => format!(" {component} {from} -> {to}"),
                _ => String::new(),
            };
            outln!(
                out,
                "  {} {:<18} {}{versions}{}",
                when(Some(c.at)),
                c.kind,
                c.patch.as_deref().unwrap_or("-"),
                c.reason
                    .as_ref()
                    .map_or_else(String::new, |why| format!(": {why}"))
            );
        }
    }
    emit(&out)?;
    Ok(ExitStatus::Success)
}

/// The document at `path`; `None` once it is printed as the API's JSON (`--json`).
fn get_unless_json<T: Document + DeserializeOwned + Serialize>(
    server: &Server,
    path: &str,
    json: bool,
) -> Result<Option<T>, Exit> {
    let answer: T = Client::new(server)?.get(path)?;
    if json {
        print_json(&answer)?;
        return Ok(None);
    }
    Ok(Some(answer))
}

#[derive(Debug, Args)]
pub struct PublicationsArgs {
    /// From this cursor on (a previous answer's `next`): only what is newer.
    #[arg(long, default_value_t = 0)]
    since: u64,
    /// Print the API's JSON object (schema `ringleader.publications/v1`).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: Server,
}

pub fn publications(args: PublicationsArgs) -> ExitCode {
    finish(publications_list(args))
}

fn publications_list(args: PublicationsArgs) -> Result<ExitStatus, Exit> {
    use ringleader_api::source::PublicationsV1;
    let path = format!("/v1/publications?since={}", args.since);
    let Some(answer) = get_unless_json::<PublicationsV1>(&args.server, &path, args.json)? else {
        return Ok(ExitStatus::Success);
    };
    let mut out = String::new();
    outln!(
        out,
        "{:>6}  {:<20} {:<20} {:<9} {:<9} {:>3}  {:<20} PATCH",
        "CURSOR",
        "FIRST SEEN",
        "RELEASED",
        "SEVERITY",
        "KIND",
        "REV",
        "SOURCE"
    );
    for p in &answer.publications {
        outln!(
            out,
            "{:>6}  {:<20} {:<20} {:<9} {:<9} {:>3}  {:<20} {}",
            p.cursor,
            when(Some(p.first_seen)),
            when(Some(p.released)),
            p.severity.as_str(),
            p.kind.as_str(),
            p.revision,
            p.source,
            p.id
        );
    }
    emit(&out)?;
    eprintln!(
        "{}; next cursor {}",
        crate::count(answer.publications.len(), "publication", "publications"),
        answer.next
    );
    Ok(ExitStatus::Success)
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Per severity, how long devices took from a patch's first sighting by the
    /// daemon's source polls to its install by a rollout: median, 95th percentile, and
    /// the share of the devices that needed it that had it within 7, 14 and 30 days
    /// (docs/reports.md). Devices of the fleet registry still lacking a patch count as
    /// outstanding.
    TimeToPatch(TimeToPatchArgs),
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("format").args(["json", "csv"]))]
pub struct TimeToPatchArgs {
    /// The time the report is for (RFC 3339, e.g. 2026-12-01T00:00:00Z): what was
    /// published or installed later is not counted; default now.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// Print the API's JSON object (schema `ringleader.time-to-patch/v1`).
    #[arg(long)]
    json: bool,
    /// Print CSV: a header row, then one row per severity (durations in seconds,
    /// shares from 0 to 1, empty when there is none).
    #[arg(long)]
    csv: bool,
    #[command(flatten)]
    server: Server,
}

pub fn report(cmd: ReportCommand) -> ExitCode {
    match cmd {
        ReportCommand::TimeToPatch(args) => finish(time_to_patch(args)),
    }
}

/// The header of `report time-to-patch --csv`.
pub const TIME_TO_PATCH_CSV_HEADER: [&str; 10] = [
    "severity",
    "patches",
    "pairs",
    "installed",
    "outstanding",
    "median_seconds",
    "p95_seconds",
    "within_7_days",
    "within_14_days",
    "within_30_days",
];

fn time_to_patch(args: TimeToPatchArgs) -> Result<ExitStatus, Exit> {
    use ringleader_api::report::TimeToPatchReportV1;
    let mut path = "/v1/reports/time-to-patch".to_string();
    if let Some(at) = &args.at {
        let t: jiff::Timestamp = at.parse().map_err(|e| {
            Exit(
                ExitStatus::Usage,
                anyhow::anyhow!(
                    "--at is `{at}`, not an RFC 3339 time like 2026-12-01T00:00:00Z: {e}"
                ),
            )
        })?;
        path.push_str(&format!("?at={}", query_value(&t.to_string())));
    }
    let Some(answer) = get_unless_json::<TimeToPatchReportV1>(&args.server, &path, args.json)?
    else {
        return Ok(ExitStatus::Success);
    };
    if args.csv {
        let failed = |e: &dyn std::fmt::Display| {
            Exit(ExitStatus::Failure, anyhow::anyhow!("writing the CSV: {e}"))
        };
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(TIME_TO_PATCH_CSV_HEADER)
            .map_err(|e| failed(&e))?;
        let opt = |v: Option<i64>| v.map_or(String::new(), |v| v.to_string());
        let share = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.4}"));
        for t in &answer.severities {
            w.write_record([
                t.severity.as_str().to_string(),
                t.patches.to_string(),
                t.pairs.to_string(),
                t.installed.to_string(),
                t.outstanding.to_string(),
                opt(t.median_seconds),
                opt(t.p95_seconds),
                share(t.within_7_days),
                share(t.within_14_days),
                share(t.within_30_days),
            ])
            .map_err(|e| failed(&e))?;
        }
        let bytes = w.into_inner().map_err(|e| failed(&e))?;
        emit(&String::from_utf8_lossy(&bytes))?;
        return Ok(ExitStatus::Success);
    }
    let mut out = String::new();
    outln!(
        out,
        "time to patch, from first seen to installed, as of {}: {} published, {} installs in {} rollouts",
        when(Some(answer.at)),
        crate::count(answer.publications as usize, "patch", "patches"),
        answer.installs,
        answer.rollouts
    );
    if !answer.unread.is_empty() {
        outln!(
            out,
            "not read yet (still being prepared): {}",
            answer.unread.join(", ")
        );
    }
    if answer.severities.is_empty() {
        outln!(
            out,
            "no patch published yet: the daemon's source polls ([sources] poll) record when each is first seen"
        );
    } else {
        out.push_str(&time_to_patch_table(&answer.severities));
    }
    emit(&out)?;
    Ok(ExitStatus::Success)
}

/// Time to patch per severity as a table (the report's and the continuous demo's).
pub fn time_to_patch_table(rows: &[ringleader_api::demo::TimeToPatchV1]) -> String {
    fn days_hours(secs: Option<i64>) -> String {
        match secs {
            None => "-".into(),
            Some(s) if s < 60 => format!("{s}s"),
            Some(s) if s < 3600 => format!("{}m", s / 60),
            Some(s) if s < 86_400 => format!("{:.1}h", s as f64 / 3600.0),
            Some(s) => format!("{:.1}d", s as f64 / 86_400.0),
        }
    }
    fn share(v: Option<f64>) -> String {
        v.map_or("-".into(), |v| format!("{:.1}%", v * 100.0))
    }
    let mut out = String::new();
    outln!(
        out,
        "  {:<9} {:>7} {:>7} {:>9} {:>11} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "severity",
        "patches",
        "pairs",
        "installed",
        "outstanding",
        "median",
        "p95",
        "7d",
        "14d",
        "30d"
    );
    for t in rows {
        outln!(
            out,
            "  {:<9} {:>7} {:>7} {:>9} {:>11} {:>7} {:>7} {:>7} {:>7} {:>7}",
            t.severity.as_str(),
            t.patches,
            t.pairs,
            t.installed,
            t.outstanding,
            days_hours(t.median_seconds),
            days_hours(t.p95_seconds),
            share(t.within_7_days),
            share(t.within_14_days),
            share(t.within_30_days)
        );
    }
    out
}

#[derive(Debug, Args)]
pub struct ScheduleRunsArgs {
    /// How many of the latest runs to show.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Print the API's JSON object (schema `ringleader.scheduled-runs/v1`).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: Server,
}

pub fn schedule_runs(args: ScheduleRunsArgs) -> ExitCode {
    finish(schedule_runs_list(args))
}

fn schedule_runs_list(args: ScheduleRunsArgs) -> Result<ExitStatus, Exit> {
    use ringleader_api::schedule::ScheduledRunsV1;
    let path = format!("/v1/schedules/runs?limit={}", args.limit);
    let Some(answer) = get_unless_json::<ScheduledRunsV1>(&args.server, &path, args.json)? else {
        return Ok(ExitStatus::Success);
    };
    let mut out = String::new();
    if answer.file.is_empty() {
        outln!(
            out,
            "the daemon runs no schedules: start it with `serve --schedules FILE` (docs/schedules.md)"
        );
    } else {
        outln!(out, "schedules of {}:", answer.file);
    }
    for s in &answer.schedules {
        outln!(out, "  {:<24} next run {}", s.name, when(s.next));
    }
    if !answer.runs.is_empty() {
        outln!(out, "");
        outln!(
            out,
            "{:<20} {:<24} {:<13} {:<8} PATCHES / WHY",
            "AT",
            "SCHEDULE",
            "OUTCOME",
            "ROLLOUT"
        );
    }
    for r in &answer.runs {
        let schedule = match &r.expedited {
            Some(p) => format!("{} (expedited {p})", r.schedule),
            None => r.schedule.clone(),
        };
        let detail = match &r.why {
            Some(why) => why.clone(),
            None => r.patches.join(", "),
        };
        outln!(
            out,
            "{:<20} {:<24} {:<13} {:<8} {}",
            when(Some(r.at)),
            schedule,
            r.outcome.as_str(),
            r.rollout.as_deref().unwrap_or("-"),
            detail
        );
    }
    emit(&out)?;
    Ok(ExitStatus::Success)
}

#[derive(Debug, Args)]
pub struct NotificationsArgs {
    /// How many of the latest deliveries to show.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Print the API's JSON object (schema `ringleader.notifications/v1`).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: Server,
}

pub fn notifications(args: NotificationsArgs) -> ExitCode {
    finish(notifications_list(args))
}

fn notifications_list(args: NotificationsArgs) -> Result<ExitStatus, Exit> {
    use ringleader_api::notification::NotificationsV1;
    let path = format!("/v1/notifications?limit={}", args.limit);
    let Some(answer) = get_unless_json::<NotificationsV1>(&args.server, &path, args.json)? else {
        return Ok(ExitStatus::Success);
    };
    let mut out = String::new();
    if answer.webhooks.is_empty() {
        outln!(
            out,
            "no webhooks: add [webhooks.NAME] to the operator config (docs/notifications.md)"
        );
    }
    for w in &answer.webhooks {
        outln!(out, "webhook {} -> {}", w.name, w.url);
        let events: Vec<&str> = w.events.iter().map(|k| k.as_str()).collect();
        outln!(out, "  events: {}", events.join(", "));
        outln!(
            out,
            "  {} pending, {} delivered (last {}), {} dropped",
            w.pending,
            w.delivered,
            when(w.last_delivered),
            w.dropped
        );
        if let Some(e) = &w.last_error {
            outln!(
                out,
                "  last error {}: {} (try {}): {}",
                when(Some(e.at)),
                e.notification,
                e.attempt,
                e.message
            );
        }
    }
    if !answer.deliveries.is_empty() {
        outln!(out, "");
        outln!(
            out,
            "{:<20} {:<12} {:<10} {:>5}  {:<19} {:<30} LAST ERROR",
            "QUEUED",
            "WEBHOOK",
            "STATE",
            "TRIES",
            "KIND",
            "ID"
        );
        for d in &answer.deliveries {
            outln!(
                out,
                "{:<20} {:<12} {:<10} {:>5}  {:<19} {:<30} {}",
                when(Some(d.queued)),
                d.webhook,
                d.state.as_str(),
                d.attempts,
                d.kind.as_str(),
                d.id,
                d.last_error.as_deref().unwrap_or("-")
            );
        }
    }
    emit(&out)?;
    Ok(ExitStatus::Success)
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("format").args(["json", "csv"]))]
pub struct ComplianceArgs {
    /// Only fixes of at least this severity: critical, high, medium, low, unknown.
    #[arg(long, value_name = "S")]
    severity: Option<String>,
    /// Only fixes of this CVE (case-insensitive).
    #[arg(long, value_name = "ID")]
    cve: Option<String>,
    /// Only devices with this tag.
    #[arg(long, value_name = "T")]
    tag: Option<String>,
    /// When ages and overdue scans are measured (RFC 3339, e.g. 2026-12-01T00:00:00Z);
    /// default now.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// Ask the patch sources again now (else the daemon's catalog is at most 5
    /// minutes old).
    #[arg(long)]
    refresh: bool,
    /// Print the API's JSON object (schema `ringleader.compliance/v1`).
    #[arg(long)]
    json: bool,
    /// Print CSV for spreadsheets: a header row, then one row per device and missing
    /// patch (RFC 4180 quoting).
    #[arg(long)]
    csv: bool,
    #[command(flatten)]
    server: Server,
}

pub fn compliance(args: ComplianceArgs) -> ExitCode {
    finish(compliance_inner(args))
}

/// The header of `compliance --csv`.
pub const COMPLIANCE_CSV_HEADER: [&str; 15] = [
    "device",
    "tags",
    "patch",
    "title",
    "component",
    "installed",
    "fixed_version",
    "severity",
    "cves",
    "covers",
    "released",
    "age_days",
    "last_scan",
    "reachable",
    "reboot_pending",
];

/// `compliance --csv`: one row per device and missing patch.
fn compliance_csv(doc: &ringleader_api::compliance::ComplianceV1) -> Result<String, Exit> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(COMPLIANCE_CSV_HEADER)
        .context("failed to write CSV")?;
    for d in &doc.devices {
        for m in &d.missing {
            w.write_record([
                d.id.as_str(),
                &d.tags.join(" "),
                &m.patch,
                &m.title,
                &m.component,
                &m.installed,
                &m.fixed_version,
                m.severity.as_str(),
                &m.cves.join(", "),
                &m.covers.join(", "),
                &when(Some(m.released)),
                &m.age_days.to_string(),
                &d.last_scan.map_or_else(String::new, |t| when(Some(t))),
                d.reachable.map_or("", |r| if r { "yes" } else { "no" }),
                if d.reboot_pending { "yes" } else { "no" },
            ])
            .context("failed to write CSV")?;
        }
    }
    let bytes = w
        .into_inner()
        .map_err(|e| anyhow::anyhow!("failed to write CSV: {e}"))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn compliance_inner(args: ComplianceArgs) -> Result<ExitStatus, Exit> {
    use ringleader_api::compliance::ComplianceV1;
    use ringleader_api::plugin::SeverityV1;
    let mut query: Vec<String> = Vec::new();
    if let Some(s) = &args.severity {
        if SeverityV1::from_name(s).is_none() {
            return Err(Exit(
                ExitStatus::Usage,
                anyhow::anyhow!(
                    "--severity is `{s}`, not a severity (one of: critical, high, medium, low, unknown)"
                ),
            ));
        }
        query.push(format!("severity={}", query_value(s)));
    }
    if let Some(at) = &args.at {
        let t: jiff::Timestamp = at.parse().map_err(|e| {
            Exit(
                ExitStatus::Usage,
                anyhow::anyhow!(
                    "--at is `{at}`, not an RFC 3339 time like 2026-12-01T00:00:00Z: {e}"
                ),
            )
        })?;
        query.push(format!("at={}", query_value(&t.to_string())));
    }
    for (key, value) in [("cve", &args.cve), ("tag", &args.tag)] {
        if let Some(v) = value {
            query.push(format!("{key}={}", query_value(v)));
        }
    }
    if args.refresh {
        query.push("refresh=true".into());
    }
    let path = if query.is_empty() {
        "/v1/compliance".to_string()
    } else {
        format!("/v1/compliance?{}", query.join("&"))
    };
    let client = Client::new(&args.server)?;
    if args.json {
        // The daemon's JSON as it came (keys sorted), indented: at 100,000 devices it is
        // a hundred megabytes, not worth reading into a document and writing again.
        let text = client.call_text("GET", &path, None)?;
        #[derive(serde::Deserialize)]
        struct Head {
            schema: String,
        }
        let head: Head = serde_json::from_str(&text)
            .map_err(|e| not_a_document::<ComplianceV1>("GET", &client.url(&path), e))?;
        if head.schema != ComplianceV1::SCHEMA {
            return Err(not_a_document::<ComplianceV1>(
                "GET",
                &client.url(&path),
                format!("its schema is `{}`", head.schema),
            ));
        }
        let mut out = indent_json(&text);
        out.push('\n');
        emit(&out)?;
        return Ok(ExitStatus::Success);
    }
    let doc: ComplianceV1 = client.get(&path)?;
    if args.csv {
        emit(&compliance_csv(&doc)?)?;
        return Ok(ExitStatus::Success);
    }
    emit(&render_compliance(&doc))?;
    Ok(ExitStatus::Success)
}

/// `compliance` for people: the fleet's summary, then each device, then each patch.
fn render_compliance(doc: &ringleader_api::compliance::ComplianceV1) -> String {
    let s = &doc.summary;
    let mut out = String::new();
    outln!(
        out,
        "compliance at {} ({} of {} fully patched; {} not scanned recently, {} unreachable, {} reboot pending)",
        when(Some(doc.at)),
        s.fully_patched,
        crate::count(s.devices as usize, "device", "devices"),
        s.not_scanned_recently,
        s.unreachable,
        s.reboot_pending
    );
    outln!(
        out,
        "catalog: {} discovered {}",
        crate::count(doc.catalog.patches, "patch", "patches"),
        when(Some(doc.catalog.discovered_at))
    );
    outln!(
        out,
        "\n{:<10} {:>8} {:>9} {:>8}",
        "SEVERITY",
        "MISSING",
        "PATCHED",
        "OLDEST"
    );
    for b in &s.by_severity {
        outln!(
            out,
            "{:<10} {:>8} {:>8.1}% {:>8}",
            b.severity.as_str(),
            b.devices_missing,
            b.share_patched * 100.0,
            b.oldest_missing_days
                .map_or_else(|| "-".into(), |d| format!("{d}d"))
        );
    }
    outln!(
        out,
        "\n{:<24} {:>4} {:>4} {:>4} {:>4} {:>7}  {:<20} {:<9} {:<7}  MISSING",
        "DEVICE",
        "CRIT",
        "HIGH",
        "MED",
        "LOW",
        "OLDEST",
        "LAST SCAN",
        "REACHABLE",
        "REBOOT"
    );
    for d in &doc.devices {
        let m = &d.missing_by_severity;
        outln!(
            out,
            "{:<24} {:>4} {:>4} {:>4} {:>4} {:>7}  {:<20} {:<9} {:<7}  {}",
            d.id,
            m.critical,
            m.high,
            m.medium,
            m.low + m.unknown,
            d.oldest_missing_days
                .map_or_else(|| "-".into(), |n| format!("{n}d")),
            when(d.last_scan),
            match d.reachable {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            },
            if d.reboot_pending { "pending" } else { "-" },
            d.missing
                .iter()
                .map(|m| m.patch.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    outln!(
        out,
        "\n{:<32} {:<10} {:>8} {:>8}  CVES",
        "PATCH",
        "SEVERITY",
        "AFFECTED",
        "PATCHED"
    );
    for p in &doc.patches {
        outln!(
            out,
            "{:<32} {:<10} {:>8} {:>8}  {}",
            p.id,
            p.severity.as_str(),
            p.affected,
            p.patched,
            p.cves.join(", ")
        );
    }
    out
}

/// `devices --fleet [--behind]`: the fleet registry's devices with the fixes each
/// lacks (the compliance document's devices; `--behind`: only those lacking one).
fn fleet_devices(client: &Client, behind: bool, json: bool) -> Result<ExitStatus, Exit> {
    use ringleader_api::compliance::ComplianceV1;
    let mut doc: ComplianceV1 = client.get("/v1/compliance")?;
    if behind {
        doc.devices.retain(|d| !d.fully_patched);
    }
    if json {
        print_json(&doc)?;
        return Ok(ExitStatus::Success);
    }
    let mut out = String::new();
    outln!(
        out,
        "{:<24} {:>7}  {:<20} {:<9}  MISSING",
        "DEVICE",
        "BEHIND",
        "LAST SCAN",
        "REACHABLE"
    );
    for d in &doc.devices {
        outln!(
            out,
            "{:<24} {:>7}  {:<20} {:<9}  {}",
            d.id,
            d.oldest_missing_days
                .map_or_else(|| "-".into(), |n| format!("{n}d")),
            when(d.last_scan),
            match d.reachable {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            },
            d.missing
                .iter()
                .map(|m| format!("{} ({})", m.patch, m.severity))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    emit(&out)?;
    eprintln!("{}", crate::count(doc.devices.len(), "device", "devices"));
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::indent_json;
    use serde_json::json;

    /// Indented as serde_json indents the same value, whatever its strings hold.
    #[test]
    fn compact_json_is_indented_as_serde_json_indents_it() {
        let values = [
            json!({}),
            json!([]),
            json!("a \"quoted\" {[,:]} \\ back\\slash \u{1} \u{e9} \u{1f600}"),
            json!({
                "schema": "ringleader.compliance/v1",
                "devices": [
                    { "id": "web-1", "missing": [], "tags": ["a,b", "{c}", ""], "x": {} },
                    { "id": "w\"e\\b:2", "n": -1.5e10, "t": true, "f": false, "z": null },
                ],
                "nested": [[[]], [{}], [[1, 2], [3]], { "k": { "k": [null] } }],
                "key with \": colon": "value \\\"",
            }),
        ];
        for value in values {
            let compact = serde_json::to_string(&value).unwrap();
            assert_eq!(
                indent_json(&compact),
                serde_json::to_string_pretty(&value).unwrap(),
                "{compact}"
            );
        }
    }
}
