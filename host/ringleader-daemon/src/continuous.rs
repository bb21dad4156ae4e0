//! Standing schedules at work over a stretch of virtual time (issue 16): the sources
//! polled on their interval (each patch's first sighting recorded), every schedule's
//! runs (through its policy's freezes), the approval rules deciding what each run
//! takes, an expedited run for a new patch the policy expedites, and each run's
//! rollout through the same path a daemon's rollout takes (`Session::prepare`, the
//! executor, a durable log), all in one virtual time ([`horizon`]): a rollout soaking
//! for days goes on while a critical fix published meanwhile is expedited past it.
//!
//! Deterministic for a seed: the driver acts at an instant only once every rollout has
//! done everything due by then and no plugin call is in flight.
//!
//! `ringleader demo --continuous` runs it over a simulated fleet; the decisions are
//! `ringleader_planner::continuous`'s, which the daemon's real-time runs share.

use crate::session::{Clock, Fleet, Inputs, Observed, Run, Session};
use jiff::Timestamp;
use ringleader_engine::core::{Core, JobId};
use ringleader_engine::executor::horizon::{self, Follower};
use ringleader_engine::store::{PhaseName, Store};
use ringleader_planner::continuous::{self as logic, Publication, Publications};
use ringleader_planner::inventory::Inventory;
use ringleader_planner::policy::Policy;
use ringleader_planner::standing::{RunOutcome as Planned, Schedule};
use ringleader_planner::time_to_patch::{self, Pair, SeverityTimes};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

/// One standing schedule, with its policy read.
#[derive(Debug, Clone)]
pub struct Standing {
    pub schedule: Schedule,
    pub policy_name: String,
    pub policy_text: String,
    pub policy: Policy,
}

/// The stretch of virtual time and the fleet it runs over.
#[derive(Debug, Clone)]
pub struct Stretch {
    /// The devices every schedule covers (a simulated fleet, or an inventory).
    pub fleet: Fleet,
    pub start: Timestamp,
    pub end: Timestamp,
    /// How often the sources are polled.
    pub poll_every: Duration,
    /// The simulated fleet's timing (install durations, devices that hang).
    pub seed: u64,
    pub hang_permille: u64,
    /// Rings that need a person are approved this long after they ask (a simulated
    /// operator); `None`: they wait, past the stretch's end.
    pub auto_approve_after: Option<Duration>,
    /// Where each run's rollout keeps its log (`DIR/rN`).
    pub dir: PathBuf,
}

/// What happened, in time order.
#[derive(Debug, Clone, PartialEq)]
pub enum Happening {
    /// A poll found a patch new or changed.
    Published {
        publication: Publication,
        source: String,
    },
    /// A schedule's run (or an expedited one, for `expedited`).
    Run {
        schedule: String,
        expedited: Option<String>,
        outcome: RunOutcome,
        /// Patches the schedule selects that are not approved yet, each with the time
        /// it will be.
        waiting: Vec<(String, Timestamp)>,
    },
    /// A run the recurrence planned that a freeze skipped.
    Skipped {
        schedule: String,
        planned: Timestamp,
        freeze: String,
    },
    /// A source could not be polled.
    PollFailed { error: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    /// A rollout started: its number (`rN`), patches, and devices with work to do.
    Started {
        rollout: usize,
        patches: BTreeSet<String>,
        devices: usize,
    },
    /// Nothing to do, and why.
    NothingToDo { why: String },
    /// The rollout could not be prepared.
    Failed { error: String },
}

/// A run's rollout, as it ended (or stood at the stretch's end).
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutEnd {
    pub rollout: usize,
    pub schedule: String,
    pub expedited: bool,
    pub started: Timestamp,
    /// When it ended; `None`: still going at the stretch's end.
    pub finished: Option<Timestamp>,
    pub phase: PhaseName,
    pub patches: BTreeSet<String>,
    pub devices: usize,
    /// Steps installed (and not rolled back).
    pub installs: usize,
    /// Devices whose install (or rollback) failed, and devices rolled back, at the end.
    pub failed_devices: usize,
    pub rolled_back: usize,
    pub halt_reason: Option<String>,
}

/// Everything a stretch did.
#[derive(Debug, Clone)]
pub struct Report {
    pub start: Timestamp,
    pub end: Timestamp,
    pub happenings: Vec<(Timestamp, Happening)>,
    pub publications: Publications,
    pub rollouts: Vec<RolloutEnd>,
    /// Polls made.
    pub polls: u64,
    /// Per severity, from each patch's first sighting to each device's install, as of
    /// the end.
    pub time_to_patch: Vec<SeverityTimes>,
}

/// What the driver does next, in time order (ties: polls first, then runs in
/// schedule order, then expedited runs).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Due {
    Poll,
    Skipped { schedule: usize, freeze: String },
    Run { schedule: usize },
    Expedite { schedule: usize, patch: String },
}

