//! The rollout core: a deterministic state machine. Events and the current time in,
//! decisions out. It does no I/O and never reads a clock; the executor feeds it, and a
//! restart rebuilds it by replaying the durable event log.
//!
//! A device is the unit of a ring's pacing: it becomes *active* when its first step
//! starts and stays active until its last step succeeds (done) or one fails (failed);
//! `max_parallel` caps active devices, and batch `b + 1` starts only when every device
//! of batch `b` is done or failed. Steps of one device run one after another.
//!
//! Reboots: a device restarts after its last step that needs it (the patch says so,
//! or the installer reported the change pending a restart), once per run of such
//! steps (the planner groups them last), when the ring's `reboot` allows it and
//! inside its `reboot_window`. The executor reboots it, waits for another boot id and
//! verifies every step installed; a device not back within `reboot_timeout` fails.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use ringleader_planner::policy::{
    Amount, AutoApprove, FailedDevices, Freeze, OnHalt, Reboot, Window,
};
use ringleader_planner::schedule::{self, NEVER};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// Everything the core needs to run a rollout, fixed when it starts.
#[derive(Debug, Clone)]
pub struct RolloutSpec {
    pub rings: Vec<RingSpec>,
    pub freezes: Vec<Freeze>,
    pub on_halt: OnHalt,
    /// Whether the rollback after a halt takes the devices whose install failed back
    /// too (an operator's rollback always may).
    pub failed_devices: FailedDevices,
    /// Soak multiplier for expedited steps (1.0 when the policy has no expedite rule).
    pub expedite_soak_factor: f64,
    /// Expedited steps may start outside windows.
    pub expedite_skips_window: bool,
}

/// One ring's gates and members.
#[derive(Debug, Clone)]
pub struct RingSpec {
    pub name: String,
    /// Number of batches; each device says which it belongs to.
    pub batches: u32,
    pub max_parallel: Option<u32>,
    pub soak: Duration,
    /// Share (0-100) of the ring's devices that must succeed.
    pub success_threshold: Option<f64>,
    pub max_failures: Amount,
    pub unresponsive_after: Duration,
    pub approval: bool,
    /// The approval is granted by rule when the ring before passed so.
    pub auto_approve: Option<AutoApprove>,
    pub window: Option<Window>,
    /// Whether devices restart for the steps that need it.
    pub reboot: Reboot,
    /// Where reboots must start (the ring's `window` when the policy names none).
    pub reboot_window: Option<Window>,
    /// A rebooting device not back and verified within this counts as failed.
    pub reboot_timeout: Duration,
    pub devices: Vec<DeviceJob>,
}

/// One device's work in a ring.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceJob {
    pub device: String,
    pub timezone: TimeZone,
    /// 0-based batch within the ring.
    pub batch: u32,
    pub steps: Vec<StepSpec>,
}

/// One patch to install on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepSpec {
    pub patch: String,
    /// Not before this (a deferral by patch kind).
    pub not_before: Option<Timestamp>,
    pub expedited: bool,
    /// The patch takes effect only after a restart.
    pub reboot_required: bool,
    /// The planner's place for a restart: after this step (the last of a run of
    /// patches that need one).
    pub reboot_after: bool,
}

/// Identifies a device job: ring index and position in the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId {
    pub ring: u16,
    pub index: u32,
}

/// What happened, as the executor (or an operator) reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Nothing but time passing.
    Tick,
    /// A step the core asked for reported success.
    StepSucceeded {
        job: JobId,
        step: u16,
        /// The installer said the change waits for a restart (a staged firmware
        /// update, say): verified after the reboot.
        reboot_pending: bool,
    },
    /// A step failed (install error, verify mismatch, unhealthy afterwards).
    StepFailed {
        job: JobId,
        step: u16,
        reason: String,
    },
    /// A rollback the core asked for finished; `reason` says why it failed.
    RollbackFinished {
        job: JobId,
        ok: bool,
        reason: Option<String>,
    },
    /// A reboot the core asked for finished: the device came back with another boot
    /// id and every step it installed verified (`ok`), or `reason` says what failed.
    RebootFinished {
        job: JobId,
        ok: bool,
        reason: Option<String>,
    },
    /// An operator approved the ring waiting for approval.
    Approve,
    Pause,
    Resume,
    Abort,
    /// An operator asked to roll back. Without a scope: the ring running (or the one
    /// that ran last, if the next waits for its soak or approval) halts and is rolled
    /// back at its own pace, whatever the policy's `on_halt` says; once halted, every
    /// ring that installed is. With a scope: only the ring `ring`, or only the job
    /// `job` (a rollout still running halts first). Each ring at its own pace; devices
    /// whose install failed are rolled back too, and those whose rollback failed are
    /// tried again. See [`Core::rollback_candidates`].
    RollBack {
        ring: Option<u16>,
        job: Option<JobId>,
    },
    /// An operator retries the failed devices of the halted ring (all, or only `job`)
    /// after a fix: the ring runs again, those devices starting from the step that
    /// failed (from the first when they were rolled back), and the devices the halt
    /// rolled back installing again. See [`Core::retry_candidates`].
    Retry {
        job: Option<JobId>,
    },
    /// Devices that joined the inventory while the rollout runs, already assigned to a
    /// ring (and batch) by the policy's rules; see [`Core::add_devices`].
    DevicesAdded {
        ring: u16,
        jobs: Vec<DeviceJob>,
    },
}

/// What the core wants done. The executor records each durably before acting on it.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Install step `step` of `job` (the patch named in the spec).
    StartStep { job: JobId, step: u16 },
    /// Roll `job` back (every step it installed).
    StartRollback { job: JobId },
    /// Restart `job`'s device, wait for it to come back, verify its steps.
    StartReboot { job: JobId },
    /// A device did not report within the ring's unresponsive deadline: counted failed.
    DeviceUnresponsive { job: JobId, step: u16 },
    /// A ring finished and passed its gates.
    RingComplete { ring: u16 },
    /// The rollout halted in `ring`.
    Halt { ring: u16, reason: String },
    /// A ring waits for an operator's approval.
    AwaitApproval { ring: u16 },
    /// A ring that needs approval was approved by its `auto_approve` rule: `reason`
    /// says how the ring before it did.
    ApprovedByRule { ring: u16, reason: String },
    /// Every ring completed.
    Completed,
    /// Call again at this time (or on the next event, whichever comes first).
    WakeAt(Timestamp),
}

