//! `serve --schedules FILE`: the standing schedules run by the daemon in real time
//! (docs/schedules.md), with the decisions of `ringleader_planner::continuous` that
//! the simulated month (`demo --continuous`) takes in virtual time.
//!
//! - Each schedule's next run (through its policy's freezes: moved, or skipped and
//!   recorded so) is waited for on the real clock. At a run the schedule's devices are
//!   read again (its inventory file, or the fleet registry's devices with its tags, as
//!   one inventory: `registry:tags=web.json`), its sources asked (those it names, or
//!   all), the patches approved by then selected (less those a rollout under way
//!   already rolls out), its devices scanned, and, when one lacks one of them, a
//!   rollout started with that selection (`ringleader.inputs/v2`'s `patches`), by
//!   `schedule:NAME`. A run with nothing to do is recorded with the reason.
//! - A patch the source polls (`[sources] poll`) see for the first time, of a severity
//!   the schedule's policy expedites, gets its own run `expedite_within` later.
//! - Every run is recorded in `DATA/schedules/` (sled, flushed) and served by
//!   `GET /v1/schedules/runs` and `ringleader schedule runs`.
//! - Runs due while the daemon was down are not made up: the next run takes whatever is
//!   approved by then.

use super::now;
use super::rollouts::Rollouts;
use crate::continuous::{Due, Standing, next_run};
use crate::session::{Clock, Fleet, Inputs};
use jiff::Timestamp;
use ringleader_api::Schema;
use ringleader_api::demo::{ContinuousRunV1, RunResultV1, WaitingV1};
use ringleader_api::schedule::{ScheduledRunsV1, ScheduledV1};
use ringleader_planner::continuous as logic;
use ringleader_planner::policy::Policy;
use ringleader_planner::standing::{Schedules, Target};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const CACHE_BYTES: u64 = 2 * 1024 * 1024;
/// How often new publications are looked at (for expedited runs) and the clock checked.
const TICK: Duration = Duration::from_secs(1);

/// What a run reads: its inputs, what its sources report, and, for a schedule by
/// tags, the registry's devices it patches.
struct Read {
    inputs: Inputs,
    latest: Vec<ringleader_types::Patch>,
    tagged: Option<Vec<String>>,
}

/// The schedules file, read at start, and the runs recorded.
#[derive(Debug)]
pub struct Scheduler {
    file: PathBuf,
    standing: Vec<Standing>,
    db: sled::Db,
    runs: sled::Tree,
    /// Each schedule's next run, as the driver last computed it.
    next: std::sync::Mutex<Vec<Option<Timestamp>>>,
}

impl Scheduler {
    /// Reads `file` and every policy it names (every problem at once, located; a
    /// schedule's `sources` must be among the daemon's `sources`), and opens the runs
    /// in `data/schedules`.
    pub fn load(file: &Path, data: &Path, sources: &[String]) -> anyhow::Result<Scheduler> {
        let (schedules, diags) = Schedules::check_for(file, sources).map_err(|e| {
            anyhow::anyhow!("failed to read the schedules file {}: {e}", file.display())
        })?;
        let mut problems: Vec<String> = diags.errors().map(|d| diags.format(d)).collect::<Vec<_>>();
        let mut standing = Vec::new();
        for s in schedules.map(|s| s.schedules).unwrap_or_default() {
            let text = match ringleader_diag::read_file("policy", &s.policy) {
                Ok(text) => text,
                Err(e) => {
                    problems.push(format!("schedule `{}`: {e}", s.name));
                    continue;
                }
            };
            let (policy, pdiags) = Policy::parse(&s.policy, &text);
            problems.extend(pdiags.errors().map(|d| pdiags.format(d)));
            if let Some(policy) = policy {
                standing.push(Standing {
                    policy_name: s.policy.display().to_string(),
                    policy_text: text,
                    policy,
                    schedule: s,
                });
            }
        }
        if !problems.is_empty() {
            anyhow::bail!(
                "the schedules file {} cannot be run:\n{}",
                file.display(),
                problems.join("\n")
            );
        }
        let dir = data.join("schedules");
        let db = ringleader_runtime::durable::open(&dir, CACHE_BYTES)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", dir.display()))?;
        Ok(Scheduler {
            file: file.to_owned(),
            next: std::sync::Mutex::new(vec![None; standing.len()]),
            standing,
            runs: db.open_tree("runs")?,
            db,
        })
    }