/// A rollout under way.
struct Running {
    rollout: usize,
    schedule: String,
    expedited: bool,
    started: Timestamp,
    patches: BTreeSet<String>,
    devices: usize,
    follower: Follower,
    task: tokio::task::JoinHandle<(Core, ringleader_engine::executor::RunReport)>,
    store_dir: PathBuf,
    /// Each job's device and the patches of its steps, in order.
    jobs: BTreeMap<(u16, u32), (String, Vec<String>)>,
}

/// Runs `standing` over `stretch`. `publish` is called at every instant the driver
/// acts, before it acts: how a simulation's vendors publish (a feed file written).
pub async fn run(
    session: &Session,
    standing: &[Standing],
    stretch: &Stretch,
    mut publish: impl FnMut(Timestamp) -> anyhow::Result<()>,
    mut progress: impl FnMut(Timestamp, &Happening),
) -> anyhow::Result<Report> {
    let inputs_of = |start: Timestamp, policy: &Standing| Inputs {
        policy_name: policy.policy_name.clone(),
        policy: policy.policy_text.clone(),
        fleet: stretch.fleet.clone(),
        clock: Clock::Virtual {
            seed: stretch.seed,
            hang_permille: stretch.hang_permille,
        },
        start,
        observed: BTreeMap::new(),
        patches: None,
    };
    let Some(first) = standing.first() else {
        anyhow::bail!("no schedule to run");
    };
    let (_, inventory) = inputs_of(stretch.start, first)
        .validate()
        .map_err(anyhow::Error::msg)?;
    let sources = session.sources_for(&inventory).await?;
    std::fs::create_dir_all(&stretch.dir)?;

    let driver = horizon::Driver::new(stretch.start);
    let mut due: BTreeSet<(Timestamp, Due)> = BTreeSet::new();
    let mut happenings = Vec::new();
    let mut record = |at: Timestamp, h: Happening, happenings: &mut Vec<_>| {
        progress(at, &h);
        happenings.push((at, h));
    };
    due.insert((stretch.start, Due::Poll));
    for (i, s) in standing.iter().enumerate() {
        due.extend(next_run(s, stretch.start, i));
    }
    let mut publications = Publications::default();
    // What the last poll reported, each patch with its source.
    let mut latest: Vec<(ringleader_types::Patch, String)> = Vec::new();
    let mut running: Vec<Running> = Vec::new();
    let mut ended: Vec<RolloutEnd> = Vec::new();
    let mut installs: BTreeMap<(String, String), Timestamp> = BTreeMap::new();
    let mut polls = 0;
    let mut rollouts = 0;

    while let Some((at, what)) = due.pop_first() {
        if at > stretch.end {
            break;
        }
        // Every rollout does what is due by `at`, then the driver acts.
        driver.advance(at);
        for r in &mut running {
            driver.reached(&mut r.follower).await;
        }
        finish_done(&mut running, &mut ended, &mut installs).await?;
        publish(at)?;
        match what {
            Due::Poll => {
                polls += 1;
                match sources.poll().await {
                    Ok(reported) => {
                        let by_source: BTreeMap<&str, &str> = reported
                            .iter()
                            .map(|(p, s)| (p.id.as_str(), s.as_str()))
                            .collect();
                        let new =
                            publications.observe(at.as_second(), reported.iter().map(|(p, _)| p));
                        latest = reported.clone();
                        for publication in new {
                            let found = latest.iter().find(|(p, _)| p.id == publication.id);
                            for (i, s) in standing.iter().enumerate() {
                                if let Some((patch, source)) = found
                                    && s.schedule.takes_from(source)
                                    && let Some(when) = logic::expedite_at(
                                        &s.schedule,
                                        s.policy.expedite.as_ref(),
                                        &publication,
                                        patch,
                                    )
                                {
                                    let when = Timestamp::from_second(when).unwrap_or(at).max(at);
                                    due.insert((
                                        when,
                                        Due::Expedite {
                                            schedule: i,
                                            patch: publication.id.clone(),
                                        },
                                    ));
                                }
                            }
                            let source = by_source
                                .get(publication.id.as_str())
                                .copied()
                                .unwrap_or_default()
                                .to_string();
                            record(
                                at,
                                Happening::Published {
                                    publication,
                                    source,
                                },
                                &mut happenings,
                            );
                        }
                    }
                    Err(e) => record(
                        at,
                        Happening::PollFailed {
                            error: format!("{e:#}"),
                        },
                        &mut happenings,
                    ),
                }
                due.insert((add(at, stretch.poll_every), Due::Poll));
            }
            Due::Skipped { schedule, freeze } => record(
                at,
                Happening::Skipped {
                    schedule: standing[schedule].schedule.name.clone(),
                    planned: at,
                    freeze,
                },
                &mut happenings,
            ),
            Due::Run { schedule } | Due::Expedite { schedule, .. } => {
                let s = &standing[schedule];
                let expedited = match &what {
                    Due::Expedite { patch, .. } => Some(patch.clone()),
                    _ => None,
                };
                let latest: Vec<ringleader_types::Patch> = latest
                    .iter()
                    .filter(|(_, source)| s.schedule.takes_from(source))
                    .map(|(p, _)| p.clone())
                    .collect();
                let mut selection = match &expedited {
                    Some(patch) => logic::select_only(patch, &latest),
                    None => logic::select(&s.schedule, &latest, at.as_second()),
                };
                let busy: BTreeSet<String> = running
                    .iter()
                    .flat_map(|r| r.patches.iter().cloned())
                    .collect();
                let under_way = selection.without(&busy, &latest);
                // As the daemon does, a halted rollout holds its patches; the
                // simulation has no operator to retry or abort it.
                let ids: Vec<(String, &BTreeSet<String>)> = ended
                    .iter()
                    .filter(|r| r.phase == PhaseName::Halted)
                    .map(|r| (format!("r{}", r.rollout), &r.patches))
                    .collect();
                let on_hold =
                    selection.held_by(ids.iter().map(|(id, p)| (id.as_str(), *p)), &latest);
                let outcome = if selection.patches.is_empty() && !under_way.is_empty() {
                    RunOutcome::NothingToDo {
                        why: format!(
                            "a rollout under way rolls out {}; the next run takes what it leaves",
                            under_way.join(", ")
                        ),
                    }
                } else if selection.patches.is_empty() && !on_hold.is_empty() {
                    RunOutcome::NothingToDo {
                        why: format!(
                            "held by a halted rollout: {} (the simulation has no operator to retry or abort it)",
                            on_hold.join("; ")
                        ),
                    }
                } else if selection.patches.is_empty() {
                    RunOutcome::NothingToDo {
                        why: match selection.waiting.first() {
                            Some((id, from)) => format!(
                                "no patch approved yet ({} waiting; the first, {id}, from {})",
                                selection.waiting.len(),
                                Timestamp::from_second(*from).unwrap_or(at)
                            ),
                            None => "no patch the schedule selects".into(),
                        },
                    }
                } else {
                    let observed = scan(session, &inventory).await?;
                    let mut inputs = inputs_of(at, s);
                    inputs.observed = observed;
                    inputs.patches = Some(selection.patches.clone());
                    rollouts += 1;
                    match start(session, &inputs, stretch, &driver, rollouts).await {
                        Ok(None) => {
                            rollouts -= 1;
                            RunOutcome::NothingToDo {
                                why: format!(
                                    "every device has the {} patches selected",
                                    selection.patches.len()
                                ),
                            }
                        }
                        Ok(Some((mut r, devices))) => {
                            r.schedule = s.schedule.name.clone();
                            r.expedited = expedited.is_some();
                            r.patches = selection.patches.clone();
                            running.push(r);
                            RunOutcome::Started {
                                rollout: rollouts,
                                patches: selection.patches.clone(),
                                devices,
                            }
                        }
                        Err(e) => RunOutcome::Failed {
                            error: format!("{e:#}"),
                        },
                    }
                };
                record(
                    at,
                    Happening::Run {
                        schedule: s.schedule.name.clone(),
                        expedited: expedited.clone(),
                        outcome,
                        waiting: selection
                            .waiting
                            .iter()
                            .map(|(id, from)| {
                                (id.clone(), Timestamp::from_second(*from).unwrap_or(at))
                            })
                            .collect(),
                    },
                    &mut happenings,
                );
                if expedited.is_none() {
                    due.extend(next_run(s, at, schedule));
                }
            }
        }
    }

    // The end: everything due by then is done; what still runs is stopped there.
    driver.advance(stretch.end);
    for r in &mut running {
        driver.reached(&mut r.follower).await;
    }
    finish_done(&mut running, &mut ended, &mut installs).await?;
    for r in running.drain(..) {
        r.task.abort();
        let mut r = r;
        let _ = (&mut r.task).await;
        ended.push(end_of(r, None, &mut installs)?);
    }
    ended.sort_by_key(|e| e.rollout);

    // Time to patch: each install from the logs, and each device still lacking a patch
    // at the end (from a last scan) as outstanding.
    let observed = scan(session, &inventory).await?;
    let mut last = inputs_of(stretch.end, first);
    last.observed = observed;
    let (_, now) = last.validate().map_err(anyhow::Error::msg)?;
    let reported = sources.poll().await.unwrap_or_default();
    let catalog = ringleader_planner::catalog::Catalog::build(reported)?;
    let compliance = ringleader_planner::compliance::Fleet {
        devices: &now.devices,
        catalog: &catalog,
        at: stretch.end.as_second(),
        filter: &Default::default(),
    }
    .compute();
    let mut pairs: Vec<Pair> = installs
        .iter()
        .map(|((device, patch), at)| Pair {
            patch: patch.clone(),
            device: device.clone(),
            installed: Some(at.as_second()),
        })
        .collect();
    for d in &compliance.devices {
        let device = &now.devices[d.device as usize].id;
        let lacking = d
            .missing
            .iter()
            .map(|m| m.patch)
            .chain(d.covered.iter().map(|(_, c)| *c));
        for index in lacking {
            let patch = &catalog.get(index).patch.id;
            if !installs.contains_key(&(device.clone(), patch.clone())) {
                pairs.push(Pair {
                    patch: patch.clone(),
                    device: device.clone(),
                    installed: None,
                });
            }
        }
    }
    let time_to_patch = time_to_patch::report(
        &publications.for_time_to_patch(),
        &pairs,
        stretch.end.as_second(),
    );
    Ok(Report {
        start: stretch.start,
        end: stretch.end,
        happenings,
        publications,
        rollouts: ended,
        polls,
        time_to_patch,
    })
}

