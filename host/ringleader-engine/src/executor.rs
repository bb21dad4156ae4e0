//! The executor: runs the core's decisions through installer plugins and feeds the
//! results back as events.
//!
//! Two ways to keep time ([`Timing`]), one loop:
//! - virtual time, for simulations (`ringleader demo`, scenario tests): plugin calls
//!   run for real (through the sandboxed runtime, with bounded concurrency), while
//!   their completion is delivered at a virtual time given by the simulated fleet's
//!   model (install durations, devices that never report). Virtual time only moves
//!   when every plugin call in flight has returned, to the next due result, core
//!   wake-up or scheduled command, so a run is deterministic however calls interleave,
//!   and weeks of soaks and windows pass in seconds;
//! - real time: results are fed to the core as calls return, and the executor sleeps
//!   until the core's next wake-up.
//!
//! Operators act through [`Command`]s, either scheduled at a time or sent on a channel
//! while the rollout runs; they are logged like every other event.

use crate::clock::VirtualClock;
use crate::core::{Core, Decision, DeviceJob, Event, JobId, JobState, Phase, RolloutSpec, add};
use crate::store::{Note, Record, Status, Store, StoreError, StoredDevice, StoredEvent};
use jiff::Timestamp;
use ringleader_planner::policy::Reboot;
use ringleader_runtime::Plugin;
use ringleader_runtime::sim_device::SimDevices;
use ringleader_types::{Device, Patch, Readiness, RollbackTarget};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

pub mod horizon;
mod reboot;
pub use reboot::REBOOT_POLL;

/// The next command, or never when there is no channel (for `select!`).
async fn recv(control: &mut Option<mpsc::UnboundedReceiver<Command>>) -> Option<Command> {
    match control {
        Some(control) => control.recv().await,
        None => std::future::pending().await,
    }
}

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
    /// Reboots take between these.
    pub reboot_min: Duration,
    pub reboot_max: Duration,
    /// Reboots (per mille) after which the device never comes back.
    pub reboot_hang_permille: u64,
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

    /// How long a device's reboot at `since` takes, or `None` if it never comes back.
    pub fn reboot(&self, device: &str, since: Timestamp) -> Option<Duration> {
        let at = since.as_second().to_string();
        if self.draw(device, &at, "reboot-hang") % 1000 < self.reboot_hang_permille {
            return None;
        }
        let span = self
            .reboot_max
            .saturating_sub(self.reboot_min)
            .as_secs()
            .max(1);
        Some(self.reboot_min + Duration::from_secs(self.draw(device, &at, "reboot") % span))
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

/// The installer plugins of a rollout. A device names its own (the inventory's
/// `installer`, shown to plugins as the fact `installer`); the others use the default.
#[derive(Debug, Clone)]
pub struct Installers {
    default: Plugin,
    named: HashMap<String, Plugin>,
}

impl Installers {
    /// A rollout with one installer, the default for every device.
    pub fn new(default: Plugin) -> Installers {
        let named = HashMap::from([(default.name().to_string(), default.clone())]);
        Installers { default, named }
    }

    /// Adds an installer devices may name (by its manifest's name).
    pub fn with(mut self, plugin: Plugin) -> Installers {
        self.named.insert(plugin.name().to_string(), plugin);
        self
    }

    /// Names of the installers, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.named.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// The installer `device`'s patches go through; an error names the one it asks for
    /// when the rollout did not load it.
    pub fn for_device(&self, device: &Device) -> Result<&Plugin, String> {
        match device.facts.iter().find(|(k, _)| k == "installer") {
            None => Ok(&self.default),
            Some((_, name)) => self.named.get(name).ok_or_else(|| {
                format!(
                    "{} names the installer `{name}`, which this rollout did not load (it has: {})",
                    device.id,
                    self.names().join(", ")
                )
            }),
        }
    }
}

/// How the executor keeps time.
#[derive(Debug, Clone)]
pub enum Timing {
    /// Virtual time: a step's result is delivered when the simulated fleet says the
    /// device finishes, and time jumps to the next thing due once every plugin call in
    /// flight has returned. Deterministic however calls interleave.
    Virtual(SimTiming),
    /// Real time: results are delivered as calls return, and the executor sleeps until
    /// the next thing due (a wake-up the core asked for, or a scheduled command).
    Real,
}

/// Something from outside the rollout: an operator's action, devices joining, or a
/// question about the rollout's state.
pub enum Command {
    Approve,
    Pause,
    Resume,
    Abort,
    /// Roll back: the running ring (halting it), or after a halt every ring that
    /// installed; or only ring `ring`, or only job `job` (see [`Event::RollBack`]).
    RollBack {
        ring: Option<u16>,
        job: Option<JobId>,
    },
    /// Retry the halted ring's failed devices, or only `job` (see [`Event::Retry`]).
    Retry {
        job: Option<JobId>,
    },
    /// Devices added to the inventory, already placed in rings by the policy's rules
    /// (see [`crate::spec::join`]).
    Join(Joining),
    /// Who asked for the command that follows, for the audit trail: logged as a
    /// [`Record::Audit`].
    Audit {
        by: String,
        action: String,
    },
    /// Looks at the core, between events (not logged): how an API answers questions
    /// about devices while the rollout runs.
    Inspect(Inspector),
    /// Stop running (the process is shutting down): calls in flight get `grace` to
    /// finish, then are cancelled; everything is flushed and `run` returns with the
    /// rollout unfinished. Steps whose result was not logged are verified first on
    /// the next start, as after a crash.
    Shutdown {
        grace: Duration,
    },
}

/// A look at the core and the rollout's time.
pub type Inspector = Box<dyn FnOnce(&Core, Timestamp) + Send>;

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Approve => f.write_str("Approve"),
            Command::Pause => f.write_str("Pause"),
            Command::Resume => f.write_str("Resume"),
            Command::Abort => f.write_str("Abort"),
            Command::RollBack { ring, job } => f
                .debug_struct("RollBack")
                .field("ring", ring)
                .field("job", job)
                .finish(),
            Command::Retry { job } => f.debug_struct("Retry").field("job", job).finish(),
            Command::Join(joining) => f.debug_tuple("Join").field(joining).finish(),
            Command::Audit { by, action } => f
                .debug_struct("Audit")
                .field("by", by)
                .field("action", action)
                .finish(),
            Command::Inspect(_) => f.write_str("Inspect"),
            Command::Shutdown { grace } => {
                f.debug_struct("Shutdown").field("grace", grace).finish()
            }
        }
    }
}

/// Devices joining a running rollout.
#[derive(Debug, Clone, Default)]
pub struct Joining {
    /// Their jobs, by the ring the policy places them in.
    pub rings: Vec<(u16, Vec<DeviceJob>)>,
    /// What plugins need to reach them: the devices and their patches.
    pub targets: Targets,
}

/// How a run ended, with counters a demo reports.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub phase: Phase,
    pub started: Timestamp,
    pub finished: Timestamp,
    pub install_calls: u64,
    pub rollback_calls: u64,
    /// Devices the run set out to reboot.
    pub reboots: u64,
    pub approvals: u64,
    pub halt_reason: Option<String>,
    /// Real time spent inside installer plugin calls (the simulated devices' work
    /// included); the rest of a run's time is the engine's own.
    pub plugin_time: Duration,
    /// The run was stopped by [`Command::Shutdown`]: the rollout is unfinished and
    /// resumes from its log on the next start.
    pub stopped: bool,
    /// The log could not be written (a full disk, say): the run stopped before
    /// dispatching anything more, and resumes from its log once it can be written.
    pub stalled: Option<String>,
}