    /// Runs the schedules for ever.
    pub fn spawn(self: &Arc<Self>, rollouts: Arc<Rollouts>) {
        tokio::spawn(self.clone().drive(rollouts));
    }

    /// The schedules, each with its next run, and the latest `limit` runs, newest first.
    pub fn document(&self, limit: usize) -> anyhow::Result<ScheduledRunsV1> {
        let next = self.next.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut runs = Vec::new();
        for item in self.runs.iter().rev().take(limit) {
            let (_, value) = item?;
            runs.push(serde_json::from_slice(&value)?);
        }
        Ok(ScheduledRunsV1 {
            schema: Schema::new(),
            file: self.file.display().to_string(),
            schedules: self
                .standing
                .iter()
                .zip(next)
                .map(|(s, next)| ScheduledV1 {
                    name: s.schedule.name.clone(),
                    next,
                })
                .collect(),
            runs,
        })
    }

    fn record(&self, run: &ContinuousRunV1) -> anyhow::Result<()> {
        let seq = self.db.generate_id()?;
        self.runs
            .insert(seq.to_be_bytes(), serde_json::to_vec(run)?)?;
        self.db.flush()?;
        Ok(())
    }

    async fn drive(self: Arc<Self>, rollouts: Arc<Rollouts>) {
        let mut due: BTreeSet<(Timestamp, Due)> = BTreeSet::new();
        let started = now();
        for (i, s) in self.standing.iter().enumerate() {
            due.extend(next_run(s, started, i));
        }
        // Only what is first seen from now on is expedited.
        let mut cursor = rollouts.publications_end().unwrap_or(0);
        loop {
            self.show_next(&due);
            match rollouts.publications_since(cursor, 1000) {
                Ok(new) if !new.is_empty() => {
                    cursor = new.last().map_or(cursor, |(c, _)| c + 1);
                    self.expedite(&rollouts, &new, &mut due).await;
                }
                Ok(_) => {}
                Err(e) => tracing::error!("schedules: the publications cannot be read: {e:#}"),
            }
            let at_now = now();
            while due.first().is_some_and(|(at, _)| *at <= at_now) {
                let Some((at, what)) = due.pop_first() else {
                    break;
                };
                let Some(run) = self.run(&rollouts, at, &what).await else {
                    continue;
                };
                tracing::info!(
                    "schedule {} ran: {}{}",
                    run.schedule,
                    run.outcome.as_str(),
                    run.rollout
                        .as_ref()
                        .or(run.why.as_ref())
                        .map_or(String::new(), |s| format!(" ({s})"))
                );
                if let Due::Run { schedule } | Due::Skipped { schedule, .. } = what {
                    due.extend(next_run(&self.standing[schedule], at, schedule));
                }
                // The next run shows by the time this one does.
                self.show_next(&due);
                if let Err(e) = self.record(&run) {
                    tracing::error!("schedules: a run could not be recorded: {e:#}");
                }
            }
            tokio::time::sleep(TICK).await;
        }
    }

    fn show_next(&self, due: &BTreeSet<(Timestamp, Due)>) {
        let mut next = vec![None; self.standing.len()];
        for (at, what) in due {
            if let Due::Run { schedule } = what
                && next[*schedule].is_none()
            {
                next[*schedule] = Some(*at);
            }
        }
        *self.next.lock().unwrap_or_else(|e| e.into_inner()) = next;
    }