/// The schedule's next run after `after` (moved out of a freeze, as it says), and the
/// runs a freeze skips before it, each due at its planned time.
pub(crate) fn next_run(s: &Standing, after: Timestamp, schedule: usize) -> Vec<(Timestamp, Due)> {
    s.schedule
        .runs(&s.policy.freezes, after, 1)
        .into_iter()
        .filter_map(|r| match (&r.outcome, r.at()) {
            (Planned::Skipped { freeze }, _) => Some((
                r.planned.timestamp(),
                Due::Skipped {
                    schedule,
                    freeze: freeze.clone(),
                },
            )),
            (_, Some(at)) => Some((at.timestamp(), Due::Run { schedule })),
            (_, None) => None,
        })
        .collect()
}

/// The devices' components as their installers report them now.
async fn scan(
    session: &Session,
    inventory: &Inventory,
) -> anyhow::Result<BTreeMap<String, Observed>> {
    let mut observed = BTreeMap::new();
    session
        .scan(inventory, &[], session.scan_options(), |outcome| {
            if let Ok(scan) = outcome.result {
                observed.insert(
                    outcome.id,
                    Observed {
                        components: scan
                            .components
                            .into_iter()
                            .map(crate::fleet::component_v1)
                            .collect(),
                        os: scan.os.map(|o| ringleader_api::fleet::OsV1 {
                            id: o.id,
                            version_id: o.version_id,
                            codename: o.codename,
                            pretty_name: o.pretty_name,
                        }),
                    },
                );
            }
        })
        .await?;
    Ok(observed)
}

