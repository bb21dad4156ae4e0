//! `ringleader demo`: a whole staged rollout over a simulated fleet, in virtual time.

use anyhow::Context;
use clap::Args;
use jiff::Timestamp;
use ringleader_api::Schema;
use ringleader_api::demo::{DemoV1, FinalState, OutcomesV1, RingV1};
use ringleader_api::exit::ExitStatus;
use ringleader_daemon::session::{Clock, Fleet, Inputs, Run, Session};
use ringleader_engine::core::{Core, JobId, JobState, Phase};
use ringleader_engine::store::{Record, Status, Store, StoredEvent};
use ringleader_planner::policy::{Policy, PolicyError};
use ringleader_runtime::OperatorConfig;
use ringleader_runtime::services::MemoryKv;
use ringleader_runtime::sim_device::SimDevices;
use sha2::{Digest, Sha256};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod continuous;

/// The bundled example policy the demo rolls out with.
const POLICY: &str = include_str!("../../../rollout-policies/monthly-os.toml");

/// Roll patches out to a simulated fleet, ring by ring, in virtual time.
///
/// Generates a fleet of simulated servers and workstations at four sites in four time
/// zones, asks the built-in simulated vendor for its patches (firmware with a
/// prerequisite chain, OS packages, a critical security fix that is expedited), plans
/// them with the bundled `monthly-os` policy, and runs the rollout: batches, soaks,
/// maintenance windows, approvals (given by a simulated operator after 4 hours),
/// failure budgets, halts and rollbacks. Weeks of virtual time pass in seconds; every
/// install really runs through the sandboxed installer plugin.
///
/// The outcome is fixed by --seed: the same seed gives the same per-device outcomes.
///
/// Exit status: 0 when every ring completed; 3 when the rollout halted; 1 on error.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of simulated devices.
    #[arg(long, default_value_t = 2_000)]
    devices: usize,
    /// Seed of the simulated fleet's behaviour.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Installs that fail, per mille (one server model adds more, and a NIC firmware
    /// fails often on it). Try 60 to see the canary halt and roll back.
    #[arg(long, default_value_t = 2)]
    fail_permille: u64,
    /// Devices that never report back after an install, per mille.
    #[arg(long, default_value_t = 1)]
    hang_permille: u64,
    /// Use this policy instead of the bundled `monthly-os`.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Virtual time the rollout starts at (RFC 3339).
    #[arg(long, default_value = "2026-11-02T08:00:00Z", value_parser = crate::plan_cmd::schedulable_time)]
    start: Timestamp,
    /// Keep the rollout's durable state here (`DIR/engine`: the event log;
    /// `DIR/devices`: the simulated devices' own state). An unfinished demo in DIR is
    /// resumed, not restarted: killed at any moment, run it again with the same
    /// arguments and it ends as an uninterrupted run would.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Print one JSON summary (schema `ringleader.demo/v1`) instead of text.
    #[arg(long)]
    json: bool,
    /// Run a standing schedule over a simulated month instead of one rollout: the
    /// vendors keep publishing (a critical fix in mid-month), the sources are polled,
    /// the weekly schedule's approval rules decide what each run takes, a critical fix
    /// is expedited within 15 minutes, and the end reports time to patch per severity
    /// (`--json`: `ringleader.demo-continuous/v1`). With --data, the directory must be
    /// empty: a continuous demo is not resumed.
    #[arg(long)]
    continuous: bool,
    /// With --continuous: how many days of virtual time.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=366), requires = "continuous")]
    days: u32,
    /// With --continuous: how often the sources are polled (`1h`, `30m`).
    #[arg(long, default_value = "1h", value_parser = poll_interval, requires = "continuous")]
    poll: Duration,
    /// Report progress for scripts: a line on stderr whenever virtual time moves,
    /// `progress log=RECORDS virtual=TIME phase=PHASE` (RECORDS: entries in the
    /// rollout log so far, with --data).
    #[arg(long)]
    progress_lines: bool,
}

pub async fn run(args: DemoArgs) -> ExitCode {
    match demo(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(ExitStatus::Failure)
        }
    }
}

/// A poll interval: 1 minute to 1 day.
fn poll_interval(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration: {e}; write e.g. `1h` or `30m`"))?;
    if d < Duration::from_secs(60) || d > Duration::from_secs(86_400) {
        return Err(format!("`{text}` is outside 1m to 24h"));
    }
    Ok(d)
}