    /// Adds an expedited run for each new patch a schedule's policy expedites.
    async fn expedite(
        &self,
        rollouts: &Rollouts,
        new: &[(u64, crate::publications::Published)],
        due: &mut BTreeSet<(Timestamp, Due)>,
    ) {
        for (i, s) in self.standing.iter().enumerate() {
            if s.policy.expedite.is_none() {
                continue;
            }
            let latest = match self.patches(rollouts, s).await {
                Ok(Some(read)) => read.latest,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(
                        "schedule {}: its sources could not be asked: {e:#}",
                        s.schedule.name
                    );
                    continue;
                }
            };
            for (_, p) in new {
                let Some(patch) = latest.iter().find(|l| l.id == p.publication.id) else {
                    continue;
                };
                if let Some(when) = logic::expedite_at(
                    &s.schedule,
                    s.policy.expedite.as_ref(),
                    &p.publication,
                    patch,
                ) {
                    let when = Timestamp::from_second(when).unwrap_or_else(|_| now());
                    due.insert((
                        when,
                        Due::Expedite {
                            schedule: i,
                            patch: patch.id.clone(),
                        },
                    ));
                }
            }
        }
    }

    /// The schedule's inputs (its devices read now: its inventory file, or the
    /// registry's devices with its tags) and its sources' patches; `None` when no
    /// device of the registry has its tags.
    async fn patches(&self, rollouts: &Rollouts, s: &Standing) -> anyhow::Result<Option<Read>> {
        let (fleet, tagged) = match &s.schedule.target {
            Target::Inventory(path) => {
                let text = ringleader_diag::read_file("inventory", path)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let name = path.display().to_string();
                (Fleet::Inventory { name, text }, None)
            }
            Target::Tags(tags) => {
                let tagged = rollouts.fleet().tagged(tags)?;
                if tagged.ids.is_empty() {
                    return Ok(None);
                }
                let fleet = Fleet::Inventory {
                    name: tagged.name,
                    text: tagged.text,
                };
                (fleet, Some(tagged.ids))
            }
        };
        let inputs = Inputs {
            policy_name: s.policy_name.clone(),
            policy: s.policy_text.clone(),
            fleet,
            clock: Clock::Real,
            start: now(),
            observed: Default::default(),
            patches: None,
        };
        let (_, inventory) = inputs.validate().map_err(anyhow::Error::msg)?;
        let sources = rollouts.session().sources_for(&inventory).await?;
        let reported = if s.schedule.sources.is_empty() {
            sources.poll().await?
        } else {
            sources.poll_only(&s.schedule.sources).await?
        };
        Ok(Some(Read {
            inputs,
            latest: reported.into_iter().map(|(p, _)| p).collect(),
            tagged,
        }))
    }

    /// One run, as it went.
    async fn run(&self, rollouts: &Rollouts, at: Timestamp, what: &Due) -> Option<ContinuousRunV1> {
        let (schedule, expedited, freeze) = match what {
            Due::Run { schedule } => (*schedule, None, None),
            Due::Expedite { schedule, patch } => (*schedule, Some(patch.clone()), None),
            Due::Skipped { schedule, freeze } => (*schedule, None, Some(freeze)),
            // Polls are `[sources] poll`'s, never in this queue.
            Due::Poll => return None,
        };
        let s = &self.standing[schedule];
        let mut run = ContinuousRunV1 {
            at,
            schedule: s.schedule.name.clone(),
            expedited: expedited.clone(),
            outcome: RunResultV1::Skipped,
            rollout: None,
            patches: Vec::new(),
            devices: None,
            waiting: Vec::new(),
            why: freeze.map(|f| format!("in freeze {f}")),
        };
        if freeze.is_none()
            && let Err(e) = self
                .start(rollouts, s, expedited.as_deref(), &mut run)
                .await
        {
            run.outcome = RunResultV1::Failed;
            run.why = Some(format!("{e:#}"));
        }
        Some(run)
    }

    async fn start(
        &self,
        rollouts: &Rollouts,
        s: &Standing,
        expedited: Option<&str>,
        run: &mut ContinuousRunV1,
    ) -> anyhow::Result<()> {
        let Some(Read {
            mut inputs,
            latest,
            tagged,
        }) = self.patches(rollouts, s).await?
        else {
            run.outcome = RunResultV1::NothingToDo;
            if let Target::Tags(tags) = &s.schedule.target {
                run.why = Some(format!(
                    "no device of the fleet registry has the tag {}: give the daemon an inventory with such devices (`ringleader scan --inventory FILE`)",
                    tags.join(" or ")
                ));
            }
            return Ok(());
        };
        let mut selection = match expedited {
            Some(patch) => logic::select_only(patch, &latest),
            None => logic::select(&s.schedule, &latest, run.at.as_second()),
        };
        run.waiting = selection
            .waiting
            .iter()
            .map(|(id, from)| WaitingV1 {
                id: id.clone(),
                from: Timestamp::from_second(*from).unwrap_or(run.at),
            })
            .collect();
        // What a rollout under way already rolls out is left to it. So is what a
        // halted rollout holds (and what it supersedes or what needs it first): the
        // patch may be what broke its ring, so no run rolls it out again until an
        // operator aborts that rollout or a retry takes it to its end.
        let mut busy = BTreeSet::new();
        let all = rollouts.list();
        let mut halted = Vec::new();
        for r in &all {
            let Some(patches) = &r.inputs.patches else {
                continue;
            };
            let live = r.live.read().unwrap_or_else(|e| e.into_inner());
            if !live.ended {
                busy.extend(patches.iter().cloned());
            } else if live.halted() {
                halted.push((r.id.as_str(), patches));
            }
        }
        let under_way = selection.without(&busy, &latest);
        let on_hold = selection.held_by(halted, &latest);
        run.outcome = RunResultV1::NothingToDo;
        if selection.patches.is_empty() {
            run.why = Some(if !under_way.is_empty() {
                format!(
                    "a rollout under way rolls out {}; the next run takes what it leaves",
                    under_way.join(", ")
                )
            } else if !on_hold.is_empty() {
                format!(
                    "held by a halted rollout: {}; `ringleader retry` it after a fix, or `ringleader abort` it, and the next run takes what it leaves",
                    on_hold.join("; ")
                )
            } else if let Some(w) = run.waiting.first() {
                format!(
                    "no patch approved yet ({} waiting; the first, {}, from {})",
                    run.waiting.len(),
                    w.id,
                    w.from
                )
            } else {
                "no patch the schedule selects".to_string()
            });
            return Ok(());
        }
        run.patches = selection.patches.iter().cloned().collect();
        // Plan from what the devices have now: scanned just before (into the registry;
        // a device a rollout step runs on keeps its last scan).
        let (_, inventory) = inputs.validate().map_err(anyhow::Error::msg)?;
        rollouts
            .check_devices(&inventory)
            .map_err(anyhow::Error::msg)?;
        let options = rollouts.scan_options();
        match (&tagged, &inputs.fleet) {
            // The registry's own files, for its tagged devices only.
            (Some(ids), _) => {
                rollouts.scan(None, ids, options).await?;
            }
            (None, Fleet::Inventory { name, text }) => {
                rollouts
                    .scan(Some((name.clone(), text.clone())), &[], options)
                    .await?;
            }
            (None, Fleet::Simulated { .. }) => {}
        }
        inputs.observed = rollouts.observed(&inventory)?;
        inputs.patches = Some(selection.patches.clone());
        inputs.start = now();
        let (_, planned) = inputs.validate().map_err(anyhow::Error::msg)?;
        let chosen: Vec<(ringleader_types::Patch, String)> = latest
            .iter()
            .filter(|p| selection.patches.contains(&p.id))
            .map(|p| (p.clone(), String::new()))
            .collect();
        let catalog = ringleader_planner::catalog::Catalog::build(chosen)?;
        // Planned as the rollout will be: a device no ring selects, or one that cannot
        // take a patch (it lacks a prerequisite), is not counted.
        let plan = ringleader_planner::plan::Planner {
            policy: &s.policy,
            inventory: &planned,
            catalog: &catalog,
            at: run.at,
        }
        .plan();
        let devices = plan
            .rings
            .iter()
            .flat_map(|r| &r.devices)
            .filter(|d| !d.steps.is_empty())
            .count();
        if devices == 0 {
            run.why = Some(format!(
                "no device needs {}: each has it, lacks what it patches or a prerequisite, or is in no ring",
                run.patches.join(", ")
            ));
            return Ok(());
        }
        let rollout = rollouts.start(inputs, &format!("schedule:{}", s.schedule.name))?;
        run.outcome = RunResultV1::Started;
        run.rollout = Some(rollout.id.clone());
        run.devices = Some(devices);
        Ok(())
    }
}