/// Upper bounds, in seconds, of the plugin call duration histogram.
pub const PLUGIN_CALL_BUCKETS: [f64; 9] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0];

/// Counters of a rollout's work, for metrics: shared, read while the rollout runs.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Installer plugin calls made, and how many returned an error.
    pub plugin_calls: AtomicU64,
    pub plugin_call_failures: AtomicU64,
    /// Real time inside plugin calls, summed over calls, in nanoseconds.
    pub plugin_call_nanos: AtomicU64,
    /// Plugin calls by duration: `[i]` counts calls of at most
    /// [`PLUGIN_CALL_BUCKETS`]`[i]` seconds (and more than the bucket before); the last
    /// counts the longer ones.
    pub plugin_call_buckets: [AtomicU64; PLUGIN_CALL_BUCKETS.len() + 1],
    /// Device-steps that reported, by result.
    pub steps_succeeded: AtomicU64,
    pub steps_failed: AtomicU64,
    /// Rollbacks that finished.
    pub rollbacks: AtomicU64,
    /// Reboots that finished (back and verified, or not).
    pub reboots: AtomicU64,
}

impl Metrics {
    async fn time<T, E>(
        &self,
        call: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let start = Instant::now();
        let out = call.await;
        let took = start.elapsed();
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.plugin_call_nanos.fetch_add(nanos, Ordering::Relaxed);
        let bucket = PLUGIN_CALL_BUCKETS
            .iter()
            .position(|bound| took.as_secs_f64() <= *bound)
            .unwrap_or(PLUGIN_CALL_BUCKETS.len());
        self.plugin_call_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.plugin_calls.fetch_add(1, Ordering::Relaxed);
        if out.is_err() {
            self.plugin_call_failures.fetch_add(1, Ordering::Relaxed);
        }
        out
    }

    /// Real time inside plugin calls so far.
    pub fn plugin_time(&self) -> Duration {
        Duration::from_nanos(self.plugin_call_nanos.load(Ordering::Relaxed))
    }
}

/// What a plugin call task returns: a result, or (a step's first half) the version
/// the device runs before its install, which is logged before the install is made.
#[derive(Debug)]
enum Finished {
    Result(Outcome),
    Observed {
        work: InFlight,
        version: Option<String>,
    },
    /// A reboot's first half: the boot id before it, logged before the reboot.
    BootObserved {
        work: InFlight,
        boot_id: Option<String>,
    },
}

/// The result of a plugin call, waiting for its delivery time.
#[derive(Debug)]
struct Outcome {
    job: JobId,
    /// When the step (or rollback) started: its result is due `after` that.
    from: Timestamp,
    event: Event,
    /// How long the device took (virtual time); `None`: the device never reports.
    after: Option<Duration>,
}

/// Runs a rollout: the core's decisions through the installer plugin, results back
/// into the core, everything logged first.
#[derive(Debug)]
pub struct Executor {
    pub core: Core,
    pub installers: Installers,
    pub targets: Targets,
    pub timing: Timing,
    /// Plugin calls in flight at once.
    pub concurrency: usize,
    /// Approve rings that need approval (a simulated operator), after this delay.
    pub auto_approve_after: Option<Duration>,
    /// Time now (virtual or real; with real time, where the log left off).
    pub now: Timestamp,
    /// Where every event and dispatch is logged before it is acted on; `None` runs
    /// in memory only.
    pub store: Option<Store>,
    /// What was under way when the engine stopped (from [`replay`]): done first.
    pub recovery: Recovery,
    /// Simulated devices whose state is made durable before the log is: the log never
    /// records an outcome the devices could forget.
    pub devices: Option<Arc<SimDevices>>,
    /// The clock plugins read; moved with virtual time.
    pub clock: Option<VirtualClock>,
    /// Commands due at given times (a scripted operator, devices that join).
    pub scheduled: Vec<(Timestamp, Command)>,
    /// Commands as they arrive (an API), applied at the time they arrive. While this is
    /// open, a rollout waiting for an operator (approval, a pause) waits for one
    /// instead of ending the run.
    pub control: Option<mpsc::UnboundedReceiver<Command>>,
    /// Counters, shared with whoever reports metrics.
    pub metrics: Arc<Metrics>,
    /// Who works on each device now, shared with the fleet scans of the same process:
    /// a step waits while a scan reads its device, and a scan skips a device a step
    /// runs on. `None`: no one else touches the devices.
    pub leases: Option<Arc<DeviceLeases>>,
    /// Virtual time shared with other rollouts: time moves past the horizon only once
    /// the driver moves it ([`horizon`]). `None`: this rollout's time is its own.
    pub horizon: Option<horizon::Horizon>,
}

/// Who works on a device now: rollout steps (calls of `verify`, `preflight`,
/// `install`, `rollback`) or one scan, never both at once. Shared by every rollout of a
/// daemon and its fleet scans.
#[derive(Debug, Default)]
pub struct DeviceLeases {
    held: std::sync::Mutex<HashMap<String, Holder>>,
    freed: tokio::sync::Notify,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holder {
    /// Steps of rollouts, this many.
    Steps(usize),
    Scan,
}

/// A device held for a step (or a scan) until dropped.
#[derive(Debug)]
pub struct Lease {
    leases: Arc<DeviceLeases>,
    device: String,
}

impl DeviceLeases {
    /// Holds `device` for a step: waits while a scan reads it.
    pub async fn for_step(self: &Arc<Self>, device: &str) -> Lease {
        loop {
            let freed = self.freed.notified();
            {
                let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
                match held.get_mut(device) {
                    None => {
                        held.insert(device.to_string(), Holder::Steps(1));
                        break;
                    }
                    Some(Holder::Steps(n)) => {
                        *n += 1;
                        break;
                    }
                    Some(Holder::Scan) => {}
                }
            }
            freed.await;
        }
        Lease {
            leases: self.clone(),
            device: device.to_string(),
        }
    }

    /// Holds `device` for a scan, unless a step (or another scan) works on it now.
    pub fn for_scan(self: &Arc<Self>, device: &str) -> Option<Lease> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.contains_key(device) {
            return None;
        }
        held.insert(device.to_string(), Holder::Scan);
        Some(Lease {
            leases: self.clone(),
            device: device.to_string(),
        })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut held = self.leases.held.lock().unwrap_or_else(|e| e.into_inner());
        match held.get_mut(&self.device) {
            Some(Holder::Steps(n)) if *n > 1 => *n -= 1,
            _ => {
                held.remove(&self.device);
            }
        }
        drop(held);
        self.leases.freed.notify_waiters();
    }
}

/// Holds `device` for a step when there are leases.
async fn hold(leases: &Option<Arc<DeviceLeases>>, device: &str) -> Option<Lease> {
    match leases {
        Some(leases) => Some(leases.for_step(device).await),
        None => None,
    }
}

/// A rollout rebuilt from its log.
#[derive(Debug)]
pub struct Replayed {
    pub core: Core,
    /// Time of the last record (the start when the log is empty).
    pub now: Timestamp,
    /// What the rollout still owes from before the stop: the executor's `recovery`.
    pub recovery: Recovery,
    /// Devices that joined while the rollout ran: the caller adds them (and their
    /// patches, asked of the sources again) to the targets before running on.
    pub joined: Vec<Device>,
    /// Records replayed.
    pub records: u64,
}

