//! `ringleader schedule ...`: standing schedules (docs/schedules.md), read from a
//! schedules file, each run computed in its zone through its policy's freezes.

use clap::{Args, Subcommand};
use jiff::Timestamp;
use ringleader_api::Schema;
use ringleader_api::exit::ExitStatus;
use ringleader_api::schedule::{
    ApprovalRuleV1, ApprovalV1, OnFreezeV1, PatchFilterV1, RunOutcomeV1, ScheduleRunV1,
    ScheduleRunsV1, ScheduleV1, SchedulesV1,
};
use ringleader_planner::policy::{Freeze, Policy, kind_name, severity_name};
use ringleader_planner::standing::{OnFreeze, Run, RunOutcome, Schedule, Schedules, Target};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Every schedule of the file: when (recurrence and zone), which devices (an
    /// inventory file, or the fleet registry's by tags), which sources, policy, patch
    /// filters, what a run in a freeze does, and its next run.
    ///
    /// The file and each schedule's policy are validated: every problem is printed,
    /// each at its file:line:col (a recurrence's at the word at fault). Exit 1 when
    /// one has errors.
    List(FileArgs),
    /// The next runs of every schedule, in time order: each run's time in the
    /// schedule's zone, and the runs a freeze of its policy moved (to the first day
    /// after it) or skipped, with the freeze.
    Next(NextArgs),
    /// The runs the daemon made of the schedules it runs (`serve --schedules FILE`),
    /// newest first: when, which schedule, expedited for which patch, the outcome
    /// (started and its rollout, nothing-to-do and why, failed and why, skipped by a
    /// freeze), the patches, those still waiting for approval; and each schedule's
    /// next run.
    Runs(crate::client::ScheduleRunsArgs),
}

#[derive(Debug, Args)]
pub struct FileArgs {
    /// The schedules file.
    #[arg(long, default_value = "schedules.toml")]
    schedules: PathBuf,
    /// Print `ringleader.schedules/v1` (docs/schemas/schedules.v1.json).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct NextArgs {
    /// The schedules file.
    #[arg(long, default_value = "schedules.toml")]
    schedules: PathBuf,
    /// How many runs to show (those a freeze skipped are shown besides).
    #[arg(long, default_value_t = 10)]
    count: usize,
    /// Runs after this instant (RFC 3339, e.g. 2026-12-01T00:00:00Z); default: now.
    #[arg(long)]
    after: Option<Timestamp>,
    /// Print `ringleader.schedule-runs/v1` (docs/schemas/schedule-runs.v1.json).
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: ScheduleCommand) -> ExitCode {
    let result = match cmd {
        ScheduleCommand::List(args) => list(args),
        ScheduleCommand::Next(args) => next(args),
        ScheduleCommand::Runs(args) => return crate::client::schedule_runs(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("error: {message}");
            }
            ExitCode::from(ExitStatus::Failure)
        }
    }
}

/// The file's schedules, each with its policy's freezes; every problem printed.
fn load(path: &std::path::Path) -> Result<Vec<(Schedule, Vec<Freeze>)>, String> {
    let (schedules, diags) = Schedules::check(path)
        .map_err(|e| format!("failed to read the schedules file {}: {e}", path.display()))?;
    for d in &diags.list {
        eprintln!("{}", diags.format(d));
    }
    let Some(schedules) = schedules else {
        return Err(String::new());
    };
    let mut out = Vec::new();
    let mut ok = true;
    for s in schedules.schedules {
        match Policy::check(&s.policy) {
            Err(e) => {
                ok = false;
                eprintln!("error: schedule `{}`: {e}", s.name);
            }
            Ok((policy, diags)) => {
                for d in &diags.list {
                    eprintln!("{}", diags.format(d));
                }
                match policy {
                    Some(p) => out.push((s, p.freezes)),
                    None => ok = false,
                }
            }
        }
    }
    if ok { Ok(out) } else { Err(String::new()) }
}

fn run_v1(run: &Run) -> ScheduleRunV1 {
    let (outcome, freeze) = match &run.outcome {
        RunOutcome::Runs => (RunOutcomeV1::Runs, None),
        RunOutcome::Moved { freeze, .. } => (RunOutcomeV1::Moved, Some(freeze.clone())),
        RunOutcome::Skipped { freeze } => (RunOutcomeV1::Skipped, Some(freeze.clone())),
    };
    ScheduleRunV1 {
        schedule: run.schedule.clone(),
        planned: run.planned.to_string(),
        at: run.at().map(ToString::to_string),
        outcome,
        freeze,
    }
}

fn print_json(doc: &impl serde::Serialize) -> Result<(), String> {
    let text = serde_json::to_string_pretty(doc).map_err(|e| e.to_string())?;
    crate::write_stdout(&format!("{text}\n")).map_err(|e| format!("failed to write: {e}"))
}