/// Where a device job is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Pending,
    /// Step `step` was started at `since` and has not reported.
    Running {
        step: u16,
        since: Timestamp,
    },
    /// Between steps: step `next` is due.
    Between {
        next: u16,
    },
    /// The steps before `next` are installed and the device must restart before step
    /// `next` (or, when none is left, before it is done); waits for the reboot window.
    RebootDue {
        next: u16,
    },
    /// The device was asked to restart at `since`; step `next` (or done) follows once
    /// it is back and verified.
    Rebooting {
        next: u16,
        since: Timestamp,
    },
    Done,
    Failed {
        reason: String,
    },
    RollingBack,
    RolledBack,
    /// The rollback failed, for `reason`.
    RollbackFailed {
        reason: String,
    },
}

impl JobState {
    /// Nothing more happens to the job by itself: its batch may be passed.
    fn is_terminal(&self) -> bool {
        matches!(
            self,
            JobState::Done
                | JobState::Failed { .. }
                | JobState::RolledBack
                | JobState::RollbackFailed { .. }
        )
    }
}

/// The rollout as a whole.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Installing in a ring.
    Running {
        ring: u16,
    },
    /// Ring `ring` completed; the next starts at `until`.
    Soaking {
        ring: u16,
        until: Timestamp,
    },
    /// The next ring needs approval.
    AwaitingApproval {
        ring: u16,
    },
    /// Halted; rolling back (or not) per policy.
    Halted {
        ring: u16,
        reason: String,
    },
    Completed,
    Aborted,
}

#[derive(Debug, Clone)]
struct Job {
    spec: DeviceJob,
    state: JobState,
    /// Steps that succeeded.
    done: u16,
    /// Its install failed (a step failed or the device went silent), whatever came
    /// after; cleared when an operator retries it.
    failed: bool,
    /// Why its install failed, kept when it is rolled back after.
    failure: Option<String>,
    /// The failure came in the middle of a step (the step may have changed the
    /// device half way: its rollback takes it back too), not at a reboot.
    failed_mid_step: bool,
    /// A step since the last restart needs one.
    needs_reboot: bool,
    /// Its steps are installed and a restart the ring's `reboot = "never"` did not do
    /// is pending.
    reboot_pending: bool,
}

/// One ring's jobs, with indices kept in step with them so that every event costs
/// time in proportion to what it changes, not to the size of the ring.
#[derive(Debug, Clone)]
struct RingState {
    jobs: Vec<Job>,
    /// When the ring opened for ordinary and for expedited steps.
    opened: Option<[Timestamp; 2]>,
    /// When the ring completed (the start of its soak).
    completed: Option<Timestamp>,
    /// How many jobs are in each state.
    counts: RingCounts,
    /// Jobs that failed (a step failed or went silent), whatever came after: a failed
    /// job that had installed a step is rolled back after a halt.
    failures: usize,
    /// Unfinished (not done, not failed) jobs per batch.
    unfinished: Vec<usize>,
    /// The batch being worked on: the lowest with unfinished jobs.
    batch: u32,
    /// Pending jobs of batches not yet open.
    later: Vec<Vec<u32>>,
    /// Pending jobs of open batches that may be tried now, in rollout order.
    ready: BTreeSet<u32>,
    /// Jobs between steps that may be tried now.
    between: BTreeSet<u32>,
    /// Pending or between jobs that may not start before a time.
    blocked: BTreeMap<Timestamp, Vec<u32>>,
    /// Running steps, by unresponsive deadline.
    running: BTreeSet<(Timestamp, u32)>,
    /// Rebooting devices, by their `reboot_timeout` deadline.
    rebooting: BTreeSet<(Timestamp, u32)>,
    reboot_timeout: Duration,
    /// Reboots started.
    reboots: usize,
    /// After a halt: jobs to roll back, in order.
    rollback_queue: VecDeque<u32>,
}

impl RingState {
    fn new(spec: &RingSpec, devices: Vec<DeviceJob>) -> RingState {
        let batches = devices
            .iter()
            .map(|d| d.batch as usize + 1)
            .max()
            .unwrap_or(1);
        let mut state = RingState {
            jobs: Vec::with_capacity(devices.len()),
            opened: None,
            completed: None,
            counts: RingCounts::default(),
            failures: 0,
            unfinished: vec![0; batches.max(spec.batches as usize)],
            batch: 0,
            later: vec![Vec::new(); batches.max(spec.batches as usize)],
            ready: BTreeSet::new(),
            between: BTreeSet::new(),
            blocked: BTreeMap::new(),
            running: BTreeSet::new(),
            rebooting: BTreeSet::new(),
            reboot_timeout: spec.reboot_timeout,
            reboots: 0,
            rollback_queue: VecDeque::new(),
        };
        for d in devices {
            state.push(d);
        }
        state.open_batches();
        state
    }

    /// Adds a pending job.
    fn push(&mut self, spec: DeviceJob) {
        let index = self.jobs.len() as u32;
        let batch = spec.batch as usize;
        if batch >= self.unfinished.len() {
            self.unfinished.resize(batch + 1, 0);
            self.later.resize(batch + 1, Vec::new());
        }
        self.unfinished[batch] += 1;
        self.counts.pending += 1;
        if spec.batch <= self.batch {
            self.ready.insert(index);
        } else {
            self.later[batch].push(index);
        }
        self.jobs.push(Job {
            spec,
            state: JobState::Pending,
            done: 0,
            failed: false,
            failure: None,
            failed_mid_step: false,
            needs_reboot: false,
            reboot_pending: false,
        });
    }

    /// Moves to the next batch while the current one is finished.
    fn open_batches(&mut self) {
        while self.unfinished[self.batch as usize] == 0
            && (self.batch as usize) + 1 < self.unfinished.len()
        {
            self.batch += 1;
            let jobs = std::mem::take(&mut self.later[self.batch as usize]);
            self.ready.extend(jobs);
        }
    }