/// Work that was under way when the engine stopped, and records the log lacks: what a
/// resumed run does first, so that it goes on as the uninterrupted run would have.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    /// Steps running when the engine stopped: verified before anything else, installed
    /// only if the device does not report the patch.
    pub steps: Vec<InFlight>,
    /// Rollbacks running when the engine stopped: run again (a rollback is safe to
    /// repeat). Their `step` is 0.
    pub rollbacks: Vec<InFlight>,
    /// Decisions people follow that the core made but that the stop kept out of the
    /// log: logged on resume, with the time they were made.
    pub notes: Vec<(i64, Note)>,
    /// When the ring now waiting for approval asked for it (a simulated operator
    /// approves that long after it, not after the restart).
    pub approval_asked: Option<Timestamp>,
    /// The versions devices reported right before each step's install (`observed`
    /// records): what a rollback of the step returns to.
    pub observed: HashMap<(JobId, u16), Option<String>>,
    /// Reboots under way when the engine stopped (`step`: the step after it): a device
    /// whose boot id before it is known (`boot_ids`) is rebooted only if it still
    /// reports that id.
    pub reboots: Vec<InFlight>,
    /// The boot id each device reported before its reboot (`boot-observed` records),
    /// by job and the reboot's start (seconds).
    pub boot_ids: HashMap<(JobId, i64), Option<String>>,
}

impl Recovery {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
            && self.rollbacks.is_empty()
            && self.reboots.is_empty()
            && self.notes.is_empty()
    }
}

/// A step or rollback the core started and that had not reported when the engine
/// stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlight {
    pub job: JobId,
    pub step: u16,
    /// When the core started it: in virtual time its result is due this long after,
    /// whenever the engine restarted.
    pub since: Timestamp,
    /// Its dispatch is in the log. One that is not was never handed to a plugin (a
    /// dispatch is flushed before the call): it is logged before the call is made.
    pub logged: bool,
}

/// The note the executor logs for `decision`, if people follow it.
fn note_of(decision: &Decision) -> Option<Note> {
    Some(match decision {
        Decision::AwaitApproval { ring } => Note::AwaitingApproval { ring: *ring },
        Decision::Halt { ring, reason } => Note::Halted {
            ring: *ring,
            reason: reason.clone(),
        },
        Decision::DeviceUnresponsive { job, step } => Note::DeviceUnresponsive {
            job: (job.ring, job.index),
            step: *step,
        },
        Decision::RingComplete { ring } => Note::RingComplete { ring: *ring },
        Decision::ApprovedByRule { ring, reason } => Note::ApprovedByRule {
            ring: *ring,
            reason: reason.clone(),
        },
        Decision::Completed => Note::Completed,
        Decision::StartStep { .. }
        | Decision::StartRollback { .. }
        | Decision::StartReboot { .. }
        | Decision::WakeAt(_) => {
            return None;
        }
    })
}

/// Rebuilds the core from `store`'s log (a fresh core when the log is empty) and says
/// what was under way when it stopped. Records are read one at a time, not all at once.
///
/// The core's decisions while replaying are compared with the log: a step or rollback
/// the core started is in flight unless it reported; its dispatch record may be missing
/// (the stop came between the decision and the flush), and so may the notes of
/// decisions people follow.
pub fn replay(spec: RolloutSpec, store: &Store, start: Timestamp) -> Result<Replayed, StoreError> {
    let mut core = Core::new(spec);
    let mut now = start;
    let mut joined = Vec::new();
    // What the core started, and when: (job, step) -> (time, logged); rollbacks by job.
    let mut started: HashMap<(JobId, u16), (Timestamp, bool)> = HashMap::new();
    let mut rollbacks: HashMap<JobId, (Timestamp, bool)> = HashMap::new();
    let mut reboots: HashMap<JobId, (Timestamp, bool)> = HashMap::new();
    let mut boot_ids = HashMap::new();
    // Notes the core's decisions call for that the log has not shown yet, in order.
    let mut notes: Vec<(i64, Note)> = Vec::new();
    let mut approval_asked = None;
    let mut observed = HashMap::new();
    let job_id = |(ring, index): (u16, u32)| JobId { ring, index };
    let records = store.replay(|record| match record {
        Record::Event { at, event } => {
            now = Timestamp::from_second(at).unwrap_or(now);
            for decision in core.handle(now, event.into_event()) {
                match &decision {
                    Decision::StartStep { job, step } => {
                        started.insert((*job, *step), (now, false));
                    }
                    Decision::StartRollback { job } => {
                        rollbacks.insert(*job, (now, false));
                    }
                    Decision::StartReboot { job } => {
                        reboots.insert(*job, (now, false));
                    }
                    Decision::AwaitApproval { .. } => approval_asked = Some(now),
                    _ => {}
                }
                if let Some(note) = note_of(&decision) {
                    notes.push((now.as_second(), note));
                }
            }
        }
        Record::Resumed { at } => now = Timestamp::from_second(at).unwrap_or(now),
        Record::Joined { devices, .. } => {
            joined.extend(devices.into_iter().map(StoredDevice::into_device));
        }
        Record::Dispatched { job, step, .. } => {
            if let Some(entry) = started.get_mut(&(job_id(job), step)) {
                entry.1 = true;
            }
        }
        Record::RollbackDispatched { job, .. } => {
            if let Some(entry) = rollbacks.get_mut(&job_id(job)) {
                entry.1 = true;
            }
        }
        Record::RebootDispatched { job, .. } => {
            if let Some(entry) = reboots.get_mut(&job_id(job)) {
                entry.1 = true;
            }
        }
        Record::BootObserved { at, job, boot_id } => {
            boot_ids.insert((job_id(job), at), boot_id);
        }
        Record::Decided { decision, .. } => {
            if let Some(i) = notes.iter().position(|(_, n)| *n == decision) {
                notes.remove(i);
            }
        }
        Record::Observed {
            job, step, version, ..
        } => {
            observed.insert((job_id(job), step), version);
        }
        Record::Audit { .. } | Record::Stalled { .. } => {}
    })?;
    let mut recovery = Recovery {
        notes,
        approval_asked,
        observed,
        boot_ids,
        ..Recovery::default()
    };
    for ring in 0..core.ring_count() as u16 {
        for index in 0..core.ring_len(ring) as u32 {
            let job = JobId { ring, index };
            match core.job(job) {
                Some(JobState::Running { step, since }) => {
                    let logged = started.get(&(job, *step)).is_none_or(|(_, logged)| *logged);
                    recovery.steps.push(InFlight {
                        job,
                        step: *step,
                        since: *since,
                        logged,
                    });
                }
                Some(JobState::Rebooting { next, since }) => {
                    let logged = reboots
                        .get(&job)
                        .is_none_or(|(at, logged)| *logged || at != since);
                    recovery.reboots.push(InFlight {
                        job,
                        step: *next,
                        since: *since,
                        logged,
                    });
                }
                Some(JobState::RollingBack) => {
                    let (since, logged) = rollbacks.get(&job).copied().unwrap_or((now, true));
                    recovery.rollbacks.push(InFlight {
                        job,
                        step: 0,
                        since,
                        logged,
                    });
                }
                _ => {}
            }
        }
    }
    Ok(Replayed {
        core,
        now,
        recovery,
        joined,
        records,
    })
}

/// Real time, in whole seconds: the log records seconds, and replay must give the core
/// exactly the times it was given.
fn real_now() -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The key of the operator's events in the due queue: after every result due at the
/// same second.
const OPERATOR: JobId = JobId {
    ring: u16::MAX,
    index: u32::MAX,
};