async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if args.continuous {
        if args.progress_lines {
            anyhow::bail!(
                "--progress-lines is for a single rollout; --continuous prints each run as it happens"
            );
        }
        return continuous::run(&args).await;
    }
    let real_start = Instant::now();
    let inputs = inputs_of(&args)?;

    // The simulated devices keep their own state, apart from the engine's log; the
    // installer reaches them through `exec` over the `sim` transport.
    if let Some(dir) = &args.data {
        ringleader_daemon::data_dir::own(dir)?;
    }
    let devices: Arc<SimDevices> = match &args.data {
        Some(dir) => Arc::new(SimDevices::open(&dir.join("devices")).map_err(|e| {
            anyhow::anyhow!(
                "failed to open the simulated devices' state in {}: {e}",
                dir.display()
            )
        })?),
        None => Arc::new(SimDevices::in_memory()),
    };
    let store = match &args.data {
        Some(dir) => {
            let store = Store::open(&dir.join("engine"))?;
            resume_check(&store, &inputs, &args, dir)?;
            Some(store)
        }
        None => None,
    };
    let session = Session::new(
        ringleader_daemon::plugins::Chosen::simulated(),
        &OperatorConfig::default(),
        devices.clone(),
        Arc::new(MemoryKv::default()),
    )?;
    // The store's only other handle is for the progress lines: once the run returns,
    // it is closed and opened again below for the whole log's counts.
    let lines = args.progress_lines.then(|| store.clone());
    let ready = session.prepare(&inputs, store).await?;
    if ready.records > 0 && !args.json {
        eprintln!(
            "resuming the demo in {}: {} log records replayed, {} steps and {} rollbacks in flight to verify first",
            args.data.as_deref().unwrap_or(Path::new(".")).display(),
            ready.records,
            ready.recovery.steps.len(),
            ready.recovery.rollbacks.len(),
        );
    }
    let policy_name = ready.policy.name.clone();

    let bars = (!args.json && !args.progress_lines && std::io::stderr().is_terminal())
        .then(|| Progress::new(&ready.core));
    let run = Run {
        auto_approve_after: Some(Duration::from_secs(4 * 3600)),
        ..Run::default()
    };
    let (core, report) = ready
        .run(run, |core, now| {
            if let Some(bars) = &bars {
                bars.update(core, now);
            }
            if let Some(store) = &lines {
                let log = store.as_ref().map_or(0, Store::committed_len);
                let phase = Status::of(core, now, log).phase;
                eprintln!("progress log={log} virtual={now} phase={phase}");
            }
        })
        .await;
    if let Some(bars) = bars {
        bars.finish(&core);
    }
    if let Some(fault) = &report.stalled {
        // Nothing was dispatched after the failed write; the log holds everything
        // before it, so the same command resumes once the disk takes writes again.
        anyhow::bail!(
            "the demo stopped: {fault}\nnothing was dispatched after that; free space (or fix the disk) under {} and run the same command again to resume",
            args.data.as_deref().unwrap_or(Path::new(".")).display()
        );
    }

    let mut summary = summary_of(
        &policy_name,
        &args,
        &core,
        &report,
        devices.total("duplicates")?,
        real_start.elapsed(),
    );
    // A resumed run reports the whole rollout, from its log, not only this process.
    summary.virtual_start = args.start;
    summary.virtual_duration_seconds = report.finished.as_second() - args.start.as_second();
    if let Some(dir) = &args.data {
        let store = Store::open(&dir.join("engine"))?;
        let (mut installs, mut rollbacks, mut approvals) = (0, 0, 0);
        store.replay(|record| match record {
            Record::Dispatched { .. } => installs += 1,
            Record::RollbackDispatched { .. } => rollbacks += 1,
            Record::Event {
                event: StoredEvent::Approve,
                ..
            } => approvals += 1,
            _ => {}
        })?;
        summary.install_calls = installs;
        summary.rollback_calls = rollbacks;
        summary.approvals = approvals;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary);
    }
    Ok(ExitCode::from(match summary.final_state {
        FinalState::Completed => ExitStatus::Success,
        FinalState::Halted => ExitStatus::Halted,
        FinalState::Aborted | FinalState::Stalled => ExitStatus::Failure,
    }))
}

/// What the demo rolls out: the policy (checked here, so that its problems are said as
/// for every command), the simulated fleet, virtual time from `--start`.
fn inputs_of(args: &DemoArgs) -> anyhow::Result<Inputs> {
    let (policy_name, policy) = policy_of(args)?;
    Ok(Inputs {
        policy_name,
        policy,
        fleet: Fleet::Simulated {
            devices: args.devices,
            seed: args.seed,
            fail_permille: args.fail_permille,
            hang_permille: args.hang_permille,
        },
        clock: Clock::Virtual {
            seed: args.seed,
            hang_permille: args.hang_permille,
        },
        start: args.start,
        observed: Default::default(),
        patches: None,
    })
}