    /// Changes a job's state, keeping counters and indices in step.
    fn set(&mut self, index: u32, state: JobState, deadline: Duration) {
        let job = &mut self.jobs[index as usize];
        let old = std::mem::replace(&mut job.state, state);
        let batch = job.spec.batch as usize;
        let pending_reboot = job.reboot_pending;
        match old {
            JobState::Running { since, .. } => {
                self.running.remove(&(add(since, deadline), index));
            }
            JobState::Rebooting { since, .. } => {
                self.rebooting
                    .remove(&(add(since, self.reboot_timeout), index));
                self.counts.rebooting -= 1;
            }
            JobState::RebootDue { .. } => {
                self.between.remove(&index);
                self.counts.rebooting -= 1;
            }
            JobState::Between { .. } => {
                self.between.remove(&index);
            }
            JobState::Done if pending_reboot => self.counts.reboot_pending -= 1,
            _ => {}
        }
        if old.is_terminal() {
            self.unfinished[batch] += 1;
        }
        *self.counts.slot(&old) -= 1;
        let new = &self.jobs[index as usize].state;
        match new {
            JobState::Running { since, .. } => {
                self.running.insert((add(*since, deadline), index));
            }
            JobState::Rebooting { since, .. } => {
                self.rebooting
                    .insert((add(*since, self.reboot_timeout), index));
                self.counts.rebooting += 1;
            }
            JobState::RebootDue { .. } => {
                self.between.insert(index);
                self.counts.rebooting += 1;
            }
            JobState::Between { .. } => {
                self.between.insert(index);
            }
            JobState::Done if pending_reboot => self.counts.reboot_pending += 1,
            _ => {}
        }
        if new.is_terminal() {
            self.unfinished[batch] -= 1;
        }
        let failure = match new {
            JobState::Failed { reason } => Some(reason.clone()),
            _ => None,
        };
        *self.counts.slot(new) += 1;
        if failure.is_some() {
            self.failures += 1;
            let job = &mut self.jobs[index as usize];
            job.failed = true;
            job.failure = failure;
        }
    }
}

/// The state machine. Build it with [`Core::new`], feed it with [`Core::handle`].
#[derive(Debug, Clone)]
pub struct Core {
    spec: RolloutSpec,
    rings: Vec<RingState>,
    phase: Phase,
    paused: bool,
    /// Decisions already emitted that must not repeat (approval requests, halts).
    announced_approval: Option<u16>,
    /// The halt rolls back its ring (the policy's `on_halt`, or an operator asked):
    /// jobs that finish a step after it join its rollback.
    halt_rolls_back: bool,
}

impl Core {
    /// The core takes the rings' devices out of `spec` (kept once, as its jobs: reach
    /// them with [`Core::job_spec`]); [`Core::spec`] keeps the gates.
    pub fn new(mut spec: RolloutSpec) -> Core {
        let rings = spec
            .rings
            .iter_mut()
            .map(|ring| {
                let devices = std::mem::take(&mut ring.devices);
                RingState::new(ring, devices)
            })
            .collect();
        Core {
            spec,
            rings,
            phase: Phase::Running { ring: 0 },
            paused: false,
            announced_approval: None,
            halt_rolls_back: false,
        }
    }

    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Halted with nothing left to happen by itself: no step running, no rollback
    /// running or waiting to start. Its wake-ups (deadlines of steps long finished) are
    /// then not worth waiting for; only an operator can move it.
    pub fn is_settled(&self) -> bool {
        matches!(self.phase, Phase::Halted { .. })
            && !self.paused
            && self.rings.iter().all(|r| {
                r.running.is_empty()
                    && r.rebooting.is_empty()
                    && r.counts.rolling_back == 0
                    && r.rollback_queue.is_empty()
            })
    }

    /// Jobs an operator's rollback with this scope would roll back now (see
    /// [`Event::RollBack`]): once halted, those of the scope that changed the device
    /// (a step installed, or one failed) and are not rolled back or rolling back yet,
    /// or whose rollback failed. Before a halt: those of the ring the halt would be in.
    pub fn rollback_candidates(&self, ring: Option<u16>, job: Option<JobId>) -> Vec<JobId> {
        let halted = match &self.phase {
            Phase::Halted { .. } => true,
            Phase::Completed | Phase::Aborted => return Vec::new(),
            _ => false,
        };
        let rings: Vec<u16> = match (ring, job) {
            (_, Some(job)) => vec![job.ring],
            (Some(ring), None) => vec![ring],
            (None, None) if halted => (0..self.rings.len() as u16).collect(),
            (None, None) => self.operator_ring().into_iter().collect(),
        };
        let mut out = Vec::new();
        for ring in rings {
            let Some(r) = self.rings.get(usize::from(ring)) else {
                continue;
            };
            for (index, j) in r.jobs.iter().enumerate() {
                let id = JobId {
                    ring,
                    index: index as u32,
                };
                if job.is_some_and(|job| job != id) {
                    continue;
                }
                let changed = j.done > 0 || j.failed;
                let eligible = match j.state {
                    JobState::Done
                    | JobState::Between { .. }
                    | JobState::RebootDue { .. }
                    | JobState::Failed { .. } => changed,
                    JobState::RollbackFailed { .. } => true,
                    _ => false,
                };
                if eligible {
                    out.push(id);
                }
            }
        }
        out
    }