/// Prepares and starts rollout `n` of `inputs`, following the driver's horizon;
/// `None` when its plan gives no device anything to do.
async fn start(
    session: &Session,
    inputs: &Inputs,
    stretch: &Stretch,
    driver: &horizon::Driver,
    n: usize,
) -> anyhow::Result<Option<(Running, usize)>> {
    let store_dir = stretch.dir.join(format!("r{n}"));
    let store = Store::open(&store_dir)?;
    inputs.record(&store)?;
    let ready = session.prepare(inputs, Some(store)).await?;
    let core = &ready.core;
    let mut jobs = BTreeMap::new();
    for ring in 0..core.ring_count() as u16 {
        for index in 0..core.ring_len(ring) as u32 {
            if let Some(job) = core.job_spec(JobId { ring, index })
                && !job.steps.is_empty()
            {
                jobs.insert(
                    (ring, index),
                    (
                        job.device.clone(),
                        job.steps.iter().map(|s| s.patch.clone()).collect(),
                    ),
                );
            }
        }
    }
    // Devices with something to install.
    let devices = jobs.len();
    if devices == 0 {
        drop(ready);
        std::fs::remove_dir_all(&store_dir).ok();
        return Ok(None);
    }
    let (horizon, follower) = driver.follow();
    let run = Run {
        auto_approve_after: stretch.auto_approve_after,
        horizon: Some(horizon),
        ..Run::default()
    };
    let task = tokio::spawn(ready.run(run, |_, _| {}));
    Ok(Some((
        Running {
            rollout: n,
            schedule: String::new(),
            expedited: false,
            started: inputs.start,
            patches: BTreeSet::new(),
            devices,
            follower,
            task,
            store_dir,
            jobs,
        },
        devices,
    )))
}

