//! `ringleader demo --continuous`: a standing schedule at work over a simulated month.
//!
//! The simulated vendors keep publishing: besides the built-in catalog (seen at the
//! start), a feed file read by the bundled `catalog-source` gains a patch on given
//! days, one of them a critical openssl fix in mid-month. The schedule runs weekly,
//! approves critical fixes on release, high ones after 3 days and the rest after 7,
//! and expedites what the policy's `[expedite]` covers 15 minutes after it is first
//! seen. Everything runs through `ringleader_daemon::continuous`, in one virtual time.

use super::DemoArgs;
use anyhow::Context;
use jiff::Timestamp;
use ringleader_api::Schema;
use ringleader_api::demo::{
    ContinuousRolloutV1, ContinuousRunV1, ContinuousV1, PublicationV1, RunResultV1, WaitingV1,
};
use ringleader_api::exit::ExitStatus;
use ringleader_daemon::continuous::{Happening, Report, RunOutcome, Standing, Stretch};
use ringleader_daemon::session::{Fleet, Session};
use ringleader_planner::policy::Policy;
use ringleader_planner::standing::Schedules;
use ringleader_runtime::OperatorConfig;
use ringleader_runtime::services::MemoryKv;
use ringleader_runtime::sim_device::SimDevices;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The demo's schedule.
const SCHEDULES: &str = r#"# The continuous demo's standing schedule (ringleader demo --continuous).
[[schedules]]
name = "weekly"
when = "every tuesday at 22:00 Europe/Amsterdam"
inventory = "simulated"
policy = "monthly-os.toml"
expedite_within = "15m"

[[schedules.approve]]
severities = ["critical"]
after_days = 0

[[schedules.approve]]
severities = ["high"]
after_days = 3

[[schedules.approve]]
after_days = 7
"#;

/// A patch the simulated vendors publish during the month: `day` and `hour` after the
/// start (UTC), and its catalog entry (TOML, without `released`).
struct Later {
    day: i64,
    hour: i64,
    entry: &'static str,
}

const LATER: &[Later] = &[
    Later {
        day: 2,
        hour: 1,
        entry: r#"id = "debian-sim-linux-6.1.119"
vendor = "debian-sim"
title = "linux kernel update 6.1.119"
component = "linux"
fixed-version = "6.1.119"
applies-to = ">=6.1.0, <6.1.119"
kind = "bugfix"
severity = "medium"
supersedes = ["debian-sim-linux-6.1.115"]
reboot = true"#,
    },
    Later {
        day: 8,
        hour: 6,
        entry: r#"id = "acme-bmc-7.10.31"
vendor = "acme"
title = "ACME BMC firmware 7.10.31 (follow-up to 7.10.30)"
component = "bmc-firmware"
fixed-version = "7.10.31"
applies-to = ">=7.10.30, <7.10.31"
kind = "firmware"
severity = "high""#,
    },
    Later {
        day: 15,
        hour: 8,
        entry: r#"id = "debian-sim-openssl-3.0.16"
vendor = "debian-sim"
title = "openssl security update 3.0.16"
component = "openssl"
fixed-version = "3.0.16"
applies-to = ">=3.0.0, <3.0.16"
kind = "security"
severity = "critical"
cves = ["CVE-2026-41001"]
supersedes = ["debian-sim-openssl-3.0.15"]"#,
    },
    Later {
        day: 22,
        hour: 2,
        entry: r#"id = "debian-sim-linux-6.1.121"
vendor = "debian-sim"
title = "linux kernel update 6.1.121"
component = "linux"
fixed-version = "6.1.121"
applies-to = ">=6.1.0, <6.1.121"
kind = "bugfix"
severity = "low"
supersedes = ["debian-sim-linux-6.1.119"]
reboot = true"#,
    },
];