/// What a run keeps between the turns of its loop.
struct Run {
    report: RunReport,
    /// Shutting down: calls in flight get this long to finish.
    stop: Option<Duration>,
    /// Commands were applied since progress was last reported.
    commanded: bool,
    /// Results due at a (virtual) time, in a deterministic order.
    due: BTreeMap<(Timestamp, JobId, u8), Event>,
    /// Commands due at a time, in the order given.
    commands: BTreeMap<(Timestamp, u64), Command>,
    next_command: u64,
    /// When the core asked to be woken (windows, soaks).
    wake: BTreeSet<Timestamp>,
    calls: JoinSet<Finished>,
    /// Steps whose device was observed, to install once the observations are
    /// durable (one flush for all observed at once).
    installs: Vec<InFlight>,
    /// The versions observed before each step's install (see [`Recovery::observed`]).
    observed: HashMap<(JobId, u16), Option<String>>,
    /// Reboots whose boot id before was observed, to start once that is durable.
    reboots: Vec<InFlight>,
    /// The boot ids before each reboot (see [`Recovery::boot_ids`]).
    boot_ids: HashMap<(JobId, i64), Option<String>>,
    /// Reboots resumed after a stop with their boot id before known: the device may
    /// have been asked already.
    reboot_resumed: std::collections::HashSet<(JobId, i64)>,
    limit: Arc<tokio::sync::Semaphore>,
    spent: Arc<Metrics>,
    plugin_time_before: Duration,
    /// The core's decisions not yet acted on.
    queue: Vec<Decision>,
    auto_approve: Option<Duration>,
}

impl Run {
    fn schedule(&mut self, at: Timestamp, command: Command) {
        self.commands.insert((at, self.next_command), command);
        self.next_command += 1;
    }

    /// The simulated operator (`auto_approve_after`) approves that long after `now`.
    fn approve_later(&mut self, now: Timestamp) {
        if let Some(delay) = self.auto_approve {
            self.schedule(add(now, delay), Command::Approve);
        }
    }
}

/// What the loop does after a wait.
enum Turn {
    /// Go round again at once (a call returned in virtual time: time may not move yet).
    Again,
    /// Time moved: what is due now is fed to the core.
    Moved,
    /// Nothing more can happen.
    End,
}

impl Executor {
    /// Runs until the rollout completes, halts (and finishes rolling back), is aborted,
    /// or nothing more can happen. `progress` is called whenever time advances.
    ///
    /// Phases: [`Executor::begin`] (the run's state, commands scheduled), then
    /// [`Executor::resume`] (what a stop left undone), then turns of the loop: act on
    /// the core's decisions ([`Executor::act`], dispatches durable first), apply the
    /// commands that arrived, wait for a result, a wake-up or a command
    /// ([`Executor::wait`]), feed what is due ([`Executor::feed_due`]); at the end
    /// [`Executor::finish`].
    pub async fn run(mut self, mut progress: impl FnMut(&Core, Timestamp)) -> (Core, RunReport) {
        let mut run = self.begin();
        self.resume(&mut run);
        loop {
            if run.commanded {
                run.commanded = false;
                progress(&self.core, self.now);
            }
            if run.stop.is_some() || self.fault().is_some() {
                self.wind_down(&mut run).await;
                break;
            }
            if !self.act(&mut run) {
                continue;
            }
            // Commands that arrived are applied now.
            while let Some(command) = self.control.as_mut().and_then(|c| c.try_recv().ok()) {
                run.queue
                    .extend(self.command(command, &mut run.report, &mut run.stop));
                run.commanded = true;
            }
            if run.commanded {
                run.commanded = false;
                progress(&self.core, self.now);
            }
            if !run.queue.is_empty() || run.stop.is_some() {
                continue;
            }
            if (!run.installs.is_empty() || !run.reboots.is_empty())
                && (matches!(self.timing, Timing::Real) || run.calls.is_empty())
            {
                self.start_installs(&mut run);
                continue;
            }
            if run.calls.is_empty()
                && matches!(self.core.phase(), Phase::Completed | Phase::Aborted)
            {
                break;
            }
            match self.wait(&mut run, &mut progress).await {
                Turn::Again => continue,
                Turn::Moved => {}
                Turn::End => break,
            }
            self.feed_due(&mut run);
            progress(&self.core, self.now);
        }
        self.finish(run)
    }

    /// The run's state, with the commands scheduled before it (the demo's operator).
    fn begin(&mut self) -> Run {
        let started = self.now;
        let spent = self.metrics.clone();
        let mut run = Run {
            report: RunReport {
                phase: self.core.phase().clone(),
                started,
                finished: started,
                install_calls: 0,
                rollback_calls: 0,
                reboots: 0,
                approvals: 0,
                halt_reason: None,
                plugin_time: Duration::ZERO,
                stopped: false,
                stalled: None,
            },
            stop: None,
            commanded: false,
            due: BTreeMap::new(),
            commands: BTreeMap::new(),
            next_command: 0,
            wake: BTreeSet::new(),
            calls: JoinSet::new(),
            installs: Vec::new(),
            observed: HashMap::new(),
            reboots: Vec::new(),
            boot_ids: HashMap::new(),
            reboot_resumed: Default::default(),
            limit: Arc::new(tokio::sync::Semaphore::new(self.concurrency.max(1))),
            plugin_time_before: spent.plugin_time(),
            spent,
            queue: Vec::new(),
            auto_approve: self.auto_approve_after,
        };
        for (at, command) in std::mem::take(&mut self.scheduled) {
            run.schedule(at, command);
        }
        if matches!(self.timing, Timing::Real) {
            self.now = self.now.max(real_now());
        }
        if let Some(clock) = &self.clock {
            clock.set(self.now);
        }
        run
    }

    /// What a stop left undone, first: the records it kept out of the log, the steps
    /// and rollbacks that were running (verified or run again), an approval already
    /// asked for; then the commands sent before the run began and a first tick.
    fn resume(&mut self, run: &mut Run) {
        let mut recovery = std::mem::take(&mut self.recovery);
        run.observed = std::mem::take(&mut recovery.observed);
        run.boot_ids = std::mem::take(&mut recovery.boot_ids);
        if !recovery.is_empty() || self.store.as_ref().is_some_and(Store::has_run) {
            self.log(Record::Resumed {
                at: self.now.as_second(),
            });
        }
        // What the stop kept out of the log: the notes of decisions made, and the
        // dispatches of steps decided but never handed to a plugin (logged, with the
        // time they were decided, before the call is made).
        for (at, decision) in &recovery.notes {
            self.log(Record::Decided {
                at: *at,
                decision: decision.clone(),
            });
        }
        for step in recovery.steps.iter().filter(|s| !s.logged) {
            self.log(Record::Dispatched {
                at: step.since.as_second(),
                job: (step.job.ring, step.job.index),
                step: step.step,
            });
        }
        for rollback in recovery.rollbacks.iter().filter(|s| !s.logged) {
            self.log(Record::RollbackDispatched {
                at: rollback.since.as_second(),
                job: (rollback.job.ring, rollback.job.index),
            });
        }
        for reboot in recovery.reboots.iter().filter(|s| !s.logged) {
            self.log(Record::RebootDispatched {
                at: reboot.since.as_second(),
                job: (reboot.job.ring, reboot.job.index),
            });
        }
        self.flush();
        if self.fault().is_none() {
            // Steps that may have run before a restart: verify first, install only if
            // the device does not report the patch. In virtual time each result is due
            // when it would have been without the stop.
            for step in &recovery.steps {
                self.spawn_step(&mut run.calls, &run.limit, &run.spent, *step, true);
            }
            for rollback in &recovery.rollbacks {
                self.spawn_rollback(run, rollback.job, rollback.since);
            }
            // Reboots: one whose boot id before is durable may have been asked for.
            for reboot in &recovery.reboots {
                let key = (reboot.job, reboot.since.as_second());
                if run.boot_ids.contains_key(&key) {
                    run.reboot_resumed.insert(key);
                }
                self.spawn_reboot(run, *reboot);
            }
        }
        if let Phase::AwaitingApproval { .. } = self.core.phase() {
            run.approve_later(recovery.approval_asked.unwrap_or(self.now));
        }
        // Commands sent before the run began come first.
        while let Some(command) = self.control.as_mut().and_then(|c| c.try_recv().ok()) {
            run.queue
                .extend(self.command(command, &mut run.report, &mut run.stop));
        }
        run.queue.extend(self.feed(Event::Tick));
    }