fn list(args: FileArgs) -> Result<(), String> {
    let schedules = load(&args.schedules)?;
    let now = Timestamp::now();
    let doc = SchedulesV1 {
        schema: Schema::new(),
        file: args.schedules.display().to_string(),
        schedules: schedules
            .iter()
            .map(|(s, freezes)| ScheduleV1 {
                name: s.name.clone(),
                when: s.when.text.clone(),
                zone: s.when.zone_name.clone(),
                inventory: match &s.target {
                    Target::Inventory(file) => file.display().to_string(),
                    Target::Tags(_) => String::new(),
                },
                tags: match &s.target {
                    Target::Inventory(_) => Vec::new(),
                    Target::Tags(tags) => tags.clone(),
                },
                sources: s.sources.clone(),
                policy: s.policy.display().to_string(),
                on_freeze: match s.on_freeze {
                    OnFreeze::Move => OnFreezeV1::Move,
                    OnFreeze::Skip => OnFreezeV1::Skip,
                },
                patches: PatchFilterV1 {
                    kinds: s
                        .patches
                        .kinds
                        .iter()
                        .map(|k| kind_name(*k).into())
                        .collect(),
                    severities: s
                        .patches
                        .severities
                        .iter()
                        .map(|v| severity_name(*v).into())
                        .collect(),
                    cves: s.patches.cves.clone(),
                    include: s.patches.include.clone(),
                    exclude: s.patches.exclude.clone(),
                },
                approval: ApprovalV1 {
                    rules: s
                        .approval
                        .rules
                        .iter()
                        .map(|r| ApprovalRuleV1 {
                            kinds: r.kinds.iter().map(|k| kind_name(*k).into()).collect(),
                            severities: r
                                .severities
                                .iter()
                                .map(|v| severity_name(*v).into())
                                .collect(),
                            after_days: r.after_days,
                        })
                        .collect(),
                    approved: s.approval.approved.clone(),
                },
                next: s
                    .runs(freezes, now, 1)
                    .iter()
                    .find_map(|r| r.at().map(ToString::to_string)),
            })
            .collect(),
    };
    if args.json {
        return print_json(&doc);
    }
    let mut out = String::new();
    for s in &doc.schedules {
        let filter = &s.patches;
        let mut patches = Vec::new();
        for (what, list) in [
            ("kinds", &filter.kinds),
            ("severities", &filter.severities),
            ("cves", &filter.cves),
            ("only", &filter.include),
            ("never", &filter.exclude),
        ] {
            if !list.is_empty() {
                patches.push(format!("{what} {}", list.join(", ")));
            }
        }
        let mut approval: Vec<String> = s
            .approval
            .rules
            .iter()
            .map(|r| {
                let mut what: Vec<String> = r.severities.clone();
                what.extend(r.kinds.iter().cloned());
                let what = if what.is_empty() {
                    "any patch".to_string()
                } else {
                    what.join(" ")
                };
                match r.after_days {
                    0 => format!("{what} on release"),
                    1 => format!("{what} 1 day after release"),
                    n => format!("{what} {n} days after release"),
                }
            })
            .collect();
        if !s.approval.approved.is_empty() {
            approval.insert(0, format!("{} at once", s.approval.approved.join(", ")));
            if s.approval.rules.is_empty() {
                approval.push("others on release".into());
            }
        }
        if !s.approval.rules.is_empty() {
            approval.push("others never".into());
        }
        out.push_str(&format!(
            "{}\n  when:      {}\n  devices:   {}\n  sources:   {}\n  policy:    {}\n  patches:   {}\n  approval:  {}\n  freezes:   {} a run\n  next:      {}\n",
            s.name,
            s.when,
            if s.tags.is_empty() {
                s.inventory.clone()
            } else {
                format!("the fleet registry's tagged {}", s.tags.join(" or "))
            },
            if s.sources.is_empty() {
                "every source of the daemon".to_string()
            } else {
                s.sources.join(", ")
            },
            s.policy,
            if patches.is_empty() {
                "every applicable one".to_string()
            } else {
                patches.join("; ")
            },
            if approval.is_empty() {
                "on release".to_string()
            } else {
                approval.join("; ")
            },
            match s.on_freeze {
                OnFreezeV1::Move => "move",
                OnFreezeV1::Skip => "skip",
            },
            s.next.as_deref().unwrap_or("none within 100 years"),
        ));
    }
    crate::write_stdout(&out).map_err(|e| format!("failed to write: {e}"))
}

fn next(args: NextArgs) -> Result<(), String> {
    let schedules = load(&args.schedules)?;
    let after = args.after.unwrap_or_else(|| {
        Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_default()
    });
    // Each schedule's next `count`, merged in time order, cut at the `count`th run.
    let mut runs: Vec<Run> = schedules
        .iter()
        .flat_map(|(s, freezes)| s.runs(freezes, after, args.count))
        .collect();
    runs.sort_by_key(|r| r.at().unwrap_or(&r.planned).timestamp());
    let mut kept = Vec::new();
    let mut running = 0;
    for run in runs {
        if running == args.count {
            break;
        }
        if run.at().is_some() {
            running += 1;
        }
        kept.push(run);
    }
    let doc = ScheduleRunsV1 {
        schema: Schema::new(),
        after,
        runs: kept.iter().map(run_v1).collect(),
    };
    if args.json {
        return print_json(&doc);
    }
    let mut out = String::new();
    for run in &doc.runs {
        let line = match run.outcome {
            RunOutcomeV1::Runs => format!("{}  {}", run.planned, run.schedule),
            RunOutcomeV1::Moved => format!(
                "{}  {}  (moved from {}: {})",
                run.at.as_deref().unwrap_or_default(),
                run.schedule,
                run.planned,
                run.freeze.as_deref().unwrap_or_default()
            ),
            RunOutcomeV1::Skipped => format!(
                "{}  {}  skipped: {}",
                run.planned,
                run.schedule,
                run.freeze.as_deref().unwrap_or_default()
            ),
        };
        out.push_str(&line);
        out.push('\n');
    }
    if doc.runs.is_empty() {
        out.push_str("no runs within 100 years\n");
    }
    crate::write_stdout(&out).map_err(|e| format!("failed to write: {e}"))
}
