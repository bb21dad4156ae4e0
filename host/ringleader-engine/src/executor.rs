//! The executor: runs the core's decisions through installer plugins and feeds the
//! results back as events.
//!
//! This is the virtual-time executor used by simulations (`ringleader demo`): plugin
//! calls run for real (through the sandboxed runtime, with bounded concurrency), while
//! their completion is delivered at a virtual time given by the simulated fleet's model
//! (install durations, devices that never report). Virtual time only moves when every
//! plugin call in flight has returned, to the next due result or core wake-up, so a run
//! is deterministic however calls interleave, and weeks of soaks and windows pass in
//! seconds.

use crate::clock::VirtualClock;
use crate::core::{Core, Decision, Event, JobId, JobState, Phase, RolloutSpec, add};
use crate::store::{Record, Store, StoreError, StoredEvent};
use jiff::Timestamp;
use ringleader_runtime::Plugin;
use ringleader_runtime::bindings::{Device, Patch, Readiness, RollbackTarget};
use ringleader_runtime::sim_device::SimDevices;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// How simulated devices take their time: keyed by (seed, device, patch), never by
/// call order.
#[derive(Debug, Clone)]
pub struct SimTiming {
    pub seed: u64,
    /// Install durations are spread between these.
    pub min_duration: Duration,
    pub max_duration: Duration,
    /// Installs (per mille) after which the device never reports back.
    pub hang_permille: u64,
    /// How often the engine polls devices for results: a step that ends between two
    /// polls is seen at the next one (at a multiple of this since the Unix epoch).
    /// Results that arrive together are logged and acted on together, one flush for
    /// all of them. Zero: results are seen the second they happen.
    pub poll: Duration,
}

impl SimTiming {
    fn draw(&self, device: &str, patch: &str, what: &str) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ self.seed;
        for part in [device, patch, what] {
            for byte in part.bytes().chain([0]) {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
        hash
    }

    /// How long the step takes on the device, or `None` if it never reports.
    pub fn duration(&self, device: &str, patch: &str) -> Option<Duration> {
        if self.draw(device, patch, "hang") % 1000 < self.hang_permille {
            return None;
        }
        let span = self
            .max_duration
            .saturating_sub(self.min_duration)
            .as_secs()
            .max(1);
        Some(self.min_duration + Duration::from_secs(self.draw(device, patch, "duration") % span))
    }

    /// When the engine sees a result that is ready at `ready`: at the next poll.
    pub fn seen_at(&self, ready: Timestamp) -> Timestamp {
        let poll = self.poll.as_secs() as i64;
        if poll <= 1 {
            return ready;
        }
        let second = ready.as_second();
        let polled = second.div_euclid(poll) * poll;
        let seen = if polled == second {
            second
        } else {
            polled + poll
        };
        Timestamp::from_second(seen).unwrap_or(ready)
    }
}

/// What the rollout needs to know about devices and patches.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    /// Devices by id, as plugins see them.
    pub devices: HashMap<String, Device>,
    /// Patches by id.
    pub patches: HashMap<String, Patch>,
}

/// How a run ended, with counters a demo reports.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub phase: Phase,
    pub started: Timestamp,
    pub finished: Timestamp,
    pub install_calls: u64,
    pub rollback_calls: u64,
    pub approvals: u64,
    pub halt_reason: Option<String>,
}

/// The result of a plugin call, waiting for its virtual delivery time.
#[derive(Debug)]
struct Outcome {
    job: JobId,
    event: Event,
    /// `None`: the device never reports.
    after: Option<Duration>,
}

/// Runs a rollout to its end in virtual time.
#[derive(Debug)]
pub struct VirtualExecutor {
    pub core: Core,
    pub installer: Plugin,
    pub targets: Arc<Targets>,
    pub timing: SimTiming,
    /// Plugin calls in flight at once.
    pub concurrency: usize,
    /// Approve rings that need approval (a simulated operator), after this delay.
    pub auto_approve_after: Option<Duration>,
    /// Virtual time now.
    pub now: Timestamp,
    /// Where every event and dispatch is logged before it is acted on; `None` runs
    /// in memory only.
    pub store: Option<Store>,
    /// Steps that may have run when the engine stopped: verified before anything else.
    pub recheck: Vec<(JobId, u16)>,
    /// Simulated devices whose state is made durable before the log is: the log never
    /// records an outcome the devices could forget.
    pub devices: Option<Arc<SimDevices>>,
    /// The clock plugins read; moved with virtual time.
    pub clock: Option<VirtualClock>,
}