pub(super) async fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let real_start = Instant::now();
    let days = args.days;
    let end = args
        .start
        .checked_add(jiff::SignedDuration::from_hours(24 * i64::from(days)))
        .context("--days takes the end past what a time can be")?;
    let (policy_name, policy_text) = super::policy_of(args)?;
    let (policy, _) = Policy::parse(Path::new(&policy_name), &policy_text);
    let policy = policy.context("the policy is not valid")?;
    let (schedules, diags) = Schedules::parse(Path::new("bundled:schedules.toml"), SCHEDULES);
    let schedules =
        schedules.with_context(|| format!("the bundled schedule is invalid:\n{diags}"))?;
    let standing: Vec<Standing> = schedules
        .schedules
        .into_iter()
        .map(|schedule| Standing {
            schedule,
            policy_name: policy_name.clone(),
            policy_text: policy_text.clone(),
            policy: policy.clone(),
        })
        .collect();

    // Each rollout's log, the simulated devices' state and the vendors' feed live in
    // the data directory (a temporary one by default).
    let temp;
    let dir: PathBuf = match &args.data {
        Some(dir) => {
            ringleader_daemon::data_dir::own(dir)?;
            if dir.join("rollouts").exists() {
                anyhow::bail!(
                    "{} holds a continuous demo already; a continuous demo is not resumed: use an empty --data directory",
                    dir.display()
                );
            }
            dir.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("ringleader-continuous-")
                .tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let feed = dir.join("vendor-feed.toml");
    let devices = Arc::new(
        SimDevices::open(&dir.join("devices"))
            .map_err(|e| anyhow::anyhow!("failed to open the simulated devices' state: {e}"))?,
    );
    let config_text = format!(
        "[plugins.catalog-source]\nhttp = [\"{{setting:catalog}}\"]\nsettings = {{ catalog = \"file://{}\" }}\n",
        feed.display()
    );
    let config = OperatorConfig::parse(Path::new("bundled:continuous-demo.toml"), &config_text)?;
    let chosen = ringleader_daemon::plugins::Chosen::new(
        &[
            PathBuf::from("sim-vendor-source"),
            PathBuf::from("catalog-source"),
        ],
        // No installer named: the simulated vendor's, granted as it declares.
        &[],
    )?;
    let session = Session::new(chosen, &config, devices, Arc::new(MemoryKv::default()))?;
    let stretch = Stretch {
        fleet: Fleet::Simulated {
            devices: args.devices,
            seed: args.seed,
            fail_permille: args.fail_permille,
            hang_permille: args.hang_permille,
        },
        start: args.start,
        end,
        poll_every: args.poll,
        seed: args.seed,
        hang_permille: args.hang_permille,
        auto_approve_after: Some(Duration::from_secs(4 * 3600)),
        dir: dir.join("rollouts"),
    };
    let mut published = usize::MAX;
    let start = args.start;
    let publish = |at: Timestamp| -> anyhow::Result<()> {
        let due = LATER
            .iter()
            .take_while(|l| released(start, l) <= at)
            .count();
        if due != published {
            published = due;
            write_feed(&feed, start, &LATER[..due])?;
        }
        Ok(())
    };
    let quiet = args.json;
    let progress = |at: Timestamp, h: &Happening| {
        if !quiet {
            eprintln!("{}", line(at, h));
        }
    };
    let report =
        ringleader_daemon::continuous::run(&session, &standing, &stretch, publish, progress)
            .await?;
    let doc = document(&policy.name, args, &report, real_start.elapsed());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_summary(&doc);
    }
    let failed = doc.runs.iter().any(|r| r.outcome == RunResultV1::Failed);
    Ok(ExitCode::from(if failed {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    }))
}

fn released(start: Timestamp, later: &Later) -> Timestamp {
    start
        .checked_add(jiff::SignedDuration::from_hours(
            later.day * 24 + later.hour,
        ))
        .unwrap_or(start)
}

