//! The commands that talk to a running daemon (`ringleader serve`): status, devices,
//! events, rollout start, and the operator actions. Exit codes are in `docs/cli.md`.

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::Value;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Exit codes of the client commands (documented in docs/cli.md).
pub mod exit {
    pub const HALTED: u8 = 3;
    pub const ABORTED: u8 = 4;
    pub const UNREACHABLE: u8 = 5;
    pub const NOT_FOUND: u8 = 6;
    pub const UNAUTHORIZED: u8 = 7;
}

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
/// Without ROLLOUT, the latest rollout.
#[derive(Debug, Args)]
pub struct DevicesArgs {
    rollout: Option<String>,
    /// Only devices missing a patch that is due (released and past its deferral), with
    /// how long it has been due.
    #[arg(long)]
    behind: bool,
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

/// A failure with its exit code.
struct Exit(u8, anyhow::Error);

impl<E: Into<anyhow::Error>> From<E> for Exit {
    fn from(e: E) -> Exit {
        Exit(1, e.into())
    }
}

fn finish(result: Result<u8, Exit>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(Exit(code, e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}

/// A connection to the daemon.
struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    fn new(server: &Server) -> Result<Client, Exit> {
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
            .timeout_global(Some(Duration::from_secs(120)))
            .user_agent(concat!("ringleader/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Client {
            base: server.server.trim_end_matches('/').to_string(),
            token,
            agent: ureq::Agent::new_with_config(config),
        })
    }

    /// Sends a request; returns the JSON answer of a 2xx, or the error with its exit
    /// code.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, Exit> {
        let url = format!("{}{path}", self.base);
        let mut builder = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(token) = &self.token {
            builder = builder.header("Authorization", format!("Bearer {token}"));
        }
        let bytes = match body {
            Some(v) => {
                builder = builder.header("Content-Type", "application/json");
                serde_json::to_vec(v)?
            }
            None => Vec::new(),
        };
        let request = builder
            .body(bytes)
            .map_err(|e| Exit(1, anyhow::anyhow!("invalid server URL {url}: {e}")))?;
        let response = self.agent.run(request).map_err(|e| {
            Exit(
                exit::UNREACHABLE,
                anyhow::anyhow!(
                    "cannot reach the ringleader daemon at {}: {e}\nstart it with `ringleader serve --data DIR`, or point --server (RINGLEADER_URL) at where it runs",
                    self.base
                ),
            )
        })?;
        let status = response.status().as_u16();
        let mut text = String::new();
        response
            .into_body()
            .into_reader()
            .take(1 << 30)
            .read_to_string(&mut text)
            .map_err(|e| {
                Exit(
                    exit::UNREACHABLE,
                    anyhow::anyhow!("the daemon's answer was cut off: {e}"),
                )
            })?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if (200..300).contains(&status) {
            return Ok(value);
        }
        let message = value
            .get("error")
            .and_then(Value::as_str)
            .map_or_else(|| value.to_string(), str::to_string);
        let code = match status {
            401 => exit::UNAUTHORIZED,
            404 => exit::NOT_FOUND,
            _ => 1,
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
        let list = self.call("GET", "/v1/rollouts", None)?;
        list["rollouts"]
            .as_array()
            .and_then(|r| r.last())
            .and_then(|r| r["id"].as_str())
            .map(str::to_string)
            .ok_or_else(|| {
                Exit(
                    exit::NOT_FOUND,
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

fn print_json(value: &Value) -> Result<(), Exit> {
    emit(&format!("{}\n", serde_json::to_string_pretty(value)?))
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

fn start_inner(args: StartArgs) -> Result<u8, Exit> {
    let client = Client::new(&args.server)?;
    let file = |path: &PathBuf| -> Result<Value, Exit> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read {}", path.display()))?;
        Ok(serde_json::json!({ "name": path.display().to_string(), "text": text }))
    };
    let mut body = serde_json::json!({
        "policy": file(&args.policy)?,
        "clock": if args.virtual_time { "virtual" } else { "real" },
    });
    if args.virtual_time {
        body["seed"] = args.seed.into();
    }
    if let Some(start) = &args.start {
        body["start"] = start.as_str().into();
    }
    match (&args.inventory, args.simulate) {
        (Some(path), _) => body["inventory"] = file(path)?,
        (None, Some(devices)) => {
            body["simulated"] = serde_json::json!({
                "devices": devices,
                "seed": args.seed,
                "fail_permille": args.fail_permille,
                "hang_permille": args.hang_permille,
            })
        }
        (None, None) => unreachable!("clap requires one"),
    }
    let status = client.call("POST", "/v1/rollouts", Some(&body))?;
    if args.json {
        print_json(&status)?;
    } else {
        let id = status["id"].as_str().unwrap_or("?");
        emit(&format!("{id}\n"))?;
        eprintln!(
            "started rollout {id} (policy {}); follow it with `ringleader status {id} --wait` or `ringleader events {id} --follow`",
            status["policy"].as_str().unwrap_or("?")
        );
    }
    Ok(0)
}

pub fn status(args: StatusArgs) -> ExitCode {
    finish(status_inner(args))
}

fn status_inner(args: StatusArgs) -> Result<u8, Exit> {
    let client = Client::new(&args.server)?;
    let Some(id) = &args.rollout else {
        let list = client.call("GET", "/v1/rollouts", None)?;
        if args.json {
            print_json(&list)?;
        } else {
            let rollouts = list["rollouts"].as_array().cloned().unwrap_or_default();
            let mut out = String::new();
            if rollouts.is_empty() {
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
            for r in rollouts {
                outln!(
                    out,
                    "{:<8} {:<24} {:<8} {:<18} {:<12}",
                    r["id"].as_str().unwrap_or(""),
                    r["policy"].as_str().unwrap_or(""),
                    r["clock"].as_str().unwrap_or(""),
                    r["state"].as_str().unwrap_or(""),
                    r["ring"].as_str().unwrap_or("-"),
                );
            }
            emit(&out)?;
        }
        return Ok(0);
    };
    let path = format!("/v1/rollouts/{id}");
    let mut status = client.call("GET", &path, None)?;
    if args.wait {
        while !status["ended"].as_bool().unwrap_or(false) {
            std::thread::sleep(Duration::from_millis(500));
            status = client.call("GET", &path, None)?;
        }
    }
    if args.json {
        print_json(&status)?;
    } else {
        emit(&render_status(&status))?;
    }
    if !args.wait {
        return Ok(0);
    }
    Ok(match status["state"].as_str() {
        Some("completed") => 0,
        Some("halted") => exit::HALTED,
        Some("aborted") => exit::ABORTED,
        _ => 1,
    })
}

fn render_status(s: &Value) -> String {
    let mut out = String::new();
    let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
    outln!(
        out,
        "rollout {}  policy {}  clock {}  state {}{}{}",
        text(&s["id"]),
        text(&s["policy"]),
        text(&s["clock"]),
        text(&s["state"]),
        s["ring"]
            .as_str()
            .map(|r| format!(" (ring {r})"))
            .unwrap_or_default(),
        if s["paused"].as_bool().unwrap_or(false) {
            ", paused"
        } else {
            ""
        },
    );
    if let Some(t) = s["time"].as_str() {
        outln!(out, "time    {t}");
    }
    if let Some(w) = s["waiting"].as_object() {
        let ring = w.get("ring").and_then(Value::as_str).unwrap_or("");
        let until = w
            .get("until")
            .and_then(Value::as_str)
            .map(|u| format!(" until {u}"))
            .unwrap_or_default();
        let what = match w.get("for").and_then(Value::as_str) {
            Some("approval") => format!(
                "an operator's approval of ring {ring} (`ringleader approve {}`)",
                text(&s["id"])
            ),
            Some("soak") => format!("ring {ring}'s soak{until}"),
            Some("resume") => format!(
                "an operator to resume it (`ringleader resume {}`)",
                text(&s["id"])
            ),
            Some("window") => format!("a maintenance window, freeze or deferral in ring {ring}"),
            _ => "-".into(),
        };
        outln!(out, "waiting for {what}");
    }
    if let Some(reason) = s["halt_reason"].as_str() {
        outln!(out, "halted because {reason}");
    }
    if let Some(error) = s["error"].as_str() {
        outln!(out, "failed: {error}");
    }
    outln!(
        out,
        "{:<12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>12}",
        "RING",
        "DEVICES",
        "DONE",
        "FAILED",
        "ACTIVE",
        "PENDING",
        "ROLLED BACK"
    );
    for r in s["rings"].as_array().cloned().unwrap_or_default() {
        let n = |k: &str| r[k].as_u64().unwrap_or(0);
        outln!(
            out,
            "{:<12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>12}",
            r["name"].as_str().unwrap_or(""),
            n("devices"),
            n("done"),
            n("failed"),
            n("active") + n("rolling_back"),
            n("pending"),
            n("rolled_back"),
        );
    }
    out
}

pub fn devices(args: DevicesArgs) -> ExitCode {
    finish(devices_inner(args))
}

fn devices_inner(args: DevicesArgs) -> Result<u8, Exit> {
    let client = Client::new(&args.server)?;
    let id = client.rollout_or_latest(&args.rollout)?;
    let path = format!(
        "/v1/rollouts/{id}/devices{}",
        if args.behind { "?behind=true" } else { "" }
    );
    let answer = client.call("GET", &path, None)?;
    if args.json {
        print_json(&answer)?;
        return Ok(0);
    }
    let devices = answer["devices"].as_array().cloned().unwrap_or_default();
    // Each device's installed version per component: `bios 2.19.1, linux 6.1.115`.
    let versions: Vec<String> = devices
        .iter()
        .map(|d| {
            d["versions"]
                .as_object()
                .map(|v| {
                    v.iter()
                        .map(|(component, version)| {
                            format!("{component} {}", version.as_str().unwrap_or("?"))
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default()
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
        let behind = d["behind_seconds"]
            .as_i64()
            .map_or_else(|| "-".into(), short_duration);
        let pending: Vec<&str> = d["pending"]
            .as_array()
            .map(|p| p.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        outln!(
            out,
            "{:<24} {:<10} {:<16} {:>8}  {:<width$}  {}",
            d["id"].as_str().unwrap_or(""),
            d["ring"].as_str().unwrap_or(""),
            d["state"].as_str().unwrap_or(""),
            behind,
            versions,
            pending.join(", ")
        );
    }
    emit(&out)?;
    eprintln!("{}", crate::count(devices.len(), "device", "devices"));
    Ok(0)
}

pub fn events(args: EventsArgs) -> ExitCode {
    finish(events_inner(args))
}

fn events_inner(args: EventsArgs) -> Result<u8, Exit> {
    let client = Client::new(&args.server)?;
    let id = client.rollout_or_latest(&args.rollout)?;
    let mut cursor = args.since;
    // The stall last told (on stderr, once each time the rollout stalls).
    let mut stall: Option<String> = None;
    loop {
        let mut out: Vec<u8> = Vec::new();
        let wait = if args.follow { 30 } else { 0 };
        let answer = client.call(
            "GET",
            &format!("/v1/rollouts/{id}/events?since={cursor}&wait={wait}"),
            None,
        )?;
        for event in answer["events"].as_array().cloned().unwrap_or_default() {
            if args.json {
                serde_json::to_writer(&mut out, &event)?;
                writeln!(out)?;
            } else {
                let field = |k: &str| {
                    event[k]
                        .as_str()
                        .map(|v| format!("  {k} {v}"))
                        .unwrap_or_default()
                };
                // A step's component and versions: `  openssl 3.0.11-1 -> 3.0.15-1`.
                let versions = match (event["component"].as_str(), event["to"].as_str()) {
                    (Some(component), Some(to)) => format!(
                        "  {component} {} -> {to}",
                        event["from"].as_str().unwrap_or("(none)")
                    ),
                    _ => String::new(),
                };
                writeln!(
                    out,
                    "{:>6}  {}  {:<20}{}{}{}{}{}{}{}",
                    event["cursor"],
                    event["at"].as_str().unwrap_or(""),
                    event["type"].as_str().unwrap_or(""),
                    field("ring"),
                    field("device"),
                    field("patch"),
                    versions,
                    field("reason"),
                    field("by"),
                    field("action"),
                )?;
            }
        }
        let mut stdout = std::io::stdout().lock();
        match stdout.write_all(&out).and_then(|()| stdout.flush()) {
            // The reader went away (`| head`): done.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(0),
            result => result?,
        }
        let now_stalled = answer["stalled"].as_str().map(str::to_string);
        if now_stalled.is_some() && now_stalled != stall {
            eprintln!(
                "rollout {id} stalls: {}; nothing is dispatched until the daemon can write its log again, and it goes on by itself then",
                now_stalled.as_deref().unwrap_or_default()
            );
        }
        stall = now_stalled;
        let next = answer["next"].as_u64().unwrap_or(cursor);
        let ended = answer["ended"].as_bool().unwrap_or(false);
        if next == cursor && (!args.follow || ended) {
            return Ok(0);
        }
        cursor = next;
    }
}

/// `approve`, `pause`, `resume`, `abort` or `rollback`.
pub fn act(action: &str, args: ActionArgs) -> ExitCode {
    finish(act_inner(action, args))
}

fn act_inner(action: &str, args: ActionArgs) -> Result<u8, Exit> {
    let client = Client::new(&args.server)?;
    let answer = client.call(
        "POST",
        &format!("/v1/rollouts/{}/{action}", args.rollout),
        Some(&serde_json::json!({})),
    )?;
    if args.json {
        print_json(&answer)?;
    } else {
        eprintln!("{action}: sent to rollout {}", args.rollout);
    }
    Ok(0)
}