/// A rollout rebuilt from its log.
#[derive(Debug)]
pub struct Replayed {
    pub core: Core,
    /// Virtual time of the last record (the start when the log is empty).
    pub now: Timestamp,
    /// Steps in flight when the engine stopped: to verify first.
    pub in_flight: Vec<(JobId, u16)>,
    /// Records replayed.
    pub records: u64,
}

/// Rebuilds the core from `store`'s log (a fresh core when the log is empty) and says
/// which steps were in flight.
pub fn replay(spec: RolloutSpec, store: &Store, start: Timestamp) -> Result<Replayed, StoreError> {
    let records = store.records()?;
    let mut core = Core::new(spec);
    let mut now = start;
    for record in &records {
        match record {
            Record::Event { at, event } => {
                now = Timestamp::from_second(*at).unwrap_or(now);
                core.handle(now, event.clone().into_event());
            }
            Record::Resumed { at } => now = Timestamp::from_second(*at).unwrap_or(now),
            Record::Dispatched { .. } | Record::RollbackDispatched { .. } => {}
        }
    }
    let mut in_flight = Vec::new();
    for ring in 0..core.ring_count() as u16 {
        for index in 0..core.ring_len(ring) as u32 {
            let job = JobId { ring, index };
            if let Some(JobState::Running { step, .. }) = core.job(job) {
                in_flight.push((job, *step));
            }
        }
    }
    Ok(Replayed {
        core,
        now,
        in_flight,
        records: records.len() as u64,
    })
}