    /// Jobs an operator's retry would run again now (see [`Event::Retry`]): once
    /// halted, with nothing running or rolling back in the halted ring, its jobs whose
    /// install failed (all, or only `job`); or why there are none, or why retrying
    /// them would halt again at once (the failures left out still exceed the ring's
    /// budget).
    pub fn retry_candidates(&self, job: Option<JobId>) -> Result<Vec<JobId>, String> {
        let Phase::Halted { ring, .. } = self.phase else {
            return Err("only a halted rollout can be retried".into());
        };
        let spec = &self.spec.rings[usize::from(ring)];
        let r = &self.rings[usize::from(ring)];
        if !r.running.is_empty()
            || !r.rebooting.is_empty()
            || r.counts.rolling_back > 0
            || !r.rollback_queue.is_empty()
        {
            return Err(format!(
                "ring {} still has steps, reboots or rollbacks running; retry once they finish",
                spec.name
            ));
        }
        if job.is_some_and(|job| job.ring != ring) {
            return Err(format!(
                "the device is not in ring {}, the ring that halted",
                spec.name
            ));
        }
        let failed: Vec<JobId> = (0..r.jobs.len() as u32)
            .map(|index| JobId { ring, index })
            .filter(|id| r.jobs[id.index as usize].failed)
            .collect();
        let chosen: Vec<JobId> = failed
            .iter()
            .copied()
            .filter(|id| job.is_none_or(|job| job == *id))
            .collect();
        if chosen.is_empty() {
            return Err(match job {
                Some(_) => "the device did not fail: nothing to retry".into(),
                None => format!("no device failed in ring {}: nothing to retry", spec.name),
            });
        }
        let left = failed.len() - chosen.len();
        let budget = spec.max_failures.of(r.jobs.len());
        if left > budget {
            return Err(format!(
                "{left} other failed devices keep ring {} over its failure budget of {budget}: retry them all",
                spec.name
            ));
        }
        Ok(chosen)
    }

    /// The ring an operator's rollback halts: the one running, or the one that ran
    /// last if the next waits for its soak or approval.
    fn operator_ring(&self) -> Option<u16> {
        match &self.phase {
            Phase::Running { ring } | Phase::Soaking { ring, .. } => Some(*ring),
            Phase::AwaitingApproval { ring } => ring.checked_sub(1),
            Phase::Halted { ring, .. } => Some(*ring),
            Phase::Completed | Phase::Aborted => None,
        }
    }

    /// The rollout's gates (its rings' `devices` are empty: see [`Core::new`]).
    pub fn spec(&self) -> &RolloutSpec {
        &self.spec
    }

    /// The state of a job.
    pub fn job(&self, job: JobId) -> Option<&JobState> {
        self.rings
            .get(usize::from(job.ring))?
            .jobs
            .get(job.index as usize)
            .map(|j| &j.state)
    }

    /// The spec of a job.
    pub fn job_spec(&self, job: JobId) -> Option<&DeviceJob> {
        self.rings
            .get(usize::from(job.ring))?
            .jobs
            .get(job.index as usize)
            .map(|j| &j.spec)
    }

    /// How many steps a rollback of `job` takes back: those that succeeded, and the
    /// one that failed (a failed install may have changed the device half way).
    pub fn job_rollback_steps(&self, job: JobId) -> u16 {
        self.rings
            .get(usize::from(job.ring))
            .and_then(|r| r.jobs.get(job.index as usize))
            .map_or(0, |j| {
                let failed = matches!(j.state, JobState::RollingBack) && j.failed_mid_step;
                (j.done + u16::from(failed)).min(j.spec.steps.len() as u16)
            })
    }

    /// The job's steps are installed and a restart the ring's `reboot = "never"`
    /// did not do is pending.
    pub fn job_reboot_pending(&self, job: JobId) -> bool {
        self.rings
            .get(usize::from(job.ring))
            .and_then(|r| r.jobs.get(job.index as usize))
            .is_some_and(|j| j.reboot_pending)
    }

    /// Reboots started in ring `ring` so far.
    pub fn reboots(&self, ring: u16) -> usize {
        self.rings.get(usize::from(ring)).map_or(0, |r| r.reboots)
    }

    /// Why the job's install failed, whatever came after (a rollback, say).
    pub fn job_failure(&self, job: JobId) -> Option<&str> {
        self.rings
            .get(usize::from(job.ring))
            .and_then(|r| r.jobs.get(job.index as usize))
            .and_then(|j| j.failure.as_deref())
    }

    /// The job's install failed (whatever came after).
    pub fn job_failed(&self, job: JobId) -> bool {
        self.rings
            .get(usize::from(job.ring))
            .and_then(|r| r.jobs.get(job.index as usize))
            .is_some_and(|j| j.failed)
    }

    /// How many steps of a job succeeded.
    pub fn job_steps_done(&self, job: JobId) -> u16 {
        self.rings
            .get(usize::from(job.ring))
            .and_then(|r| r.jobs.get(job.index as usize))
            .map_or(0, |j| j.done)
    }

    /// Number of rings.
    pub fn ring_count(&self) -> usize {
        self.rings.len()
    }

    /// Number of jobs in a ring.
    pub fn ring_len(&self, ring: u16) -> usize {
        self.rings
            .get(usize::from(ring))
            .map_or(0, |r| r.jobs.len())
    }

    /// Steps running in a ring now (started, not yet reported).
    pub fn running_steps(&self, ring: u16) -> usize {
        self.rings
            .get(usize::from(ring))
            .map_or(0, |r| r.running.len())
    }

    /// Per ring: how many jobs are in each state.
    pub fn counts(&self, ring: u16) -> RingCounts {
        self.rings[usize::from(ring)].counts
    }

    /// Devices of ring `ring` whose install failed (a step failed, or the device went
    /// silent past its deadline), whatever came after: [`RingCounts::failed`] counts
    /// those still failed, while a failed device that had installed a step is rolled
    /// back after a halt and counted as rolling or rolled back. The failure budget and
    /// halt reasons count these.
    pub fn failures(&self, ring: u16) -> usize {
        self.rings[usize::from(ring)].failures
    }