    /// Ends the loop on a shutdown or a log that cannot be written: nothing new
    /// starts (decisions not yet dispatched are decided again on replay).
    async fn wind_down(&mut self, run: &mut Run) {
        if let Some(grace) = run.stop {
            // Calls in flight get `grace` to finish. Their results are not logged: the
            // next start verifies those steps.
            let drain = async { while run.calls.join_next().await.is_some() {} };
            if tokio::time::timeout(grace, drain).await.is_err() {
                tracing::warn!(
                    "{} plugin calls did not finish within {grace:?}; cancelled",
                    run.calls.len()
                );
                run.calls.abort_all();
            }
            run.report.stopped = true;
        } else if let Some(fault) = self.fault() {
            // The log cannot be written: nothing more is dispatched. Calls in flight
            // finish (their results are verified on the next run); the caller resumes
            // from the log once it can be written again.
            tracing::error!("the rollout stalls: {fault}");
            while run.calls.join_next().await.is_some() {}
            run.report.stalled = Some(fault);
        }
    }

    /// Acts on the core's decisions: dispatches (durable in the log first), wake-ups,
    /// notes people follow. False when the write-ahead flush failed: nothing was
    /// dispatched.
    fn act(&mut self, run: &mut Run) -> bool {
        // Write-ahead: every dispatch, and every event it follows from, is durable
        // before the call is made. Steps that dispatch nothing need no flush.
        let mut dispatches = false;
        for decision in &run.queue {
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
                Decision::StartReboot { job } => self.log(Record::RebootDispatched {
                    at: self.now.as_second(),
                    job: (job.ring, job.index),
                }),
                _ => continue,
            }
            dispatches = true;
        }
        if dispatches {
            self.flush();
            if self.fault().is_some() {
                return false;
            }
        }
        for decision in std::mem::take(&mut run.queue) {
            match decision {
                Decision::StartStep { job, step } => {
                    run.report.install_calls += 1;
                    let work = InFlight {
                        job,
                        step,
                        since: self.now,
                        logged: true,
                    };
                    self.spawn_step(&mut run.calls, &run.limit, &run.spent, work, false);
                }
                Decision::StartRollback { job } => {
                    run.report.rollback_calls += 1;
                    let now = self.now;
                    self.spawn_rollback(run, job, now);
                }
                Decision::StartReboot { job } => {
                    run.report.reboots += 1;
                    let work = InFlight {
                        job,
                        step: 0,
                        since: self.now,
                        logged: true,
                    };
                    self.spawn_reboot(run, work);
                }
                Decision::WakeAt(t) => {
                    run.wake.insert(t);
                }
                Decision::AwaitApproval { ring } => {
                    self.note(Note::AwaitingApproval { ring });
                    run.approve_later(self.now);
                }
                Decision::Halt { ring, reason } => {
                    self.note(Note::Halted {
                        ring,
                        reason: reason.clone(),
                    });
                    run.report.halt_reason = Some(reason);
                }
                Decision::DeviceUnresponsive { job, step } => self.note(Note::DeviceUnresponsive {
                    job: (job.ring, job.index),
                    step,
                }),
                Decision::RingComplete { ring } => self.note(Note::RingComplete { ring }),
                Decision::ApprovedByRule { ring, reason } => {
                    self.note(Note::ApprovedByRule { ring, reason })
                }
                Decision::Completed => self.note(Note::Completed),
            }
        }
        true
    }

    /// Waits for what moves the rollout: a call's result, a wake-up, a command, or an
    /// operator when nothing else can happen. In real time the clock moves by itself;
    /// in virtual time every call in flight returns first, then time jumps to the
    /// next thing due.
    async fn wait(&mut self, run: &mut Run, progress: &mut impl FnMut(&Core, Timestamp)) -> Turn {
        // A halted rollout that has nothing left to do (rollbacks done) is over;
        // otherwise, with nothing due, it waits for an operator if one can speak.
        let wait_for_operator =
            self.control.is_some() && !matches!(self.core.phase(), Phase::Halted { .. });
        // With the core paused, its wake-ups (windows, soaks) are not worth waking
        // for: only results, commands and the operator move it.
        // Nor are they for a halted rollout that has settled.
        let next_wake = (!self.core.is_paused() && !self.core.is_settled())
            .then(|| run.wake.iter().next().copied())
            .flatten();
        let next_command_at = run.commands.keys().next().map(|(t, _)| *t);
        if matches!(self.timing, Timing::Real) {
            let next = [next_wake, next_command_at].into_iter().flatten().min();
            if run.calls.is_empty() && next.is_none() && !wait_for_operator {
                return Turn::End;
            }
            let sleep = next.map(|t| {
                let ms = t.as_millisecond() - Timestamp::now().as_millisecond();
                Duration::from_millis(ms.max(0) as u64)
            });
            // What the log holds is durable, and shown, while it waits.
            self.flush();
            progress(&self.core, self.now);
            tokio::select! {
                Some(done) = run.calls.join_next(), if !run.calls.is_empty() => {
                    self.now = self.now.max(real_now());
                    match done {
                        Ok(Finished::Observed { work, version }) => self.observed(run, work, version),
                        Ok(Finished::BootObserved { work, boot_id }) => self.boot_observed(run, work, boot_id),
                        // A device that never reports: the core's deadline fails it.
                        Ok(Finished::Result(Outcome { after: None, .. })) => {}
                        Ok(Finished::Result(outcome)) => run.queue.extend(self.feed(outcome.event)),
                        Err(e) => tracing::error!("plugin call task failed: {e}"),
                    }
                }
                command = recv(&mut self.control) => {
                    self.now = self.now.max(real_now());
                    match command {
                        Some(command) => run.queue.extend(self.command(command, &mut run.report, &mut run.stop)),
                        None => self.control = None,
                    }
                }
                () = tokio::time::sleep(sleep.unwrap_or(Duration::ZERO)), if sleep.is_some() => {
                    self.now = self.now.max(real_now());
                }
            }
            return Turn::Moved;
        }
        // Every call in flight returns before time may move.
        if let Some(done) = run.calls.join_next().await {
            match done {
                Ok(Finished::Observed { work, version }) => self.observed(run, work, version),
                Ok(Finished::BootObserved { work, boot_id }) => {
                    self.boot_observed(run, work, boot_id)
                }
                Ok(Finished::Result(outcome)) => {
                    if let (Some(after), Timing::Virtual(timing)) = (outcome.after, &self.timing) {
                        let kind = match outcome.event {
                            Event::RollbackFinished { .. } => 1,
                            Event::RebootFinished { .. } => 2,
                            _ => 0,
                        };
                        // Due `after` its start; a step started before a restart whose
                        // time has passed is seen now.
                        let at = timing.seen_at(add(outcome.from, after)).max(self.now);
                        run.due.insert((at, outcome.job, kind), outcome.event);
                    }
                }
                Err(e) => tracing::error!("plugin call task failed: {e}"),
            }
            return Turn::Again;
        }
        // Advance virtual time to the next due result, wake-up or command.
        let next_due = run.due.keys().next().map(|(t, _, _)| *t);
        let next = [next_due, next_wake, next_command_at]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next else {
            // Nothing more can happen by itself: wait for an operator, if one can
            // still speak.
            if !wait_for_operator {
                return Turn::End;
            }
            // What the log holds is durable, and shown, while it waits.
            self.flush();
            progress(&self.core, self.now);
            match recv(&mut self.control).await {
                Some(command) => {
                    run.queue
                        .extend(self.command(command, &mut run.report, &mut run.stop));
                    run.commanded = true;
                }
                None => self.control = None,
            }
            return Turn::Again;
        };
        if self.horizon.as_ref().is_some_and(|h| next > h.at()) {
            // Everything due by the horizon is done: what the log holds is durable,
            // and shown, while the other rollouts catch up.
            self.flush();
            progress(&self.core, self.now);
            if let Some(horizon) = &mut self.horizon
                && !horizon.park().await
            {
                self.horizon = None;
            }
            return Turn::Again;
        }
        self.now = self.now.max(next);
        if let Some(clock) = &self.clock {
            clock.set(self.now);
        }
        Turn::Moved
    }

    /// Feeds the core what is due by now: results, then commands, then a tick.
    fn feed_due(&mut self, run: &mut Run) {
        run.wake.retain(|t| *t > self.now);
        let last = (self.now, OPERATOR, u8::MAX);
        let ready: Vec<(Timestamp, JobId, u8)> = run.due.range(..=last).map(|(k, _)| *k).collect();
        for key in ready {
            if let Some(event) = run.due.remove(&key) {
                run.queue.extend(self.feed(event));
            }
        }
        let ready: Vec<(Timestamp, u64)> = run
            .commands
            .range(..=(self.now, u64::MAX))
            .map(|(k, _)| *k)
            .collect();
        for key in ready {
            if let Some(command) = run.commands.remove(&key) {
                run.queue
                    .extend(self.command(command, &mut run.report, &mut run.stop));
            }
        }
        run.queue.extend(self.feed(Event::Tick));
    }

    /// The last flush, and the report.
    fn finish(mut self, mut run: Run) -> (Core, RunReport) {
        self.flush();
        if run.report.stalled.is_none() {
            run.report.stalled = self.fault();
        }
        run.report.phase = self.core.phase().clone();
        run.report.finished = self.now;
        run.report.plugin_time = run
            .spent
            .plugin_time()
            .saturating_sub(run.plugin_time_before);
        (self.core, run.report)
    }

    /// Applies an operator's command or devices joining.
    fn command(
        &mut self,
        command: Command,
        report: &mut RunReport,
        stop: &mut Option<Duration>,
    ) -> Vec<Decision> {
        match command {
            Command::Shutdown { grace } => {
                *stop = Some(grace);
                Vec::new()
            }
            Command::Approve => {
                if matches!(self.core.phase(), Phase::AwaitingApproval { .. }) {
                    report.approvals += 1;
                }
                self.feed(Event::Approve)
            }
            Command::Pause => self.feed(Event::Pause),
            Command::Resume => self.feed(Event::Resume),
            Command::Abort => self.feed(Event::Abort),
            Command::RollBack { ring, job } => self.feed(Event::RollBack { ring, job }),
            Command::Retry { job } => self.feed(Event::Retry { job }),
            Command::Audit { by, action } => {
                self.log(Record::Audit {
                    at: self.now.as_second(),
                    by,
                    action,
                });
                Vec::new()
            }
            Command::Inspect(look) => {
                look(&self.core, self.now);
                Vec::new()
            }
            Command::Join(joining) => {
                // The devices are logged before the core hears of them, so that a
                // restart can reach them.
                self.log(Record::Joined {
                    at: self.now.as_second(),
                    devices: joining
                        .targets
                        .devices
                        .values()
                        .map(StoredDevice::from_device)
                        .collect(),
                });
                self.targets.devices.extend(joining.targets.devices);
                self.targets.patches.extend(joining.targets.patches);
                let mut decisions = Vec::new();
                for (ring, jobs) in joining.rings {
                    decisions.extend(self.feed(Event::DevicesAdded { ring, jobs }));
                }
                decisions
            }
        }
    }

    /// Logs `event` (when durable), then gives it to the core.
    fn feed(&mut self, event: Event) -> Vec<Decision> {
        let counter = match &event {
            Event::RebootFinished { .. } => Some(&self.metrics.reboots),
            Event::StepSucceeded { .. } => Some(&self.metrics.steps_succeeded),
            Event::StepFailed { .. } => Some(&self.metrics.steps_failed),
            Event::RollbackFinished { .. } => Some(&self.metrics.rollbacks),
            _ => None,
        };
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.log(Record::Event {
            at: self.now.as_second(),
            event: StoredEvent::from_event(&event),
        });
        self.core.handle(self.now, event)
    }

    /// Logs a decision people follow (not needed by replay, which re-derives it).
    fn note(&mut self, note: Note) {
        self.log(Record::Decided {
            at: self.now.as_second(),
            decision: note,
        });
    }

    /// Appends `record` to the log. A write that fails stalls the store (see
    /// [`Store::fault`]): nothing is appended after it, and the run stops before it
    /// would dispatch anything, so the log stays a prefix of what happened.
    fn log(&mut self, record: Record) {
        if let Some(store) = &mut self.store
            && let Err(e) = store.append(&record)
        {
            tracing::debug!("rollout log write refused: {e}");
        }
    }

    /// Makes the log durable (the simulated devices' state first). A failure stalls
    /// the store, as in [`Executor::log`].
    fn flush(&mut self) {
        let Some(store) = &self.store else {
            return;
        };
        if store.fault().is_some() {
            return;
        }
        if let Some(devices) = &self.devices
            && let Err(e) = devices.flush()
        {
            store.stall(format!("cannot flush the simulated devices' state: {e}"));
            return;
        }
        let status = Status::of(&self.core, self.now, store.len());
        if let Err(e) = store.set_status(&status).and_then(|()| store.flush()) {
            tracing::debug!("rollout log flush failed: {e}");
        }
    }

    /// Why the log cannot be written, once it could not.
    fn fault(&self) -> Option<String> {
        self.store.as_ref()?.fault()
    }

    /// How long a step takes on the device (virtual time), `None` if it never
    /// reports; with real time, the call itself takes what it takes.
    fn takes(&self, device: &str, patch: &str) -> Option<Duration> {
        match &self.timing {
            Timing::Virtual(timing) => timing.duration(device, patch),
            Timing::Real => Some(Duration::ZERO),
        }
    }

    fn lookup(&self, job: JobId, step: u16) -> Option<(Device, Patch)> {
        let spec = self.core.job_spec(job)?;
        let device = self.targets.devices.get(&spec.device)?.clone();
        let patch_id = &spec.steps.get(usize::from(step))?.patch;
        let patch = self.targets.patches.get(patch_id)?.clone();
        Some((device, patch))
    }

    /// The first half of a step: the installer's `verify` says which version the
    /// device runs before the install (logged as an `observed` record, durable before
    /// the install is made: see [`Executor::start_installs`]). With `verify_first`
    /// (after a restart), a device that reports the patch installed and healthy is
    /// not installed again.
    fn spawn_step(
        &self,
        calls: &mut JoinSet<Finished>,
        limit: &Arc<tokio::sync::Semaphore>,
        spent: &Arc<Metrics>,
        work: InFlight,
        verify_first: bool,
    ) {
        let InFlight {
            job,
            step,
            since: from,
            ..
        } = work;
        let Some((device, patch)) = self.lookup(job, step) else {
            let reason = "the device or patch vanished from the rollout's inputs".to_string();
            return refuse(calls, job, step, from, reason);
        };
        let after = self.takes(&device.id, &patch.id);
        let installer = match self.installers.for_device(&device) {
            Ok(installer) => installer.clone(),
            Err(reason) => return refuse(calls, job, step, from, reason),
        };
        let spent = spent.clone();
        let limit = limit.clone();
        let leases = self.leases.clone();
        calls.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let _lease = hold(&leases, &device.id).await;
            let report = spent.time(installer.verify(&device, &patch)).await;
            // After a restart: a step the device reports done (the fixed version, and
            // healthy) is not installed again. One that is not healthy (an install cut
            // off half way, say) goes through the installer again: its install is safe
            // to repeat, and finishes the work or fails for a reason of its own.
            if verify_first
                && let Ok(report) = &report
                && report.installed_version.as_deref() == Some(patch.fixed_version.as_str())
                && report.health.healthy
            {
                // Whether its install left a restart pending is not known any more:
                // the patch says (the core restarts for either alike).
                let event = Event::StepSucceeded {
                    job,
                    step,
                    reboot_pending: patch.reboot_required,
                };
                return Finished::Result(Outcome {
                    job,
                    from,
                    event,
                    after,
                });
            }
            let version = report.ok().and_then(|r| r.installed_version);
            Finished::Observed { work, version }
        });
    }

    /// A step's device was observed: its version is logged (once: a step resumed
    /// after a restart keeps the first observation), and its install waits for the
    /// next flush.
    fn observed(&mut self, run: &mut Run, work: InFlight, version: Option<String>) {
        let key = (work.job, work.step);
        if let std::collections::hash_map::Entry::Vacant(entry) = run.observed.entry(key) {
            entry.insert(version.clone());
            self.log(Record::Observed {
                at: work.since.as_second(),
                job: (work.job.ring, work.job.index),
                step: work.step,
                version,
            });
        }
        run.installs.push(work);
    }

    /// Installs the steps observed so far, once their observations are durable.
    fn start_installs(&mut self, run: &mut Run) {
        self.flush();
        if self.fault().is_some() {
            // Not installed: the next run verifies these steps again.
            run.installs.clear();
            return;
        }
        for work in std::mem::take(&mut run.installs) {
            self.spawn_install(&mut run.calls, &run.limit, &run.spent, work);
        }
        for work in std::mem::take(&mut run.reboots) {
            self.spawn_reboot(run, work);
        }
    }

    /// A rebooting device's boot id before the reboot: logged, and its reboot waits
    /// for the next flush (as a step's install does).
    fn boot_observed(&mut self, run: &mut Run, work: InFlight, boot_id: Option<String>) {
        let key = (work.job, work.since.as_second());
        self.log(Record::BootObserved {
            at: key.1,
            job: (work.job.ring, work.job.index),
            boot_id: boot_id.clone(),
        });
        run.boot_ids.insert(key, boot_id);
        run.reboots.push(work);
    }

    /// A reboot, in two halves: the boot id before it (logged, durable before the
    /// reboot is asked for: see [`Executor::boot_observed`]), then the reboot, the
    /// wait for another boot id and the verification of every step the job
    /// installed. A reboot whose boot id before is durable already (a resumed one, or
    /// the second half) goes straight to the second half.
    fn spawn_reboot(&self, run: &mut Run, work: InFlight) {
        let InFlight {
            job, since: from, ..
        } = work;
        let fail = |calls: &mut JoinSet<Finished>, reason: String| {
            calls.spawn(async move {
                Finished::Result(Outcome {
                    job,
                    from,
                    event: Event::RebootFinished {
                        job,
                        ok: false,
                        reason: Some(reason),
                    },
                    after: Some(Duration::ZERO),
                })
            });
        };
        let Some(spec) = self.core.job_spec(job) else {
            return;
        };
        let Some(device) = self.targets.devices.get(&spec.device).cloned() else {
            let reason = "the device vanished from the rollout's inputs".to_string();
            return fail(&mut run.calls, reason);
        };
        let installer = match self.installers.for_device(&device) {
            Ok(installer) => installer.clone(),
            Err(reason) => return fail(&mut run.calls, reason),
        };
        let (limit, spent, leases) = (run.limit.clone(), run.spent.clone(), self.leases.clone());
        let key = (job, from.as_second());
        let Some(before) = run.boot_ids.get(&key).cloned() else {
            run.calls.spawn(async move {
                let _lease = hold(&leases, &device.id).await;
                match reboot::boot_id(&installer, &device, &spent, &limit).await {
                    Ok(boot_id) => Finished::BootObserved { work, boot_id },
                    Err(reason) => Finished::Result(Outcome {
                        job,
                        from,
                        event: Event::RebootFinished {
                            job,
                            ok: false,
                            reason: Some(reason),
                        },
                        after: Some(Duration::ZERO),
                    }),
                }
            });
            return;
        };
        // Resumed: the reboot may have been asked for before the stop.
        let resumed = run.reboot_resumed.remove(&key);
        let installed = match self.core.job(job) {
            Some(JobState::Rebooting { next, .. }) => *next,
            _ => self.core.job_steps_done(job),
        };
        let checks: Vec<reboot::Check> = (0..installed)
            .filter_map(|step| self.lookup(job, step))
            .map(|(_, patch)| reboot::Check {
                expect: patch.fixed_version.clone(),
                patch,
            })
            .collect();
        let (wait, after) = match &self.timing {
            Timing::Virtual(timing) => (reboot::Wait::Virtual, timing.reboot(&device.id, from)),
            Timing::Real => (
                reboot::Wait::Real {
                    poll: REBOOT_POLL,
                    timeout: self.core.spec().rings[usize::from(job.ring)].reboot_timeout,
                },
                Some(Duration::ZERO),
            ),
        };
        run.calls.spawn(async move {
            let _lease = hold(&leases, &device.id).await;
            let result = reboot::reboot_and_verify(
                &installer, &device, before, resumed, wait, &checks, &spent, &limit,
            )
            .await;
            if let Err(reason) = &result {
                tracing::info!("reboot of {} failed: {reason}", device.id);
            }
            Finished::Result(Outcome {
                job,
                from,
                event: Event::RebootFinished {
                    job,
                    ok: result.is_ok(),
                    reason: result.err(),
                },
                after,
            })
        });
    }

    /// The second half of a step: preflight, install and verify.
    fn spawn_install(
        &self,
        calls: &mut JoinSet<Finished>,
        limit: &Arc<tokio::sync::Semaphore>,
        spent: &Arc<Metrics>,
        work: InFlight,
    ) {
        let InFlight {
            job,
            step,
            since: from,
            ..
        } = work;
        let Some((device, patch)) = self.lookup(job, step) else {
            let reason = "the device or patch vanished from the rollout's inputs".to_string();
            return refuse(calls, job, step, from, reason);
        };
        let after = self.takes(&device.id, &patch.id);
        let installer = match self.installers.for_device(&device) {
            Ok(installer) => installer.clone(),
            Err(reason) => return refuse(calls, job, step, from, reason),
        };
        let spent = spent.clone();
        let limit = limit.clone();
        let leases = self.leases.clone();
        calls.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let _lease = hold(&leases, &device.id).await;
            let failed = |reason: String| {
                Finished::Result(Outcome {
                    job,
                    from,
                    event: Event::StepFailed { job, step, reason },
                    after,
                })
            };
            // The install's change waits for a restart (a firmware update staged until
            // the next reset, say): the version is verified after the reboot.
            let mut staged = false;
            match spent.time(installer.preflight(&device, &patch)).await {
                Ok(Readiness::Blocked(why)) => return failed(format!("preflight: {why}")),
                // Nothing to install: the device already runs the fixed version. Its
                // health is verified all the same.
                Ok(Readiness::AlreadyInstalled(_)) => {}
                Ok(Readiness::Ready) => {
                    match spent.time(installer.install(&device, &patch)).await {
                        Ok(outcome) => staged = outcome.reboot_pending,
                        Err(e) => return failed(e.to_string()),
                    }
                }
                Err(e) => return failed(e.to_string()),
            }
            let event = match spent.time(installer.verify(&device, &patch)).await {
                Err(e) => Event::StepFailed {
                    job,
                    step,
                    reason: e.to_string(),
                },
                Ok(report)
                    if staged
                        && report.health.healthy
                        && report.installed_version.as_deref() != Some(&patch.fixed_version) =>
                {
                    Event::StepSucceeded {
                        job,
                        step,
                        reboot_pending: true,
                    }
                }
                Ok(report) if report.installed_version.as_deref() != Some(&patch.fixed_version) => {
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
                Ok(_) => Event::StepSucceeded {
                    job,
                    step,
                    reboot_pending: staged,
                },
            };
            Finished::Result(Outcome {
                job,
                from,
                event,
                after,
            })
        });
    }

    /// Rolls a job back: every step it installed (and the one that failed), last
    /// first, each to the version the device reported right before its install (the
    /// `observed` record), else to the inventory's.
    fn spawn_rollback(&self, run: &mut Run, job: JobId, from: Timestamp) {
        let Some(spec) = self.core.job_spec(job) else {
            return;
        };
        let steps = self
            .core
            .job_rollback_steps(job)
            .min(spec.steps.len() as u16);
        let mut work = Vec::new();
        for step in (0..steps).rev() {
            if let Some((device, patch)) = self.lookup(job, step) {
                let inventoried = device
                    .components
                    .iter()
                    .find(|c| c.name == patch.component)
                    .map(|c| c.version.clone())
                    .unwrap_or_default();
                let previous = run
                    .observed
                    .get(&(job, step))
                    .cloned()
                    .flatten()
                    .unwrap_or(inventoried);
                // The package of the version to go back to, when a source published it.
                let artifact = self
                    .targets
                    .patches
                    .values()
                    .find(|p| p.component == patch.component && p.fixed_version == previous)
                    .map(|p| p.artifact.clone());
                work.push((device, patch, previous, artifact));
            }
        }
        let after = work
            .first()
            .and_then(|(d, p, _, _)| self.takes(&d.id, &format!("rollback:{}", p.id)))
            .or(Some(Duration::from_secs(600)));
        let installer = match work.first().map(|(d, ..)| self.installers.for_device(d)) {
            Some(Ok(installer)) => installer.clone(),
            None => self.installers.default.clone(),
            Some(Err(reason)) => {
                tracing::info!("rollback of job {job:?} failed: {reason}");
                run.calls.spawn(async move {
                    Finished::Result(Outcome {
                        job,
                        from,
                        event: Event::RollbackFinished {
                            job,
                            ok: false,
                            reason: Some(reason),
                        },
                        after,
                    })
                });
                return;
            }
        };
        let spent = run.spent.clone();
        let limit = run.limit.clone();
        let leases = self.leases.clone();
        let holder = work.first().map(|(d, ..)| d.id.clone()).unwrap_or_default();
        // A rollback of a patch that needs a restart restarts the device too (unless
        // the ring never reboots), waits for it and verifies the versions it went
        // back to. Not recorded as a reboot of its own: a rollback cut off by a stop
        // runs again whole, its reboot with it.
        let ring = &self.core.spec().rings[usize::from(job.ring)];
        let wait = match &self.timing {
            _ if ring.reboot == Reboot::Never => None,
            Timing::Virtual(_) => Some(reboot::Wait::Virtual),
            Timing::Real => Some(reboot::Wait::Real {
                poll: REBOOT_POLL,
                timeout: ring.reboot_timeout,
            }),
        };
        let after = match (after, &self.timing) {
            (Some(after), Timing::Virtual(timing))
                if wait.is_some() && work.iter().any(|(_, p, ..)| p.reboot_required) =>
            {
                // A rollback's reboot always comes back in the model: the rollback
                // has no deadline of its own.
                let back = timing.reboot(&holder, from).unwrap_or(timing.reboot_max);
                Some(after + back)
            }
            (after, _) => after,
        };
        run.calls.spawn(async move {
            let _lease = hold(&leases, &holder).await;
            let mut errors = Vec::new();
            let mut device_id = None;
            let mut checks = Vec::new();
            let mut restart = false;
            let mut last_device = None;
            for (device, patch, previous, artifact) in work {
                let target = RollbackTarget {
                    version: previous.clone(),
                    artifact,
                };
                let permit = limit.acquire().await;
                match spent
                    .time(installer.rollback(&device, &patch, &target))
                    .await
                {
                    Err(e) => errors.push(format!("{} back to {previous}: {e}", patch.id)),
                    Ok(outcome) => restart |= outcome.reboot_pending || patch.reboot_required,
                }
                drop(permit);
                device_id = Some(device.id.clone());
                checks.push(reboot::Check {
                    patch,
                    expect: previous,
                });
                last_device = Some(device);
            }
            if let (true, Some(wait), Some(device), true) =
                (restart, wait, &last_device, errors.is_empty())
            {
                let result = match reboot::boot_id(&installer, device, &spent, &limit).await {
                    Ok(before) => {
                        reboot::reboot_and_verify(
                            &installer, device, before, false, wait, &checks, &spent, &limit,
                        )
                        .await
                    }
                    Err(e) => Err(e),
                };
                if let Err(e) = result {
                    errors.push(format!("the rollback's reboot: {e}"));
                }
            }
            let reason = (!errors.is_empty()).then(|| errors.join("; "));
            if let Some(reason) = &reason {
                tracing::info!(
                    "rollback of {} failed: {reason}",
                    device_id.as_deref().unwrap_or("a device")
                );
            }
            Finished::Result(Outcome {
                job,
                from,
                event: Event::RollbackFinished {
                    job,
                    ok: reason.is_none(),
                    reason,
                },
                after,
            })
        });
    }
}