impl VirtualExecutor {
    /// Runs until the rollout completes, halts (and finishes rolling back), is aborted,
    /// or nothing more can happen. `progress` is called whenever time advances.
    pub async fn run(mut self, mut progress: impl FnMut(&Core, Timestamp)) -> (Core, RunReport) {
        let started = self.now;
        let mut report = RunReport {
            phase: self.core.phase().clone(),
            started,
            finished: started,
            install_calls: 0,
            rollback_calls: 0,
            approvals: 0,
            halt_reason: None,
        };
        // Results due at a virtual time, in a deterministic order.
        let mut due: BTreeMap<(Timestamp, JobId, u8), Event> = BTreeMap::new();
        let mut wake: BTreeSet<Timestamp> = BTreeSet::new();
        let mut calls: JoinSet<Outcome> = JoinSet::new();
        let limit = Arc::new(tokio::sync::Semaphore::new(self.concurrency.max(1)));
        if let Some(clock) = &self.clock {
            clock.set(self.now);
        }
        if !self.recheck.is_empty() || self.store.as_ref().is_some_and(|s| !s.is_empty()) {
            self.log(Record::Resumed {
                at: self.now.as_second(),
            });
        }
        // Steps that may have run before a restart: verify first, install only if the
        // device does not report the patch.
        for (job, step) in std::mem::take(&mut self.recheck) {
            self.spawn_step(&mut calls, &limit, job, step, true);
        }
        if let Phase::AwaitingApproval { .. } = self.core.phase()
            && let Some(delay) = self.auto_approve_after
        {
            due.insert(
                (
                    add(self.now, delay),
                    JobId {
                        ring: u16::MAX,
                        index: 0,
                    },
                    0,
                ),
                Event::Approve,
            );
        }
        let mut queue: Vec<Decision> = self.feed(Event::Tick);
        loop {
            // Write-ahead: every dispatch, and every event it follows from, is durable
            // before the call is made. Steps that dispatch nothing need no flush.
            let mut dispatches = false;
            for decision in &queue {
                match decision {
                    Decision::StartStep { job, step } => self.log(Record::Dispatched {
                        at: self.now.as_second(),
                        job: (job.ring, job.index),
                        step: *step,
                    }),
                    Decision::StartRollback { job } => self.log(Record::RollbackDispatched {
                        at: self.now.as_second(),
                        job: (job.ring, job.index),
                    }),
                    _ => continue,
                }
                dispatches = true;
            }
            if dispatches {
                self.flush();
            }
            for decision in std::mem::take(&mut queue) {
                match decision {
                    Decision::StartStep { job, step } => {
                        report.install_calls += 1;
                        self.spawn_step(&mut calls, &limit, job, step, false);
                    }
                    Decision::StartRollback { job } => {
                        report.rollback_calls += 1;
                        self.spawn_rollback(&mut calls, &limit, job);
                    }
                    Decision::WakeAt(t) => {
                        wake.insert(t);
                    }
                    Decision::AwaitApproval { .. } => {
                        if let Some(delay) = self.auto_approve_after {
                            let at = add(self.now, delay);
                            due.insert(
                                (
                                    at,
                                    JobId {
                                        ring: u16::MAX,
                                        index: 0,
                                    },
                                    0,
                                ),
                                Event::Approve,
                            );
                        }
                    }
                    Decision::Halt { reason, .. } => report.halt_reason = Some(reason),
                    Decision::DeviceUnresponsive { .. }
                    | Decision::RingComplete { .. }
                    | Decision::Completed => {}
                }
            }
            // Every call in flight returns before time may move.
            if let Some(done) = calls.join_next().await {
                match done {
                    Ok(outcome) => {
                        if let Some(after) = outcome.after {
                            let kind =
                                u8::from(matches!(outcome.event, Event::RollbackFinished { .. }));
                            let at = self.timing.seen_at(add(self.now, after));
                            due.insert((at, outcome.job, kind), outcome.event);
                        }
                    }
                    Err(e) => tracing::error!("plugin call task failed: {e}"),
                }
                continue;
            }
            if matches!(self.core.phase(), Phase::Completed | Phase::Aborted) {
                break;
            }
            // Advance virtual time to the next due result or wake-up.
            let next_due = due.keys().next().map(|(t, _, _)| *t);
            let next_wake = wake.iter().next().copied();
            let next = match (next_due, next_wake) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => break,
            };
            self.now = self.now.max(next);
            if let Some(clock) = &self.clock {
                clock.set(self.now);
            }
            wake.retain(|t| *t > self.now);
            let last = (
                self.now,
                JobId {
                    ring: u16::MAX,
                    index: u32::MAX,
                },
                u8::MAX,
            );
            let ready: Vec<(Timestamp, JobId, u8)> = due.range(..=last).map(|(k, _)| *k).collect();
            for key in ready {
                if let Some(event) = due.remove(&key) {
                    if event == Event::Approve {
                        report.approvals += 1;
                    }
                    queue.extend(self.feed(event));
                }
            }
            queue.extend(self.feed(Event::Tick));
            progress(&self.core, self.now);
        }
        self.flush();
        report.phase = self.core.phase().clone();
        report.finished = self.now;
        (self.core, report)
    }

    /// Logs `event` (when durable), then gives it to the core.
    fn feed(&mut self, event: Event) -> Vec<Decision> {
        self.log(Record::Event {
            at: self.now.as_second(),
            event: StoredEvent::from_event(&event),
        });
        self.core.handle(self.now, event)
    }

    fn log(&mut self, record: Record) {
        if let Some(store) = &mut self.store
            && let Err(e) = store.append(&record)
        {
            // Losing the log would break crash safety: stop rather than go on.
            panic!("cannot write the rollout log: {e}");
        }
    }

    fn flush(&mut self) {
        if let Some(devices) = &self.devices
            && let Err(e) = devices.flush()
        {
            panic!("cannot flush the simulated devices' state: {e}");
        }
        if let Some(store) = &self.store
            && let Err(e) = store.flush()
        {
            panic!("cannot flush the rollout log: {e}");
        }
    }

    fn lookup(&self, job: JobId, step: u16) -> Option<(Device, Patch)> {
        let spec = self.core.job_spec(job)?;
        let device = self.targets.devices.get(&spec.device)?.clone();
        let patch_id = &spec.steps.get(usize::from(step))?.patch;
        let patch = self.targets.patches.get(patch_id)?.clone();
        Some((device, patch))
    }

    /// Installs and verifies a step; with `verify_first` (after a restart), verifies
    /// first and installs only when the device does not report the patch installed.
    fn spawn_step(
        &self,
        calls: &mut JoinSet<Outcome>,
        limit: &Arc<tokio::sync::Semaphore>,
        job: JobId,
        step: u16,
        verify_first: bool,
    ) {
        let Some((device, patch)) = self.lookup(job, step) else {
            let reason = "the device or patch vanished from the rollout's inputs".to_string();
            calls.spawn(async move {
                Outcome {
                    job,
                    event: Event::StepFailed { job, step, reason },
                    after: Some(Duration::ZERO),
                }
            });
            return;
        };
        let after = self.timing.duration(&device.id, &patch.id);
        let installer = self.installer.clone();
        let limit = limit.clone();
        calls.spawn(async move {
            let _permit = limit.acquire_owned().await;
            if verify_first
                && let Ok(report) = installer.verify(&device, &patch).await
                && report.installed_version.as_deref() == Some(patch.fixed_version.as_str())
            {
                let event = if report.health.healthy {
                    Event::StepSucceeded { job, step }
                } else {
                    Event::StepFailed {
                        job,
                        step,
                        reason: "verify: the device is unhealthy after the install".into(),
                    }
                };
                return Outcome { job, event, after };
            }
            match installer.preflight(&device, &patch).await {
                Ok(Readiness::Blocked(why)) => {
                    let event = Event::StepFailed {
                        job,
                        step,
                        reason: format!("preflight: {why}"),
                    };
                    return Outcome { job, event, after };
                }
                Ok(Readiness::AlreadyInstalled(_)) => {
                    // Nothing to install: the device already runs the fixed version.
                    let event = Event::StepSucceeded { job, step };
                    return Outcome { job, event, after };
                }
                Ok(Readiness::Ready) => {}
                Err(e) => {
                    let event = Event::StepFailed {
                        job,
                        step,
                        reason: e.to_string(),
                    };
                    return Outcome { job, event, after };
                }
            }
            let event = match installer.install(&device, &patch).await {
                Err(e) => Event::StepFailed {
                    job,
                    step,
                    reason: e.to_string(),
                },
                Ok(_) => match installer.verify(&device, &patch).await {
                    Err(e) => Event::StepFailed {
                        job,
                        step,
                        reason: e.to_string(),
                    },
                    Ok(report)
                        if report.installed_version.as_deref() != Some(&patch.fixed_version) =>
                    {
                        Event::StepFailed {
                            job,
                            step,
                            reason: format!(
                                "verify: the device reports version {} after installing {}",
                                report.installed_version.as_deref().unwrap_or("none"),
                                patch.fixed_version
                            ),
                        }
                    }
                    Ok(report) if !report.health.healthy => Event::StepFailed {
                        job,
                        step,
                        reason: "verify: the device is unhealthy after the install".into(),
                    },
                    Ok(_) => Event::StepSucceeded { job, step },
                },
            };
            Outcome { job, event, after }
        });
    }

    fn spawn_rollback(
        &self,
        calls: &mut JoinSet<Outcome>,
        limit: &Arc<tokio::sync::Semaphore>,
        job: JobId,
    ) {
        let Some(spec) = self.core.job_spec(job) else {
            return;
        };
        let done = self.core.job_steps_done(job).min(spec.steps.len() as u16);
        let mut work = Vec::new();
        for step in (0..done).rev() {
            if let Some((device, patch)) = self.lookup(job, step) {
                let previous = device
                    .components
                    .iter()
                    .find(|c| c.name == patch.component)
                    .map(|c| c.version.clone())
                    .unwrap_or_default();
                work.push((device, patch, previous));
            }
        }
        let after = work
            .first()
            .and_then(|(d, p, _)| self.timing.duration(&d.id, &format!("rollback:{}", p.id)))
            .or(Some(Duration::from_secs(600)));
        let installer = self.installer.clone();
        let limit = limit.clone();
        calls.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let mut ok = true;
            for (device, patch, previous) in work {
                let target = RollbackTarget {
                    version: previous,
                    artifact: None,
                };
                if installer.rollback(&device, &patch, &target).await.is_err() {
                    ok = false;
                }
            }
            Outcome {
                job,
                event: Event::RollbackFinished { job, ok },
                after,
            }
        });
    }
}