    /// Applies `event` at `now` and returns what to do next. Deterministic: the same
    /// spec and the same (time, event) sequence always give the same decisions.
    pub fn handle(&mut self, now: Timestamp, event: Event) -> Vec<Decision> {
        let mut out = Vec::new();
        match event {
            Event::Tick => {}
            Event::StepSucceeded {
                job,
                step,
                reboot_pending,
            } => {
                if let Some((r, j)) = self.running_job(job, step) {
                    let spec = &self.spec.rings[r];
                    let (deadline, policy) = (spec.unresponsive_after, spec.reboot);
                    let ring = &mut self.rings[r];
                    let jb = &mut ring.jobs[j];
                    let done = step + 1;
                    jb.done = done;
                    let last = usize::from(done) >= jb.spec.steps.len();
                    let this = &jb.spec.steps[usize::from(step)];
                    let planned = this.reboot_after;
                    if reboot_pending || this.reboot_required {
                        jb.needs_reboot = true;
                    }
                    let reboot = match policy {
                        Reboot::Never => {
                            jb.reboot_pending |= jb.needs_reboot;
                            false
                        }
                        Reboot::IfNeeded => jb.needs_reboot && (last || planned),
                        Reboot::Always => last || (jb.needs_reboot && planned),
                    };
                    let next = if reboot {
                        jb.needs_reboot = true;
                        JobState::RebootDue { next: done }
                    } else if last {
                        JobState::Done
                    } else {
                        JobState::Between { next: done }
                    };
                    ring.set(job.index, next, deadline);
                    self.queue_rollback_if_halted(job);
                }
            }
            Event::StepFailed { job, step, reason } => {
                if let Some((r, j)) = self.running_job(job, step) {
                    let deadline = self.spec.rings[r].unresponsive_after;
                    self.rings[r].jobs[j].failed_mid_step = true;
                    self.rings[r].set(job.index, JobState::Failed { reason }, deadline);
                    self.queue_rollback_if_halted(job);
                }
            }
            Event::RebootFinished { job, ok, reason } => {
                let r = usize::from(job.ring);
                if let Some(j) = self.job_mut(job)
                    && let JobState::Rebooting { next, .. } = j.state
                {
                    let last = usize::from(next) >= j.spec.steps.len();
                    let state = if !ok {
                        JobState::Failed {
                            reason: reason.unwrap_or_else(|| "the reboot failed".into()),
                        }
                    } else {
                        j.needs_reboot = false;
                        if last {
                            JobState::Done
                        } else {
                            JobState::Between { next }
                        }
                    };
                    let deadline = self.spec.rings[r].unresponsive_after;
                    self.rings[r].set(job.index, state, deadline);
                    self.queue_rollback_if_halted(job);
                }
            }
            Event::RollbackFinished { job, ok, reason } => {
                if let Some(j) = self.job_mut(job)
                    && j.state == JobState::RollingBack
                {
                    let r = usize::from(job.ring);
                    let deadline = self.spec.rings[r].unresponsive_after;
                    let state = if ok {
                        JobState::RolledBack
                    } else {
                        JobState::RollbackFailed {
                            reason: reason.unwrap_or_else(|| "the rollback failed".into()),
                        }
                    };
                    self.rings[r].set(job.index, state, deadline);
                }
            }
            Event::Approve => {
                if let Phase::AwaitingApproval { ring } = self.phase {
                    self.open_ring(ring, now, now);
                }
            }
            Event::Pause => self.paused = true,
            Event::Resume => self.paused = false,
            Event::RollBack { ring, job } => {
                let halted = matches!(self.phase, Phase::Halted { .. });
                if let Some(halt_ring) = self.operator_ring() {
                    let candidates = self.rollback_candidates(ring, job);
                    if !halted {
                        // Without a scope the halt rolls its ring back as the
                        // policy's would; with one, only what the scope names.
                        let whole = ring.is_none() && job.is_none();
                        self.halt(
                            halt_ring,
                            "an operator asked for a rollback".into(),
                            whole,
                            &mut out,
                        );
                    }
                    if halted || ring.is_some() || job.is_some() {
                        for id in candidates {
                            let queue = &mut self.rings[usize::from(id.ring)].rollback_queue;
                            if !queue.contains(&id.index) {
                                queue.push_back(id.index);
                            }
                        }
                    }
                }
            }
            Event::Retry { job } => self.retry(job),
            Event::Abort => {
                if !matches!(self.phase, Phase::Completed) {
                    self.phase = Phase::Aborted;
                }
            }
            Event::DevicesAdded { ring, jobs } => self.add_devices(ring, jobs),
        }
        self.advance(now, &mut out);
        out
    }

    fn job_mut(&mut self, id: JobId) -> Option<&mut Job> {
        self.rings
            .get_mut(usize::from(id.ring))?
            .jobs
            .get_mut(id.index as usize)
    }

    /// The ring and index of `job` if its step `step` is running.
    fn running_job(&self, job: JobId, step: u16) -> Option<(usize, usize)> {
        let r = usize::from(job.ring);
        let j = job.index as usize;
        let state = &self.rings.get(r)?.jobs.get(j)?.state;
        matches!(state, JobState::Running { step: s, .. } if *s == step).then_some((r, j))
    }

    /// A job that finishes a step after its ring halted is rolled back too, when the
    /// halt rolls back (a failed one only when failed devices are).
    fn queue_rollback_if_halted(&mut self, job: JobId) {
        if let Phase::Halted { ring, .. } = self.phase
            && ring == job.ring
            && self.halt_rolls_back
            && self.rolls_back(&self.rings[usize::from(ring)].jobs[job.index as usize])
        {
            self.rings[usize::from(ring)]
                .rollback_queue
                .push_back(job.index);
        }
    }

    /// New devices go to their ring's matching batch; when their ring is already done
    /// (or running past that batch), to the next batch of the ring running now (or its
    /// last batch).
    fn add_devices(&mut self, ring: u16, jobs: Vec<DeviceJob>) {
        let current = match self.phase {
            Phase::Running { ring } | Phase::AwaitingApproval { ring } => ring,
            Phase::Soaking { ring, .. } => ring + 1,
            _ => return,
        };
        let target = ring.max(current).min(self.spec.rings.len() as u16 - 1);
        let last_batch = self.spec.rings[usize::from(target)]
            .batches
            .saturating_sub(1);
        let state = &mut self.rings[usize::from(target)];
        let running_batch = state.batch;
        for mut job in jobs {
            if target != ring || job.batch < running_batch {
                job.batch = (running_batch + 1).min(last_batch.max(running_batch));
            }
            state.push(job);
        }
    }

    fn open_ring(&mut self, ring: u16, ordinary: Timestamp, expedited: Timestamp) {
        self.rings[usize::from(ring)].opened = Some([ordinary, expedited]);
        self.phase = Phase::Running { ring };
    }