/// The vendors' feed as it stands: written whole and renamed into place, as a web
/// server's file would be replaced.
fn write_feed(path: &Path, start: Timestamp, patches: &[Later]) -> anyhow::Result<()> {
    let mut text = String::from("# What the simulated vendors published since the demo started.\n");
    for p in patches {
        text.push_str(&format!(
            "\n[[patches]]\n{}\nreleased = \"{}\"\n",
            p.entry,
            released(start, p)
        ));
    }
    if patches.is_empty() {
        text.push_str("patches = []\n");
    }
    let tmp = path.with_extension("toml.new");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn short(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M").to_string()
}

fn line(at: Timestamp, h: &Happening) -> String {
    match h {
        Happening::Published {
            publication,
            source,
        } => format!(
            "{}  published  {} ({}, {}) by {source}{}",
            short(at),
            publication.id,
            ringleader_planner::policy::severity_name(publication.severity),
            ringleader_planner::policy::kind_name(publication.kind),
            if publication.revision > 1 {
                format!(", revision {}", publication.revision)
            } else {
                String::new()
            }
        ),
        Happening::Run {
            schedule,
            expedited,
            outcome,
            waiting,
        } => {
            let what = match expedited {
                Some(p) => format!("run {schedule} (expedited {p})"),
                None => format!("run {schedule}"),
            };
            let how = match outcome {
                RunOutcome::Started {
                    rollout,
                    patches,
                    devices,
                } => format!(
                    "rollout r{rollout}: {} patches to {devices} devices",
                    patches.len()
                ),
                RunOutcome::NothingToDo { why } => format!("nothing to do: {why}"),
                RunOutcome::Failed { error } => format!("failed: {error}"),
            };
            let waits = if waiting.is_empty() {
                String::new()
            } else {
                let list: Vec<String> = waiting
                    .iter()
                    .map(|(id, from)| format!("{id} from {}", short(*from)))
                    .collect();
                format!("; waiting for approval: {}", list.join(", "))
            };
            format!("{}  {what}: {how}{waits}", short(at))
        }
        Happening::Skipped {
            schedule, freeze, ..
        } => format!("{}  run {schedule} skipped: {freeze}", short(at)),
        Happening::PollFailed { error } => format!("{}  poll failed: {error}", short(at)),
    }
}

fn document(policy: &str, args: &DemoArgs, report: &Report, real: Duration) -> ContinuousV1 {
    let ts = |s: i64| Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH);
    let sources: std::collections::BTreeMap<(&str, i64), &str> = report
        .happenings
        .iter()
        .filter_map(|(_, h)| match h {
            Happening::Published {
                publication,
                source,
            } => Some((
                (publication.id.as_str(), publication.first_seen),
                source.as_str(),
            )),
            _ => None,
        })
        .collect();
    let mut publications: Vec<PublicationV1> = report
        .happenings
        .iter()
        .filter_map(|(_, h)| match h {
            Happening::Published { publication: p, .. } => Some(PublicationV1 {
                id: p.id.clone(),
                kind: p.kind.into(),
                severity: p.severity.into(),
                source: sources
                    .get(&(p.id.as_str(), p.first_seen))
                    .copied()
                    .unwrap_or_default()
                    .to_string(),
                released: ts(p.released),
                first_seen: ts(p.first_seen),
                revision: p.revision,
            }),
            _ => None,
        })
        .collect();
    publications.sort_by(|a, b| (a.first_seen, &a.id).cmp(&(b.first_seen, &b.id)));
    let runs = report
        .happenings
        .iter()
        .filter_map(|(at, h)| match h {
            Happening::Run {
                schedule,
                expedited,
                outcome,
                waiting,
            } => {
                let mut run = ContinuousRunV1 {
                    at: *at,
                    schedule: schedule.clone(),
                    expedited: expedited.clone(),
                    outcome: RunResultV1::Started,
                    rollout: None,
                    patches: Vec::new(),
                    devices: None,
                    waiting: waiting
                        .iter()
                        .map(|(id, from)| WaitingV1 {
                            id: id.clone(),
                            from: *from,
                        })
                        .collect(),
                    why: None,
                };
                match outcome {
                    RunOutcome::Started {
                        rollout,
                        patches,
                        devices,
                    } => {
                        run.rollout = Some(format!("r{rollout}"));
                        run.patches = patches.iter().cloned().collect();
                        run.devices = Some(*devices);
                    }
                    RunOutcome::NothingToDo { why } => {
                        run.outcome = RunResultV1::NothingToDo;
                        run.why = Some(why.clone());
                    }
                    RunOutcome::Failed { error } => {
                        run.outcome = RunResultV1::Failed;
                        run.why = Some(error.clone());
                    }
                }
                Some(run)
            }
            Happening::Skipped {
                schedule,
                planned,
                freeze,
            } => Some(ContinuousRunV1 {
                at: *planned,
                schedule: schedule.clone(),
                expedited: None,
                outcome: RunResultV1::Skipped,
                rollout: None,
                patches: Vec::new(),
                devices: None,
                waiting: Vec::new(),
                why: Some(freeze.clone()),
            }),
            _ => None,
        })
        .collect();
    let rollouts = report
        .rollouts
        .iter()
        .map(|r| ContinuousRolloutV1 {
            id: format!("r{}", r.rollout),
            schedule: r.schedule.clone(),
            expedited: r.expedited,
            started: r.started,
            finished: r.finished,
            state: ringleader_daemon::serve::api::rollout_state(r.phase),
            patches: r.patches.iter().cloned().collect(),
            devices: r.devices,
            installs: r.installs,
            failed_devices: r.failed_devices,
            rolled_back: r.rolled_back,
            halt_reason: r.halt_reason.clone(),
        })
        .collect();
    let time_to_patch = report
        .time_to_patch
        .iter()
        .map(ringleader_daemon::time_to_patch::times_v1)
        .collect();
    ContinuousV1 {
        schema: Schema::default(),
        policy: policy.to_string(),
        devices: args.devices,
        seed: args.seed,
        virtual_start: report.start,
        virtual_end: report.end,
        poll_every_seconds: args.poll.as_secs(),
        polls: report.polls,
        schedules: vec!["weekly".into()],
        publications,
        runs,
        rollouts,
        time_to_patch,
        real_duration_ms: real.as_millis(),
    }
}

fn print_summary(doc: &ContinuousV1) {
    println!(
        "\ncontinuous demo: {} simulated devices, {} to {} (seed {}), sources polled every {}s ({} polls)",
        doc.devices,
        short(doc.virtual_start),
        short(doc.virtual_end),
        doc.seed,
        doc.poll_every_seconds,
        doc.polls
    );
    println!("\nrollouts:");
    for r in &doc.rollouts {
        println!(
            "  {:<4} {}{}  started {}  {}  {} devices, {} installs, {} failed, {} rolled back  ({}){}",
            r.id,
            r.schedule,
            if r.expedited { " (expedited)" } else { "" },
            short(r.started),
            match r.finished {
                Some(f) => format!("{} {}", r.state, short(f)),
                None => format!("{} at the end", r.state),
            },
            r.devices,
            r.installs,
            r.failed_devices,
            r.rolled_back,
            r.patches.join(", "),
            r.halt_reason
                .as_ref()
                .map_or(String::new(), |h| format!("\n       halted: {h}"))
        );
    }
    println!(
        "\ntime to patch, from first seen to installed, as of {}:",
        short(doc.virtual_end)
    );
    print!("{}", crate::client::time_to_patch_table(&doc.time_to_patch));
    println!("\n(wall time {:.1}s)", doc.real_duration_ms as f64 / 1000.0);
}