/// The policy's name and text: `--policy`, checked (its problems said as for every
/// command), else the bundled `monthly-os`.
fn policy_of(args: &DemoArgs) -> anyhow::Result<(String, String)> {
    Ok(match &args.policy {
        Some(path) => {
            let text = ringleader_diag::read_file("policy", path).map_err(policy_error)?;
            let (policy, diags) = Policy::parse(path, &text);
            if policy.is_none() || diags.has_errors() {
                return Err(policy_error(PolicyError::Invalid(diags)));
            }
            (path.display().to_string(), text)
        }
        None => {
            let name = "bundled:monthly-os.toml";
            let (policy, diags) = Policy::parse(Path::new(name), POLICY);
            policy.with_context(|| format!("the bundled policy is invalid:\n{diags}"))?;
            (name.to_string(), POLICY.to_string())
        }
    })
}

/// A demo in a data directory resumes only with the inputs it was started from; a new
/// one records them.
fn resume_check(store: &Store, inputs: &Inputs, args: &DemoArgs, dir: &Path) -> anyhow::Result<()> {
    let previous = match Inputs::of_store(store) {
        Ok(None) => return inputs.record(store),
        Ok(Some(previous)) if previous == *inputs => return Ok(()),
        Ok(Some(previous)) => arguments_of(&previous),
        // A demo started before `ringleader.inputs/v1` recorded its arguments as text.
        Err(_) => match store.inputs()? {
            Some(text) if text == legacy_arguments(args) => return Ok(()),
            text => text.unwrap_or_default(),
        },
    };
    anyhow::bail!(
        "{} holds a demo started with other arguments ({previous}); use another --data directory or the same arguments",
        dir.display()
    )
}

/// A demo's inputs as its arguments, for saying which ones a data directory holds.
fn arguments_of(inputs: &Inputs) -> String {
    let fleet = match &inputs.fleet {
        Fleet::Simulated {
            devices,
            seed,
            fail_permille,
            hang_permille,
        } => format!(
            "devices={devices} seed={seed} fail-permille={fail_permille} hang-permille={hang_permille}"
        ),
        Fleet::Inventory { name, .. } => format!("inventory={name}"),
    };
    format!(
        "{fleet} policy={} start={}",
        ringleader_diag::escape(&inputs.policy_name),
        inputs.start
    )
}

/// What a demo's `meta/inputs` held before `ringleader.inputs/v1`: its arguments as
/// text. Such a demo still resumes with the same arguments.
fn legacy_arguments(args: &DemoArgs) -> String {
    let policy = args
        .policy
        .as_ref()
        .map_or("bundled:monthly-os".to_string(), |p| {
            p.display().to_string()
        });
    format!(
        "devices={} seed={} fail-permille={} hang-permille={} policy={} start={}",
        args.devices, args.seed, args.fail_permille, args.hang_permille, policy, args.start
    )
}

fn policy_error(e: PolicyError) -> anyhow::Error {
    match e {
        PolicyError::Invalid(d) => anyhow::anyhow!("the policy is not valid:\n{d}"),
        e => e.into(),
    }
}

/// Live progress per ring, on a terminal.
struct Progress {
    multi: indicatif::MultiProgress,
    rings: Vec<indicatif::ProgressBar>,
}