    /// Moves the rollout forward as far as it can at `now`.
    fn advance(&mut self, now: Timestamp, out: &mut Vec<Decision>) {
        let mut wake: Option<Timestamp> = None;
        let note = |t: Timestamp, wake: &mut Option<Timestamp>| {
            if t > now && t < NEVER && wake.is_none_or(|w| t < w) {
                *wake = Some(t);
            }
        };
        // Each pass may change the phase; a few passes settle it.
        for _ in 0..(self.spec.rings.len() * 3 + 3) {
            match self.phase.clone() {
                Phase::Completed | Phase::Aborted => break,
                Phase::Halted { .. } => {
                    self.roll_back(out);
                    break;
                }
                Phase::AwaitingApproval { ring } => {
                    if self.announced_approval != Some(ring) {
                        self.announced_approval = Some(ring);
                        out.push(Decision::AwaitApproval { ring });
                    }
                    break;
                }
                Phase::Soaking { ring, until } => {
                    let next = ring + 1;
                    if usize::from(next) >= self.spec.rings.len() {
                        self.phase = Phase::Completed;
                        out.push(Decision::Completed);
                        break;
                    }
                    // Expedited steps may enter the next ring before the full soak.
                    let soak = self.spec.rings[usize::from(ring)].soak;
                    let completed_at = self.rings[usize::from(ring)].completed.unwrap_or(until);
                    let short = scale(soak, self.spec.expedite_soak_factor);
                    let expedited_at = add(completed_at, short);
                    // A soak that ends never keeps waiting whatever the time.
                    let soaking = now < until || until >= NEVER;
                    if soaking && !self.has_expedited(next) {
                        note(until, &mut wake);
                        break;
                    }
                    if self.spec.rings[usize::from(next)].approval {
                        if soaking {
                            note(until, &mut wake);
                            break;
                        }
                        if let Some(reason) = self.approved_by_rule(ring, next) {
                            out.push(Decision::ApprovedByRule { ring: next, reason });
                            self.open_ring(next, until, expedited_at.min(until));
                            continue;
                        }
                        self.phase = Phase::AwaitingApproval { ring: next };
                        continue;
                    }
                    self.open_ring(next, until, expedited_at.min(until));
                    continue;
                }
                Phase::Running { ring } => {
                    if self.rings[usize::from(ring)].opened.is_none() {
                        self.rings[usize::from(ring)].opened = Some([now, now]);
                    }
                    self.check_unresponsive(ring, now, out, &mut wake);
                    let rolls_back = self.spec.on_halt == OnHalt::RollbackFailedRing;
                    if let Some(reason) = self.budget_exceeded(ring) {
                        self.halt(ring, reason, rolls_back, out);
                        continue;
                    }
                    if self.ring_finished(ring) {
                        if let Some(reason) = self.threshold_missed(ring) {
                            self.halt(ring, reason, rolls_back, out);
                            continue;
                        }
                        self.rings[usize::from(ring)].completed = Some(now);
                        out.push(Decision::RingComplete { ring });
                        // An empty ring has nothing to soak.
                        let soak = if self.rings[usize::from(ring)].jobs.is_empty() {
                            Duration::ZERO
                        } else {
                            self.spec.rings[usize::from(ring)].soak
                        };
                        let until = add(now, soak);
                        self.phase = Phase::Soaking { ring, until };
                        continue;
                    }
                    if !self.paused {
                        self.start_steps(ring, now, out, &mut wake);
                        // Devices with nothing to install are done at once: a ring of
                        // only those is finished now, not at some later event.
                        if self.ring_finished(ring) {
                            continue;
                        }
                    }
                    break;
                }
            }
        }
        // A soaking rollout may also run expedited steps in the next ring.
        if let Some(w) = wake {
            out.push(Decision::WakeAt(w));
        }
    }

    /// Whether ring `next`'s `auto_approve` holds for `ring`, the one before it: the
    /// reason, said as the audit trail shows it.
    fn approved_by_rule(&self, ring: u16, next: u16) -> Option<String> {
        let rule = self.spec.rings[usize::from(next)].auto_approve?;
        let r = &self.rings[usize::from(ring)];
        let share = if r.jobs.is_empty() {
            100.0
        } else {
            r.counts.done as f64 * 100.0 / r.jobs.len() as f64
        };
        (share >= rule.success && r.failures <= rule.failures as usize).then(|| {
            format!(
                "ring {} succeeded on {share:.1}% of its devices (at least {}%) with {} failed (at most {})",
                self.spec.rings[usize::from(ring)].name,
                rule.success,
                r.failures,
                rule.failures
            )
        })
    }

    fn has_expedited(&self, ring: u16) -> bool {
        self.spec.expedite_soak_factor < 1.0
            && self.rings[usize::from(ring)]
                .jobs
                .iter()
                .any(|j| j.spec.steps.iter().any(|s| s.expedited))
    }

    /// Nothing left to run in the ring: every job done, failed, or (a failed one left
    /// out of an operator's retry) rolled back.
    fn ring_finished(&self, ring: u16) -> bool {
        let c = &self.rings[usize::from(ring)].counts;
        c.pending + c.active + c.rolling_back == 0
    }

    /// Failures beyond the ring's budget: the rollout halts.
    fn budget_exceeded(&self, ring: u16) -> Option<String> {
        let r = &self.rings[usize::from(ring)];
        let budget = self.spec.rings[usize::from(ring)]
            .max_failures
            .of(r.jobs.len());
        (r.failures > budget).then(|| {
            format!(
                "{} of {} devices failed in ring {}, over its failure budget of {budget}",
                r.failures,
                r.jobs.len(),
                self.spec.rings[usize::from(ring)].name
            )
        })
    }

    fn threshold_missed(&self, ring: u16) -> Option<String> {
        let threshold = self.spec.rings[usize::from(ring)].success_threshold?;
        let r = &self.rings[usize::from(ring)];
        if r.jobs.is_empty() {
            return None;
        }
        let share = r.counts.done as f64 * 100.0 / r.jobs.len() as f64;
        (share < threshold).then(|| {
            format!(
                "only {share:.1}% of ring {} succeeded, below its success threshold of {threshold}%",
                self.spec.rings[usize::from(ring)].name
            )
        })
    }

    /// Whether the halt's rollback takes `job` back: it installed a step (and is not
    /// running one), or its install failed and the policy rolls failed devices back.
    fn rolls_back(&self, job: &Job) -> bool {
        match job.state {
            JobState::Failed { .. } => self.spec.failed_devices == FailedDevices::Rollback,
            JobState::Done | JobState::Between { .. } | JobState::RebootDue { .. } => job.done > 0,
            _ => false,
        }
    }