/// Collects the rollouts whose run returned.
async fn finish_done(
    running: &mut Vec<Running>,
    ended: &mut Vec<RolloutEnd>,
    installs: &mut BTreeMap<(String, String), Timestamp>,
) -> anyhow::Result<()> {
    let mut i = 0;
    while i < running.len() {
        // Done as the driver sees it (the executor has ended): its task returns at
        // once, so whether it is collected never depends on thread timing.
        if running[i].task.is_finished() || running[i].follower.is_done() {
            let mut r = running.swap_remove(i);
            let finished = match (&mut r.task).await {
                Ok((_, report)) => Some(report.finished),
                Err(e) => anyhow::bail!("rollout r{}'s executor failed: {e}", r.rollout),
            };
            ended.push(end_of(r, finished, installs)?);
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// A rollout as its log leaves it: the installs it holds (steps that succeeded, on
/// devices not rolled back since) merged into `installs` (the first time each device
/// got each patch).
fn end_of(
    r: Running,
    finished: Option<Timestamp>,
    installs: &mut BTreeMap<(String, String), Timestamp>,
) -> anyhow::Result<RolloutEnd> {
    let store = Store::open(&r.store_dir)?;
    let mut log = crate::time_to_patch::LogInstalls::default();
    store.replay(|record| log.see(&record))?;
    let status = store.status()?;
    let phase = status.as_ref().map_or(PhaseName::Running, |s| s.phase);
    let rings = status
        .as_ref()
        .map(|s| s.rings.as_slice())
        .unwrap_or_default();
    let failed_devices: usize = rings.iter().map(|r| r.failed + r.rollback_failed).sum();
    let rolled_back: usize = rings.iter().map(|r| r.rolled_back).sum();
    let halt_reason = status.and_then(|s| s.halt_reason);
    let mut count = 0;
    let jobs = &r.jobs;
    for (device, patch, at) in
        log.installs(|job| jobs.get(&job).map(|(d, p)| (d.as_str(), p.as_slice())))
    {
        count += 1;
        installs
            .entry((device, patch))
            .and_modify(|t| *t = (*t).min(at))
            .or_insert(at);
    }
    Ok(RolloutEnd {
        rollout: r.rollout,
        schedule: r.schedule,
        expedited: r.expedited,
        started: r.started,
        finished,
        phase,
        patches: r.patches,
        devices: r.devices,
        installs: count,
        failed_devices,
        rolled_back,
        halt_reason,
    })
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}