impl Progress {
    fn new(core: &Core) -> Progress {
        let multi = indicatif::MultiProgress::new();
        let style = indicatif::ProgressStyle::with_template(
            "{prefix:>8} [{bar:40}] {pos:>6}/{len:6} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
        let rings = (0..core.ring_count() as u16)
            .map(|r| {
                let bar = multi.add(indicatif::ProgressBar::new(core.ring_len(r) as u64));
                bar.set_style(style.clone());
                bar.set_prefix(core.spec().rings[usize::from(r)].name.clone());
                bar
            })
            .collect();
        Progress { multi, rings }
    }

    fn update(&self, core: &Core, now: Timestamp) {
        for (r, bar) in self.rings.iter().enumerate() {
            let c = core.counts(r as u16);
            bar.set_length(core.ring_len(r as u16) as u64);
            bar.set_position((c.done + c.failed + c.rolled_back + c.rollback_failed) as u64);
            bar.set_message(format!(
                "failed {} rolled back {} | {}",
                c.failed, c.rolled_back, now
            ));
        }
    }

    fn finish(self, core: &Core) {
        self.update(core, Timestamp::UNIX_EPOCH);
        for bar in &self.rings {
            bar.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}

/// The demo's summary, `ringleader.demo/v1`.
fn summary_of(
    policy: &str,
    args: &DemoArgs,
    core: &Core,
    report: &ringleader_engine::executor::RunReport,
    duplicate_installs: u64,
    real: Duration,
) -> DemoV1 {
    let mut outcomes = OutcomesV1::default();
    let rings = (0..core.ring_count() as u16)
        .map(|r| {
            let c = core.counts(r);
            outcomes.done += c.done;
            outcomes.failed += c.failed;
            outcomes.rolled_back += c.rolled_back;
            outcomes.rollback_failed += c.rollback_failed;
            outcomes.not_started += c.pending + c.active + c.rolling_back;
            RingV1 {
                name: core.spec().rings[usize::from(r)].name.clone(),
                devices: core.ring_len(r),
                done: c.done,
                failed: c.failed,
                rolled_back: c.rolled_back,
                rollback_failed: c.rollback_failed,
                not_started: c.pending + c.active + c.rolling_back,
                failures: core.failures(r),
                reboots: core.reboots(r),
                reboot_pending: c.reboot_pending,
            }
        })
        .collect();
    let mut digest = Sha256::new();
    for r in 0..core.ring_count() as u16 {
        for index in 0..core.ring_len(r) as u32 {
            let job = JobId { ring: r, index };
            if let (Some(spec), Some(state)) = (core.job_spec(job), core.job(job)) {
                let outcome = match state {
                    JobState::Done => "done",
                    JobState::Failed { .. } => "failed",
                    JobState::RolledBack => "rolled-back",
                    JobState::RollbackFailed { .. } => "rollback-failed",
                    _ => "not-started",
                };
                digest.update(format!("{}={outcome}\n", spec.device));
            }
        }
    }
    DemoV1 {
        schema: Schema::new(),
        outcomes_digest: hex::encode(digest.finalize()),
        policy: policy.to_string(),
        devices: args.devices,
        seed: args.seed,
        final_state: match &report.phase {
            Phase::Completed => FinalState::Completed,
            Phase::Halted { .. } => FinalState::Halted,
            Phase::Aborted => FinalState::Aborted,
            _ => FinalState::Stalled,
        },
        halt_reason: report.halt_reason.clone(),
        rings,
        outcomes,
        install_calls: report.install_calls,
        rollback_calls: report.rollback_calls,
        approvals: report.approvals,
        duplicate_installs,
        virtual_start: report.started,
        virtual_end: report.finished,
        virtual_duration_seconds: report.finished.as_second() - report.started.as_second(),
        real_duration_ms: real.as_millis(),
        plugin_call_ms: report.plugin_time.as_millis(),
    }
}

fn print_summary(s: &DemoV1) {
    println!(
        "ringleader demo: policy `{}`, {}, seed {}",
        s.policy,
        crate::count(s.devices, "simulated device", "simulated devices"),
        s.seed
    );
    println!();
    println!(
        "{:<10} {:>8} {:>8} {:>8} {:>12} {:>16} {:>12}   {:>8}",
        "ring",
        "devices",
        "done",
        "failed",
        "rolled back",
        "rollback failed",
        "not started",
        "failures"
    );
    for r in &s.rings {
        println!(
            "{:<10} {:>8} {:>8} {:>8} {:>12} {:>16} {:>12}   {:>8}",
            r.name,
            r.devices,
            r.done,
            r.failed,
            r.rolled_back,
            r.rollback_failed,
            r.not_started,
            r.failures
        );
    }
    println!(
        "done to not started: each device once, by its state at the end; failures: devices whose install failed, as the failure budget counts them, rolled back since or not"
    );
    println!();
    let virtual_days = s.virtual_duration_seconds as f64 / 86_400.0;
    println!(
        "{}: {:.1} days of virtual time ({} to {}) in {:.1} s real time",
        match s.final_state {
            FinalState::Completed => "completed every ring",
            FinalState::Halted => "HALTED",
            other => other.as_str(),
        },
        virtual_days,
        s.virtual_start,
        s.virtual_end,
        s.real_duration_ms as f64 / 1000.0
    );
    if let Some(reason) = &s.halt_reason {
        println!("halted because {reason}");
        // The reason counts failures when the ring halted; the rollback moves failed
        // devices (the policy's `on_halt.failed_devices`) out of `failed`.
        for r in s.rings.iter().filter(|r| r.failures > r.failed) {
            let back = r.failures - r.failed;
            println!(
                "  ring {}: {} {} failed, of which {back} {} rolled back with the ring's other devices (the table counts {} under rolled back or rollback failed)",
                r.name,
                r.failures,
                if r.failures == 1 { "device" } else { "devices" },
                if back == 1 { "was" } else { "were" },
                if back == 1 { "it" } else { "them" },
            );
        }
    }
    let n = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    println!(
        "{}, {}, {} by the simulated operator, {}",
        crate::count(n(s.install_calls), "install call", "install calls"),
        crate::count(n(s.rollback_calls), "rollback call", "rollback calls"),
        crate::count(n(s.approvals), "approval", "approvals"),
        crate::count(
            n(s.duplicate_installs),
            "duplicate install",
            "duplicate installs"
        )
    );
    println!(
        "real time: {:.1} s in installer plugin calls, {:.1} s in the engine",
        s.plugin_call_ms as f64 / 1000.0,
        s.real_duration_ms.saturating_sub(s.plugin_call_ms) as f64 / 1000.0
    );
}