    /// Halts in `ring`; with `roll_back` (the policy's `on_halt`, or an operator's
    /// rollback of the whole ring) queues the ring's jobs to roll back.
    fn halt(&mut self, ring: u16, reason: String, roll_back: bool, out: &mut Vec<Decision>) {
        out.push(Decision::Halt {
            ring,
            reason: reason.clone(),
        });
        self.phase = Phase::Halted { ring, reason };
        self.halt_rolls_back = roll_back;
        if !roll_back {
            return;
        }
        // Devices that installed at least one step (and, per policy, those whose
        // install failed), in rollout order; those still running join the queue when
        // they report.
        let r = &self.rings[usize::from(ring)];
        let queue = (0..r.jobs.len() as u32)
            .filter(|&i| self.rolls_back(&r.jobs[i as usize]))
            .collect();
        self.rings[usize::from(ring)].rollback_queue = queue;
    }

    /// Rolls back the queued jobs of every ring, each ring at its own pace.
    fn roll_back(&mut self, out: &mut Vec<Decision>) {
        if self.paused {
            return;
        }
        for ring in 0..self.rings.len() as u16 {
            let spec = &self.spec.rings[usize::from(ring)];
            let limit = spec.max_parallel.map_or(usize::MAX, |m| m as usize);
            let deadline = spec.unresponsive_after;
            let r = &mut self.rings[usize::from(ring)];
            while r.counts.rolling_back + r.counts.active < limit {
                let Some(index) = r.rollback_queue.pop_front() else {
                    break;
                };
                if matches!(
                    r.jobs[index as usize].state,
                    JobState::RollingBack
                        | JobState::RolledBack
                        | JobState::Pending
                        | JobState::Running { .. }
                        | JobState::Rebooting { .. }
                ) {
                    continue;
                }
                r.set(index, JobState::RollingBack, deadline);
                out.push(Decision::StartRollback {
                    job: JobId { ring, index },
                });
            }
        }
    }

    /// An operator's retry of the halted ring's failed jobs (all, or only `job`): the
    /// ring runs again.
    fn retry(&mut self, job: Option<JobId>) {
        let Ok(candidates) = self.retry_candidates(job) else {
            return;
        };
        let Phase::Halted { ring, .. } = self.phase else {
            return;
        };
        let deadline = self.spec.rings[usize::from(ring)].unresponsive_after;
        let r = &mut self.rings[usize::from(ring)];
        r.rollback_queue.clear();
        let retried: BTreeSet<u32> = candidates.iter().map(|id| id.index).collect();
        for index in 0..r.jobs.len() as u32 {
            let j = &r.jobs[index as usize];
            let rolled = matches!(
                j.state,
                JobState::RolledBack | JobState::RollbackFailed { .. }
            );
            let next = if retried.contains(&index) {
                // From the step that failed, or from the first once rolled back.
                Some(if rolled { 0 } else { j.done })
            } else if rolled && !j.failed {
                // Rolled back because of the halt: it installs again.
                Some(0)
            } else {
                None
            };
            let Some(next) = next else {
                continue;
            };
            if j.failed {
                r.failures = r.failures.saturating_sub(1);
            }
            let j = &mut r.jobs[index as usize];
            // A device that failed at its reboot (not in a step) reboots again first.
            let reboot = next > 0 && j.needs_reboot && !j.failed_mid_step && !rolled;
            j.failed = false;
            j.failure = None;
            j.failed_mid_step = false;
            j.done = next;
            if next == 0 {
                j.needs_reboot = false;
                j.reboot_pending = false;
            }
            let state = if next == 0 {
                JobState::Pending
            } else if reboot {
                JobState::RebootDue { next }
            } else {
                JobState::Between { next }
            };
            r.set(index, state, deadline);
            if next == 0 {
                r.ready.insert(index);
            }
        }
        self.rings[usize::from(ring)].completed = None;
        self.halt_rolls_back = false;
        self.phase = Phase::Running { ring };
    }

    /// Running steps past the unresponsive deadline count as failed.
    fn check_unresponsive(
        &mut self,
        ring: u16,
        now: Timestamp,
        out: &mut Vec<Decision>,
        wake: &mut Option<Timestamp>,
    ) {
        let deadline = self.spec.rings[usize::from(ring)].unresponsive_after;
        let r = &mut self.rings[usize::from(ring)];
        while let Some(&(due, index)) = r.running.first() {
            if due > now || due >= NEVER {
                if due < NEVER && wake.is_none_or(|w| due < w) {
                    *wake = Some(due);
                }
                break;
            }
            let JobState::Running { step, .. } = r.jobs[index as usize].state else {
                r.running.remove(&(due, index));
                continue;
            };
            r.set(
                index,
                JobState::Failed {
                    reason: format!(
                        "no report within {} (unresponsive)",
                        humantime::format_duration(deadline)
                    ),
                },
                deadline,
            );
            r.jobs[index as usize].failed_mid_step = true;
            out.push(Decision::DeviceUnresponsive {
                job: JobId { ring, index },
                step,
            });
        }
        let timeout = r.reboot_timeout;
        while let Some(&(due, index)) = r.rebooting.first() {
            if due > now || due >= NEVER {
                if due < NEVER && wake.is_none_or(|w| due < w) {
                    *wake = Some(due);
                }
                break;
            }
            let JobState::Rebooting { next, .. } = r.jobs[index as usize].state else {
                r.rebooting.remove(&(due, index));
                continue;
            };
            r.set(
                index,
                JobState::Failed {
                    reason: format!(
                        "not back from its reboot within {} (unresponsive)",
                        humantime::format_duration(timeout)
                    ),
                },
                deadline,
            );
            out.push(Decision::DeviceUnresponsive {
                job: JobId { ring, index },
                step: next.saturating_sub(1),
            });
        }
    }