/// A step that cannot even start fails at once.
fn refuse(calls: &mut JoinSet<Finished>, job: JobId, step: u16, from: Timestamp, reason: String) {
    calls.spawn(async move {
        Finished::Result(Outcome {
            job,
            from,
            event: Event::StepFailed { job, step, reason },
            after: Some(Duration::ZERO),
        })
    });
}

#[cfg(test)]
mod lease_tests {
    use super::*;

    /// A scan never reads a device a step works on, and a step waits for a scan.
    #[tokio::test]
    async fn steps_and_scans_never_share_a_device() {
        let leases = Arc::new(DeviceLeases::default());
        let step = leases.for_step("d1").await;
        let second = leases.for_step("d1").await;
        assert!(leases.for_scan("d1").is_none(), "steps hold it");
        let other = leases.for_scan("d2").expect("nothing works on d2");
        drop(step);
        assert!(leases.for_scan("d1").is_none(), "one step still holds it");
        drop(second);
        let scan = leases.for_scan("d1").expect("free again");
        assert!(leases.for_scan("d1").is_none(), "one scan at a time");
        // A step on a scanned device waits until the scan ends.
        let waiting = tokio::spawn({
            let leases = leases.clone();
            async move {
                let _lease = leases.for_step("d1").await;
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the step waited for the scan");
        drop(scan);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the step started once the scan ended")
            .unwrap();
        drop(other);
        assert!(leases.held.lock().unwrap().is_empty());
    }
}