    /// Starts every step that may start now; notes when the next one may. Jobs that
    /// may not start yet wait in `blocked` until their time, so each event only looks
    /// at jobs that can move.
    fn start_steps(
        &mut self,
        ring: u16,
        now: Timestamp,
        out: &mut Vec<Decision>,
        wake: &mut Option<Timestamp>,
    ) {
        let spec = &self.spec.rings[usize::from(ring)];
        let deadline = spec.unresponsive_after;
        let Some(opened) = self.rings[usize::from(ring)].opened else {
            return;
        };
        let limit = spec.max_parallel.map_or(usize::MAX, |m| m as usize);
        let skip_window = self.spec.expedite_skips_window;
        let freezes = &self.spec.freezes;
        let r = &mut self.rings[usize::from(ring)];
        r.open_batches();
        // Jobs whose wait is over may be tried again.
        while let Some(entry) = r.blocked.first_entry() {
            if *entry.key() > now || *entry.key() >= NEVER {
                break;
            }
            for index in entry.remove() {
                match r.jobs[index as usize].state {
                    JobState::Pending => {
                        r.ready.insert(index);
                    }
                    JobState::Between { .. } | JobState::RebootDue { .. } => {
                        r.between.insert(index);
                    }
                    _ => {}
                }
            }
        }
        // When may `job` start its next step: now, or a later time.
        let allowed = |job: &Job, next: u16| -> Option<Timestamp> {
            let step = job.spec.steps.get(usize::from(next))?;
            let open = opened[usize::from(step.expedited)];
            let t = open.max(step.not_before.unwrap_or(open)).max(now);
            let window = if step.expedited && skip_window {
                None
            } else {
                spec.window.as_ref()
            };
            Some(schedule::earliest(t, &job.spec.timezone, window, freezes).at)
        };
        // When may `job` restart: inside the reboot window (the ring's when the
        // policy names none; none for a job with an expedited step when expedited
        // steps skip windows), outside freezes.
        let reboot_window = spec.reboot_window.as_ref().or(spec.window.as_ref());
        let reboot_allowed = |job: &Job| -> Timestamp {
            let expedited = skip_window && job.spec.steps.iter().any(|s| s.expedited);
            let window = if expedited { None } else { reboot_window };
            schedule::earliest(now, &job.spec.timezone, window, freezes).at
        };
        // Devices between steps already hold a slot.
        let between: Vec<u32> = r.between.iter().copied().collect();
        for index in between {
            let job = &r.jobs[index as usize];
            let next = match job.state {
                JobState::Between { next } => next,
                JobState::RebootDue { next } => {
                    let t = reboot_allowed(job);
                    if t > now || t >= NEVER {
                        r.between.remove(&index);
                        r.blocked.entry(t).or_default().push(index);
                    } else {
                        r.set(index, JobState::Rebooting { next, since: now }, deadline);
                        r.reboots += 1;
                        out.push(Decision::StartReboot {
                            job: JobId { ring, index },
                        });
                    }
                    continue;
                }
                _ => continue,
            };
            match allowed(job, next) {
                Some(t) if t > now || t >= NEVER => {
                    r.between.remove(&index);
                    r.blocked.entry(t).or_default().push(index);
                }
                _ => {
                    r.set(
                        index,
                        JobState::Running {
                            step: next,
                            since: now,
                        },
                        deadline,
                    );
                    out.push(Decision::StartStep {
                        job: JobId { ring, index },
                        step: next,
                    });
                }
            }
        }
        // New devices, in rollout order, while slots are free.
        while r.counts.active < limit {
            let Some(index) = r.ready.pop_first() else {
                break;
            };
            let job = &r.jobs[index as usize];
            if job.state != JobState::Pending {
                continue;
            }
            if job.spec.steps.is_empty() {
                // A device with nothing to install is done at once.
                r.set(index, JobState::Done, deadline);
                continue;
            }
            match allowed(job, 0) {
                Some(t) if t > now || t >= NEVER => r.blocked.entry(t).or_default().push(index),
                _ => {
                    r.set(
                        index,
                        JobState::Running {
                            step: 0,
                            since: now,
                        },
                        deadline,
                    );
                    out.push(Decision::StartStep {
                        job: JobId { ring, index },
                        step: 0,
                    });
                }
            }
        }
        let next_blocked = r.blocked.keys().next().copied();
        let next_due = r.running.first().map(|(due, _)| *due);
        let next_back = r.rebooting.first().map(|(due, _)| *due);
        for t in [next_blocked, next_due, next_back].into_iter().flatten() {
            if t > now && t < NEVER && wake.is_none_or(|w| t < w) {
                *wake = Some(t);
            }
        }
    }
}

/// Per-ring job counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingCounts {
    pub pending: usize,
    /// Running a step, or between steps.
    pub active: usize,
    pub done: usize,
    pub failed: usize,
    pub rolling_back: usize,
    pub rolled_back: usize,
    pub rollback_failed: usize,
    /// Of `active`: restarting, or waiting for the reboot window.
    pub rebooting: usize,
    /// Of `done`: installed, with a restart the ring's `reboot = "never"` left pending.
    pub reboot_pending: usize,
}

impl RingCounts {
    /// The counter of `state`.
    fn slot(&mut self, state: &JobState) -> &mut usize {
        match state {
            JobState::Pending => &mut self.pending,
            JobState::Running { .. }
            | JobState::Between { .. }
            | JobState::RebootDue { .. }
            | JobState::Rebooting { .. } => &mut self.active,
            JobState::Done => &mut self.done,
            JobState::Failed { .. } => &mut self.failed,
            JobState::RollingBack => &mut self.rolling_back,
            JobState::RolledBack => &mut self.rolled_back,
            JobState::RollbackFailed { .. } => &mut self.rollback_failed,
        }
    }
}

/// `t + d`, saturating at [`NEVER`]: a soak or deadline too long for the calendar
/// ends never, it does not vanish.
pub(crate) fn add(t: Timestamp, d: Duration) -> Timestamp {
    schedule::add(t, d)
}

/// `d * factor`, the factor within 0-1 (one that is not a number shortens nothing).
fn scale(d: Duration, factor: f64) -> Duration {
    let factor = if factor.is_nan() {
        1.0
    } else {
        factor.clamp(0.0, 1.0)
    };
    Duration::try_from_secs_f64(d.as_secs_f64() * factor).map_or(d, |short| short.min(d))
}

#[cfg(test)]
mod tests;
