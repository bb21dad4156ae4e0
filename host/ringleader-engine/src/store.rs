//! Durable rollout state in sled: an append-only log of everything the core was told
//! (events with their times) and everything the executor set out to do (dispatches),
//! written before it is acted on. Replaying the log into a fresh core rebuilds the
//! rollout exactly (the core is deterministic).
//!
//! On-disk layout, version 1 (`DIR/engine/`, a sled database):
//!
//! | tree | key | value |
//! |---|---|---|
//! | `meta` | `layout` | `1` |
//! | `meta` | `inputs` | JSON of what the rollout was started from (compared on resume) |
//! | `meta` | `status` | JSON [`Status`]: phase and per-ring counts as of the last flush |
//! | `meta` | `jobs-index` | `1` once `jobs` indexes the whole log (an older log is indexed when opened) |
//! | `meta` | `probe` | written when a stalled store is opened again, to learn whether writes succeed |
//! | `log` | sequence number, u64 big-endian, from 0 without gaps | JSON [`Record`] |
//! | `jobs` | ring u16, index u32, sequence number u64, big-endian | empty: the records about one device job (written before the record) |
//!
//! The log is the truth; `status` is a view of it, rewritten at every flush, so that
//! "where is this rollout?" is one read instead of a replay.
//!
//! The simulated devices keep their own state elsewhere (`DIR/devices/`), as real
//! devices would.

use crate::core::{Core, DeviceJob, Event, JobId, Phase, StepSpec};
use jiff::Timestamp;
use ringleader_types::{Component, Device};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Page cache of the log's database: the log is written once and read at resume.
const SLED_CACHE_BYTES: u64 = 64 << 20;

/// The layout version this code reads and writes.
pub const LAYOUT_VERSION: u32 = 1;

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Record {
    /// The core was given `event` at `at` (seconds since the Unix epoch).
    Event { at: i64, event: StoredEvent },
    /// The executor set out to install `step` of `job`.
    Dispatched { at: i64, job: (u16, u32), step: u16 },
    /// The executor set out to roll `job` back.
    RollbackDispatched { at: i64, job: (u16, u32) },
    /// The executor set out to restart `job`'s device.
    RebootDispatched { at: i64, job: (u16, u32) },
    /// The boot id the device reported right before its reboot (none when it cannot
    /// tell), durable before the reboot is asked for: after a restart of the engine, a
    /// device that reports another one is back and is not rebooted again.
    BootObserved {
        at: i64,
        job: (u16, u32),
        boot_id: Option<String>,
    },
    /// The version of the step's component the device reported right before the
    /// step's install (`at` is the step's start; none when the installer's `verify`
    /// failed or named none): what a rollback of the step returns to. Durable before
    /// the install is made.
    Observed {
        at: i64,
        job: (u16, u32),
        step: u16,
        version: Option<String>,
    },
    /// The engine restarted here; in-flight steps are verified before anything else.
    Resumed { at: i64 },
    /// Devices joined the rollout (their jobs follow as a `devices-added` event): what
    /// plugins need to reach them after a restart.
    Joined { at: i64, devices: Vec<StoredDevice> },
    /// A decision people follow (halts, rings completing, approvals asked for). Replay
    /// re-derives these; they are logged so that the event feed shows them.
    Decided { at: i64, decision: Note },
    /// Who asked for the operator command that follows (audit trail).
    Audit { at: i64, by: String, action: String },
    /// The log could not be written for a while (`reason`: a full disk, say); logged
    /// once it can be again, before the rollout goes on. Nothing was dispatched
    /// meanwhile.
    Stalled { at: i64, reason: String },
}

impl Record {
    /// The device job this record is about, if it is about one: `(ring, index)`.
    pub fn job(&self) -> Option<(u16, u32)> {
        match self {
            Record::Dispatched { job, .. }
            | Record::RollbackDispatched { job, .. }
            | Record::RebootDispatched { job, .. }
            | Record::BootObserved { job, .. }
            | Record::Observed { job, .. } => Some(*job),
            Record::Event {
                event:
                    StoredEvent::StepSucceeded { job, .. }
                    | StoredEvent::StepFailed { job, .. }
                    | StoredEvent::RebootFinished { job, .. }
                    | StoredEvent::RollbackFinished { job, .. },
                ..
            } => Some(*job),
            Record::Decided {
                decision: Note::DeviceUnresponsive { job, .. },
                ..
            } => Some(*job),
            _ => None,
        }
    }
}

/// A decision worth telling people about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Note {
    RingComplete {
        ring: u16,
    },
    AwaitingApproval {
        ring: u16,
    },
    /// Approved by the ring's `auto_approve` rule, without a person.
    ApprovedByRule {
        ring: u16,
        reason: String,
    },
    Halted {
        ring: u16,
        reason: String,
    },
    DeviceUnresponsive {
        job: (u16, u32),
        step: u16,
    },
    Completed,
}

/// The serializable form of a device as plugins see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDevice {
    pub id: String,
    pub hostname: String,
    pub tags: Vec<String>,
    pub facts: Vec<(String, String)>,
    pub components: Vec<(String, String)>,
    /// The schemes the inventory names for components (left out when it names none,
    /// as every record written before schemes existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemes: Vec<(String, ringleader_types::Scheme)>,
    /// The components' source packages, where known (left out when none is, as every
    /// record written before WIT 0.3.0).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<(String, String)>,
}

impl StoredDevice {
    pub fn from_device(device: &Device) -> StoredDevice {
        StoredDevice {
            id: device.id.clone(),
            hostname: device.hostname.clone(),
            tags: device.tags.clone(),
            facts: device.facts.clone(),
            components: device
                .components
                .iter()
                .map(|c| (c.name.clone(), c.version.clone()))
                .collect(),
            schemes: device
                .components
                .iter()
                .filter_map(|c| Some((c.name.clone(), c.scheme?)))
                .collect(),
            sources: device
                .components
                .iter()
                .filter_map(|c| Some((c.name.clone(), c.source.clone()?)))
                .collect(),
        }
    }

    pub fn into_device(self) -> Device {
        Device {
            id: self.id,
            hostname: self.hostname,
            tags: self.tags,
            facts: self.facts,
            components: self
                .components
                .into_iter()
                .map(|(name, version)| Component {
                    scheme: self
                        .schemes
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, s)| *s),
                    source: self
                        .sources
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, s)| s.clone()),
                    name,
                    version,
                })
                .collect(),
        }
    }
}

/// Where a rollout is, as of the last flush (the `status` view).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Time of the rollout (virtual or real), seconds since the Unix epoch.
    pub at: i64,
    pub phase: PhaseName,
    /// The ring the phase is about (none once completed or aborted).
    pub ring: Option<u16>,
    /// When a soak ends.
    pub until: Option<i64>,
    pub paused: bool,
    pub halt_reason: Option<String>,
    pub rings: Vec<RingStatus>,
    /// Log records written so far.
    pub records: u64,
    /// Halted with rollbacks running or waiting to start (an operator's, say): not
    /// over yet, a restart runs it on (left out when false, as in views written
    /// before it existed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsettled: bool,
}

/// The core's [`Phase`] without its data, as [`Status`] keeps it (stored as its
/// kebab-case name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PhaseName {
    Running,
    Soaking,
    AwaitingApproval,
    Halted,
    Completed,
    Aborted,
}

impl PhaseName {
    pub fn of(phase: &Phase) -> PhaseName {
        match phase {
            Phase::Running { .. } => PhaseName::Running,
            Phase::Soaking { .. } => PhaseName::Soaking,
            Phase::AwaitingApproval { .. } => PhaseName::AwaitingApproval,
            Phase::Halted { .. } => PhaseName::Halted,
            Phase::Completed => PhaseName::Completed,
            Phase::Aborted => PhaseName::Aborted,
        }
    }

    /// The stored name: `running`, `soaking`, `awaiting-approval`, `halted`,
    /// `completed` or `aborted`.
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseName::Running => "running",
            PhaseName::Soaking => "soaking",
            PhaseName::AwaitingApproval => "awaiting-approval",
            PhaseName::Halted => "halted",
            PhaseName::Completed => "completed",
            PhaseName::Aborted => "aborted",
        }
    }

    /// Nothing more will happen in it (rollbacks of a halt may still run).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            PhaseName::Completed | PhaseName::Aborted | PhaseName::Halted
        )
    }
}

impl std::fmt::Display for PhaseName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Compared with its stored name (tests read it so).
impl PartialEq<&str> for PhaseName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One ring's counts in a [`Status`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RingStatus {
    pub name: String,
    pub devices: usize,
    pub pending: usize,
    pub active: usize,
    pub done: usize,
    pub failed: usize,
    pub rolling_back: usize,
    pub rolled_back: usize,
    pub rollback_failed: usize,
    /// Of `active`: restarting or waiting for the reboot window (left out when 0, as
    /// in views written before reboots).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rebooting: usize,
    /// Reboots started so far.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reboots: usize,
    /// Of `done`: installed, a restart left pending (`reboot = "never"`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reboot_pending: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Status {
    pub fn of(core: &Core, at: Timestamp, records: u64) -> Status {
        let (ring, until, halt_reason) = match core.phase() {
            Phase::Running { ring } | Phase::AwaitingApproval { ring } => (Some(*ring), None, None),
            Phase::Soaking { ring, until } => (Some(*ring), Some(until.as_second()), None),
            Phase::Halted { ring, reason } => (Some(*ring), None, Some(reason.clone())),
            Phase::Completed | Phase::Aborted => (None, None, None),
        };
        Status {
            at: at.as_second(),
            phase: PhaseName::of(core.phase()),
            ring,
            until,
            paused: core.is_paused(),
            halt_reason,
            rings: (0..core.ring_count() as u16)
                .map(|r| {
                    let c = core.counts(r);
                    RingStatus {
                        name: core.spec().rings[usize::from(r)].name.clone(),
                        devices: core.ring_len(r),
                        pending: c.pending,
                        active: c.active,
                        done: c.done,
                        failed: c.failed,
                        rolling_back: c.rolling_back,
                        rolled_back: c.rolled_back,
                        rollback_failed: c.rollback_failed,
                        rebooting: c.rebooting,
                        reboots: core.reboots(r),
                        reboot_pending: c.reboot_pending,
                    }
                })
                .collect(),
            records,
            unsettled: matches!(core.phase(), Phase::Halted { .. }) && !core.is_settled(),
        }
    }
}

/// The serializable form of a core [`Event`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum StoredEvent {
    Tick,
    StepSucceeded {
        job: (u16, u32),
        step: u16,
        /// The change waits for a restart (left out when not, as in records written
        /// before reboots).
        #[serde(default, skip_serializing_if = "is_false")]
        reboot_pending: bool,
    },
    StepFailed {
        job: (u16, u32),
        step: u16,
        reason: String,
    },
    RollbackFinished {
        job: (u16, u32),
        ok: bool,
        /// Why it failed (left out when it did not, as in records written before
        /// reasons were kept).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A reboot finished: back and verified (`ok`), or why not.
    RebootFinished {
        job: (u16, u32),
        ok: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    Approve,
    Pause,
    Resume,
    Abort,
    /// An operator's rollback; its scope left out when it has none (as every record
    /// written before scopes existed).
    RollBack {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ring: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        job: Option<(u16, u32)>,
    },
    /// An operator's retry of failed devices (all of the halted ring's, or `job`).
    Retry {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        job: Option<(u16, u32)>,
    },
    DevicesAdded {
        ring: u16,
        jobs: Vec<StoredJob>,
    },
}

/// The serializable form of a [`DeviceJob`] (a device joining a running rollout).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredJob {
    pub device: String,
    /// IANA time zone name.
    pub timezone: String,
    pub batch: u32,
    pub steps: Vec<StoredStep>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredStep {
    pub patch: String,
    /// Seconds since the Unix epoch.
    pub not_before: Option<i64>,
    pub expedited: bool,
    /// Left out when false (as in records written before reboots).
    #[serde(default, skip_serializing_if = "is_false")]
    pub reboot_required: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub reboot_after: bool,
}

fn is_false(b: &bool) -> bool {
    !b
}

impl StoredJob {
    fn from_job(job: &DeviceJob) -> StoredJob {
        StoredJob {
            device: job.device.clone(),
            timezone: job.timezone.iana_name().unwrap_or("UTC").to_string(),
            batch: job.batch,
            steps: job
                .steps
                .iter()
                .map(|s| StoredStep {
                    patch: s.patch.clone(),
                    not_before: s.not_before.map(|t| t.as_second()),
                    expedited: s.expedited,
                    reboot_required: s.reboot_required,
                    reboot_after: s.reboot_after,
                })
                .collect(),
        }
    }

    fn into_job(self) -> DeviceJob {
        DeviceJob {
            device: self.device,
            timezone: jiff::tz::TimeZone::get(&self.timezone).unwrap_or(jiff::tz::TimeZone::UTC),
            batch: self.batch,
            steps: self
                .steps
                .into_iter()
                .map(|s| StepSpec {
                    patch: s.patch,
                    not_before: s.not_before.and_then(|t| Timestamp::from_second(t).ok()),
                    expedited: s.expedited,
                    reboot_required: s.reboot_required,
                    reboot_after: s.reboot_after,
                })
                .collect(),
        }
    }
}

impl StoredEvent {
    /// The stored form of `event`. Every event is logged, `Tick`s included: the core's
    /// decisions depend on when it is asked.
    pub fn from_event(event: &Event) -> StoredEvent {
        let j = |job: &JobId| (job.ring, job.index);
        match event {
            Event::Tick => StoredEvent::Tick,
            Event::StepSucceeded {
                job,
                step,
                reboot_pending,
            } => StoredEvent::StepSucceeded {
                job: j(job),
                step: *step,
                reboot_pending: *reboot_pending,
            },
            Event::RebootFinished { job, ok, reason } => StoredEvent::RebootFinished {
                job: j(job),
                ok: *ok,
                reason: reason.clone(),
            },
            Event::StepFailed { job, step, reason } => StoredEvent::StepFailed {
                job: j(job),
                step: *step,
                reason: reason.clone(),
            },
            Event::RollbackFinished { job, ok, reason } => StoredEvent::RollbackFinished {
                job: j(job),
                ok: *ok,
                reason: reason.clone(),
            },
            Event::Approve => StoredEvent::Approve,
            Event::Pause => StoredEvent::Pause,
            Event::Resume => StoredEvent::Resume,
            Event::Abort => StoredEvent::Abort,
            Event::RollBack { ring, job } => StoredEvent::RollBack {
                ring: *ring,
                job: job.as_ref().map(j),
            },
            Event::Retry { job } => StoredEvent::Retry {
                job: job.as_ref().map(j),
            },
            Event::DevicesAdded { ring, jobs } => StoredEvent::DevicesAdded {
                ring: *ring,
                jobs: jobs.iter().map(StoredJob::from_job).collect(),
            },
        }
    }

    pub fn into_event(self) -> Event {
        let j = |(ring, index): (u16, u32)| JobId { ring, index };
        match self {
            StoredEvent::Tick => Event::Tick,
            StoredEvent::StepSucceeded {
                job,
                step,
                reboot_pending,
            } => Event::StepSucceeded {
                job: j(job),
                step,
                reboot_pending,
            },
            StoredEvent::RebootFinished { job, ok, reason } => Event::RebootFinished {
                job: j(job),
                ok,
                reason,
            },
            StoredEvent::StepFailed { job, step, reason } => Event::StepFailed {
                job: j(job),
                step,
                reason,
            },
            StoredEvent::RollbackFinished { job, ok, reason } => Event::RollbackFinished {
                job: j(job),
                ok,
                reason,
            },
            StoredEvent::Approve => Event::Approve,
            StoredEvent::Pause => Event::Pause,
            StoredEvent::Resume => Event::Resume,
            StoredEvent::Abort => Event::Abort,
            StoredEvent::RollBack { ring, job } => Event::RollBack {
                ring,
                job: job.map(j),
            },
            StoredEvent::Retry { job } => Event::Retry { job: job.map(j) },
            StoredEvent::DevicesAdded { ring, jobs } => Event::DevicesAdded {
                ring,
                jobs: jobs.into_iter().map(StoredJob::into_job).collect(),
            },
        }
    }
}

/// Why the store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the rollout store: {0}")]
    Open(String),
    #[error("the rollout store in {} has layout version {found}; this ringleader reads version {LAYOUT_VERSION}", path.display())]
    Layout { path: PathBuf, found: String },
    #[error("the rollout store failed: {0}")]
    Io(String),
    #[error("the rollout store's log entry {seq} is unreadable: {message}")]
    Corrupt { seq: u64, message: String },
    #[error("the rollout store takes no more writes: {0}")]
    Stalled(String),
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

/// The durable log of one rollout.
///
/// Beside the log, an index of the records about each device job (the tree `jobs`,
/// keys `ring | index | seq`, big-endian): a device's history without reading the
/// whole log. An entry is written before its record, so a crash between the two leaves
/// an entry without a record (skipped), never a record missing from the index. A log
/// written before the index existed is indexed when it is opened.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    /// The open database; `None` while it is being opened again (see
    /// [`Store::reopen`]). Shared by the handle's clones.
    trees: Arc<RwLock<Option<Trees>>>,
    /// The first write or flush that failed (shared by the handle's clones): once set,
    /// nothing more is appended, so the durable log stays a prefix of what was meant
    /// to be written. [`Store::reopen`] clears it once a write succeeds again.
    fault: Arc<Mutex<Option<String>>>,
    /// Fault injection for the crash tests (see [`KILL_AT_RECORD`]).
    kill_at: Option<u64>,
}

/// The database and its trees.
#[derive(Debug, Clone)]
struct Trees {
    db: sled::Db,
    meta: sled::Tree,
    log: sled::Tree,
    jobs: sled::Tree,
    /// Number of the next record.
    next: Arc<AtomicU64>,
    /// Records below this number are durable (a flush after them succeeded): readers
    /// see only those, since a record not yet flushed can still be lost to a crash or
    /// a full disk and its number taken by the next one written.
    durable: Arc<AtomicU64>,
}

/// Fault injection for the crash tests: with this variable set to N, the process kills
/// itself (SIGKILL) as it is about to append the log's record N, wherever that falls
/// (between a batch's events and its flush, say). Never set in production.
pub const KILL_AT_RECORD: &str = "RINGLEADER_FAULT_KILL_AT_RECORD";

/// The `jobs` index key of `seq` about `job`; its first 6 bytes are the job's prefix.
fn job_key((ring, index): (u16, u32), seq: u64) -> [u8; 14] {
    let mut key = [0; 14];
    key[..2].copy_from_slice(&ring.to_be_bytes());
    key[2..6].copy_from_slice(&index.to_be_bytes());
    key[6..].copy_from_slice(&seq.to_be_bytes());
    key
}

impl Trees {
    fn open(dir: &Path) -> Result<Trees, StoreError> {
        let db = ringleader_runtime::durable::open(dir, SLED_CACHE_BYTES)
            .map_err(|e| StoreError::Open(e.to_string()))?;
        let meta = db.open_tree("meta").map_err(io)?;
        let log = db.open_tree("log").map_err(io)?;
        match meta.get("layout").map_err(io)? {
            None => {
                meta.insert("layout", LAYOUT_VERSION.to_string().as_bytes())
                    .map_err(io)?;
            }
            Some(v) if v.as_ref() == LAYOUT_VERSION.to_string().as_bytes() => {}
            Some(v) => {
                return Err(StoreError::Layout {
                    path: dir.to_owned(),
                    found: String::from_utf8_lossy(&v).into_owned(),
                });
            }
        }
        let jobs = db.open_tree("jobs").map_err(io)?;
        let next = match log.last().map_err(io)? {
            Some((k, _)) => u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 8])) + 1,
            None => 0,
        };
        Ok(Trees {
            db,
            meta,
            log,
            jobs,
            next: Arc::new(AtomicU64::new(next)),
            durable: Arc::new(AtomicU64::new(next)),
        })
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let store = Store {
            dir: dir.to_owned(),
            trees: Arc::new(RwLock::new(Some(Trees::open(dir)?))),
            fault: Arc::default(),
            kill_at: std::env::var(KILL_AT_RECORD)
                .ok()
                .and_then(|n| n.parse().ok()),
        };
        if store.trees()?.meta.get("jobs-index").map_err(io)?.is_none()
            && let Err(e) = store.index_jobs()
        {
            // The log itself is checked when the rollout is replayed; until then, and
            // for a log that cannot be read, devices' histories are what is indexed.
            tracing::warn!(
                "cannot index the rollout log in {} by device: {e}",
                dir.display()
            );
        }
        Ok(store)
    }

    /// Opens the database again, for a store whose writes failed (sled takes no more
    /// writes after a failed one): what is durable is read back, and when a write
    /// succeeds again the store takes writes again. Every clone of this handle sees
    /// the database opened again. Blocks while other users of the old one finish.
    pub fn reopen(&self) -> Result<(), StoreError> {
        *self.trees.write().unwrap_or_else(|e| e.into_inner()) = None;
        // durable::open waits for the lock the old handle's threads still hold.
        let trees = Trees::open(&self.dir)?;
        let probe = trees
            .meta
            .insert("probe", &b"1"[..])
            .map(|_| ())
            .and_then(|()| trees.db.flush().map(|_| ()));
        *self.trees.write().unwrap_or_else(|e| e.into_inner()) = Some(trees);
        match probe {
            Ok(()) => {
                *self.fault.lock().unwrap_or_else(|e| e.into_inner()) = None;
                Ok(())
            }
            Err(e) => {
                let reason = format!("cannot write the rollout log: {e}");
                *self.fault.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.clone());
                Err(StoreError::Stalled(reason))
            }
        }
    }

    fn trees(&self) -> Result<Trees, StoreError> {
        self.trees
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| StoreError::Stalled("the rollout store is being opened again".into()))
    }

    /// Indexes every record of the log by its job (a store written before the index).
    fn index_jobs(&self) -> Result<(), StoreError> {
        let t = self.trees()?;
        let mut seq = 0;
        let mut failed = None;
        self.replay(|record| {
            if let Some(job) = record.job()
                && let Err(e) = t.jobs.insert(job_key(job, seq), &[])
            {
                failed.get_or_insert(e);
            }
            seq += 1;
        })?;
        if let Some(e) = failed {
            return Err(io(e));
        }
        t.meta.insert("jobs-index", "1").map_err(io)?;
        self.flush()
    }

    /// What the rollout was started from, if it was.
    pub fn inputs(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .trees()?
            .meta
            .get("inputs")
            .map_err(io)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    pub fn set_inputs(&self, inputs: &str) -> Result<(), StoreError> {
        self.trees()?
            .meta
            .insert("inputs", inputs.as_bytes())
            .map_err(io)?;
        self.flush()
    }

    /// Appends `record` (durable after the next [`Store::flush`]). Refused once a
    /// write failed ([`Store::fault`]).
    pub fn append(&mut self, record: &Record) -> Result<u64, StoreError> {
        self.refuse_if_stalled()?;
        let t = self.trees()?;
        let seq = t.next.load(Ordering::Relaxed);
        if self.kill_at == Some(seq) {
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::KILL,
            );
        }
        let value = serde_json::to_vec(record).map_err(io)?;
        let written = match record.job() {
            Some(job) => t.jobs.insert(job_key(job, seq), &[]).map(|_| ()),
            None => Ok(()),
        }
        .and_then(|()| t.log.insert(seq.to_be_bytes(), value).map(|_| ()));
        self.failing(written.map_err(|e| format!("cannot write the rollout log: {e}")))?;
        t.next.store(seq + 1, Ordering::Relaxed);
        Ok(seq)
    }

    /// Why the store stopped taking writes, if it did.
    pub fn fault(&self) -> Option<String> {
        self.fault.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops the store taking writes, for `reason` (the first reason is kept).
    pub fn stall(&self, reason: String) {
        let mut fault = self.fault.lock().unwrap_or_else(|e| e.into_inner());
        if fault.is_none() {
            tracing::error!("{reason}");
            *fault = Some(reason);
        }
    }

    fn refuse_if_stalled(&self) -> Result<(), StoreError> {
        match self.fault() {
            Some(reason) => Err(StoreError::Stalled(reason)),
            None => Ok(()),
        }
    }

    /// A write's result; a failure stalls the store.
    fn failing<T>(&self, result: Result<T, String>) -> Result<T, StoreError> {
        result.map_err(|reason| {
            self.stall(reason.clone());
            StoreError::Stalled(reason)
        })
    }

    /// Where the rollout is, as of the last flush; `None` before the first.
    pub fn status(&self) -> Result<Option<Status>, StoreError> {
        match self.trees()?.meta.get("status").map_err(io)? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| StoreError::Io(format!("the status view is unreadable: {e}"))),
        }
    }

    /// Rewrites the status view (durable with the next [`Store::flush`]).
    pub fn set_status(&self, status: &Status) -> Result<(), StoreError> {
        self.refuse_if_stalled()?;
        let value = serde_json::to_vec(status).map_err(io)?;
        let written = self.trees()?.meta.insert("status", value).map(|_| ());
        self.failing(written.map_err(|e| format!("cannot write the rollout status: {e}")))
    }

    /// Makes everything appended so far durable. The executor flushes before it acts.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.refuse_if_stalled()?;
        let t = self.trees()?;
        let upto = t.next.load(Ordering::Relaxed);
        let flushed = t.db.flush().map(|_| ());
        self.failing(flushed.map_err(|e| format!("cannot flush the rollout log: {e}")))?;
        t.durable.fetch_max(upto, Ordering::Relaxed);
        Ok(())
    }

    /// Every record, in order, checking that sequence numbers have no gaps.
    pub fn records(&self) -> Result<Vec<Record>, StoreError> {
        let mut out = Vec::new();
        self.replay(|record| out.push(record))?;
        Ok(out)
    }

    /// Gives every record to `apply`, in order, one at a time, checking that sequence
    /// numbers have no gaps; returns how many there were.
    pub fn replay(&self, mut apply: impl FnMut(Record)) -> Result<u64, StoreError> {
        let mut count = 0;
        for (expected, entry) in self.trees()?.log.iter().enumerate() {
            let (k, v) = entry.map_err(io)?;
            let seq = u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0xff; 8]));
            if seq != expected as u64 {
                return Err(StoreError::Corrupt {
                    seq: expected as u64,
                    message: format!("the log jumps from {} to {seq}", expected as i64 - 1),
                });
            }
            apply(serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                seq,
                message: e.to_string(),
            })?);
            count += 1;
        }
        Ok(count)
    }

    /// Number of durable records (those a flush made durable, through any clone of
    /// this handle): what readers are shown. Records appended since can still be lost
    /// to a crash or a full disk.
    pub fn committed_len(&self) -> u64 {
        self.trees()
            .map_or(0, |t| t.durable.load(Ordering::Relaxed))
    }

    /// The records about device job `job` (`(ring, index)`), in order, each with its
    /// number.
    pub fn records_of_job(&self, job: (u16, u32)) -> Result<Vec<(u64, Record)>, StoreError> {
        let t = self.trees()?;
        let mut out = Vec::new();
        for entry in t.jobs.scan_prefix(&job_key(job, 0)[..6]) {
            let (k, _) = entry.map_err(io)?;
            let seq = u64::from_be_bytes(
                k.get(6..)
                    .and_then(|b| b.try_into().ok())
                    .unwrap_or([0xff; 8]),
            );
            // Indexed, and the engine stopped before the record was written.
            let Some(v) = t.log.get(seq.to_be_bytes()).map_err(io)? else {
                continue;
            };
            let record: Record = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                seq,
                message: e.to_string(),
            })?;
            // An entry left by a stop before its record, whose number a later record
            // (about another job, or none) took: not this job's.
            if record.job() == Some(job) {
                out.push((seq, record));
            }
        }
        Ok(out)
    }

    /// Durable records ([`Store::committed_len`]) from sequence number `from` on, at
    /// most `limit`, each with its number. A record shown is never taken back.
    pub fn records_from(&self, from: u64, limit: usize) -> Result<Vec<(u64, Record)>, StoreError> {
        let mut out = Vec::new();
        let t = self.trees()?;
        let durable = t.durable.load(Ordering::Relaxed);
        if from >= durable {
            return Ok(out);
        }
        for entry in t
            .log
            .range(from.to_be_bytes()..durable.to_be_bytes())
            .take(limit)
        {
            let (k, v) = entry.map_err(io)?;
            let seq = u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0xff; 8]));
            let record = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                seq,
                message: e.to_string(),
            })?;
            out.push((seq, record));
        }
        Ok(out)
    }

    /// The log holds a record of the rollout running, not only audit entries (the
    /// start's, written before it first runs): a run from it resumes.
    pub fn has_run(&self) -> bool {
        let Ok(t) = self.trees() else {
            return !self.is_empty();
        };
        t.log.iter().values().any(|value| {
            !matches!(
                value.map(|v| serde_json::from_slice::<Record>(&v)),
                Ok(Ok(Record::Audit { .. }))
            )
        })
    }

    /// Number of records appended through this handle (and before it was opened).
    pub fn len(&self) -> u64 {
        self.trees
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(0, |t| t.next.load(Ordering::Relaxed))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dispatched(ring: u16, index: u32, at: i64) -> Record {
        Record::Dispatched {
            at,
            job: (ring, index),
            step: 0,
        }
    }

    fn succeeded(ring: u16, index: u32, at: i64) -> Record {
        Record::Event {
            at,
            event: StoredEvent::StepSucceeded {
                job: (ring, index),
                step: 0,
                reboot_pending: false,
            },
        }
    }

    #[test]
    fn a_job_s_records_are_found_by_the_index_and_only_they() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = Store::open(dir.path()).unwrap();
            store.append(&dispatched(0, 1, 1)).unwrap();
            store.append(&dispatched(0, 256, 1)).unwrap();
            store.append(&dispatched(1, 1, 1)).unwrap();
            store.append(&Record::Resumed { at: 2 }).unwrap();
            store.append(&succeeded(0, 1, 3)).unwrap();
            store.append(&succeeded(0, 256, 3)).unwrap();
            store.flush().unwrap();
        }
        let mut store = Store::open(dir.path()).unwrap();
        let of = |store: &Store, ring, index| -> Vec<u64> {
            let records = store.records_of_job((ring, index)).unwrap();
            for (_, record) in &records {
                assert_eq!(record.job(), Some((ring, index)));
            }
            records.into_iter().map(|(seq, _)| seq).collect()
        };
        assert_eq!(of(&store, 0, 1), [0, 4]);
        assert_eq!(of(&store, 0, 256), [1, 5]);
        assert_eq!(of(&store, 1, 1), [2]);
        assert!(of(&store, 2, 0).is_empty());
        store.append(&succeeded(1, 1, 4)).unwrap();
        assert_eq!(of(&store, 1, 1), [2, 6]);

        // The engine stopped between the index entry and its record: not a record; and
        // when a record about another job takes that number later, not this job's.
        store
            .trees()
            .unwrap()
            .jobs
            .insert(job_key((1, 1), 7), &[])
            .unwrap();
        assert_eq!(of(&store, 1, 1), [2, 6]);
        assert_eq!(store.append(&dispatched(0, 1, 5)).unwrap(), 7);
        assert_eq!(of(&store, 1, 1), [2, 6]);
        assert_eq!(of(&store, 0, 1), [0, 4, 7]);
    }

    #[test]
    fn a_log_written_before_the_index_is_indexed_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = Store::open(dir.path()).unwrap();
            store.append(&dispatched(0, 1, 1)).unwrap();
            store.append(&succeeded(0, 1, 2)).unwrap();
            // As an older ringleader left it: no index.
            store.trees().unwrap().jobs.clear().unwrap();
            store.trees().unwrap().meta.remove("jobs-index").unwrap();
            store.flush().unwrap();
            assert!(store.records_of_job((0, 1)).unwrap().is_empty());
        }
        let store = Store::open(dir.path()).unwrap();
        let seqs: Vec<u64> = store
            .records_of_job((0, 1))
            .unwrap()
            .into_iter()
            .map(|(seq, _)| seq)
            .collect();
        assert_eq!(seqs, [0, 1]);
    }

    #[test]
    fn records_survive_reopening_in_order_without_gaps() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = Store::open(dir.path()).unwrap();
            store.set_inputs("{\"seed\":1}").unwrap();
            store
                .append(&Record::Event {
                    at: 5,
                    event: StoredEvent::Tick,
                })
                .unwrap();
            store
                .append(&Record::Dispatched {
                    at: 5,
                    job: (0, 1),
                    step: 0,
                })
                .unwrap();
            store.flush().unwrap();
        }
        let mut store = Store::open(dir.path()).unwrap();
        assert_eq!(store.inputs().unwrap().as_deref(), Some("{\"seed\":1}"));
        assert_eq!(store.len(), 2);
        store
            .append(&Record::Event {
                at: 6,
                event: StoredEvent::StepFailed {
                    job: (0, 1),
                    step: 0,
                    reason: "x".into(),
                },
            })
            .unwrap();
        let records = store.records().unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(
            records[1],
            Record::Dispatched {
                at: 5,
                job: (0, 1),
                step: 0
            }
        );
    }

    /// A `joined` record as this layout writes it: devices as plugins see them, facts
    /// and components as `[name, value]` pairs.
    const JOINED_V1: &str = r#"{"type":"joined","at":1764460800,"devices":[{"id":"srv-ams-1","hostname":"10.1.0.11","tags":["lab","critical"],"facts":[["site","ams"],["timezone","Europe/Amsterdam"]],"components":[["bios","2.10.0"],["bmc-firmware","7.00.00.00"]]}]}"#;

    #[test]
    fn a_joined_record_of_layout_1_reads_back_and_is_written_the_same() {
        let device = Device {
            id: "srv-ams-1".into(),
            hostname: "10.1.0.11".into(),
            tags: vec!["lab".into(), "critical".into()],
            facts: vec![
                ("site".into(), "ams".into()),
                ("timezone".into(), "Europe/Amsterdam".into()),
            ],
            components: vec![
                Component {
                    name: "bios".into(),
                    version: "2.10.0".into(),
                    scheme: None,
                    source: None,
                },
                Component {
                    name: "bmc-firmware".into(),
                    version: "7.00.00.00".into(),
                    scheme: None,
                    source: None,
                },
            ],
        };
        let record: Record = serde_json::from_str(JOINED_V1).unwrap();
        let Record::Joined { at, devices } = record.clone() else {
            panic!("not a joined record: {record:?}");
        };
        assert_eq!(at, 1_764_460_800);
        let read: Vec<Device> = devices.into_iter().map(StoredDevice::into_device).collect();
        assert_eq!(read, std::slice::from_ref(&device));
        let written = Record::Joined {
            at,
            devices: vec![StoredDevice::from_device(&device)],
        };
        assert_eq!(serde_json::to_string(&written).unwrap(), JOINED_V1);
    }

    #[test]
    fn records_of_before_reasons_and_scopes_read_back_and_are_written_the_same() {
        for old in [
            r#"{"type":"event","at":5,"event":{"kind":"roll-back"}}"#,
            r#"{"type":"event","at":5,"event":{"kind":"rollback-finished","job":[0,1],"ok":false}}"#,
        ] {
            let record: Record = serde_json::from_str(old).unwrap();
            assert_eq!(serde_json::to_string(&record).unwrap(), old);
        }
        let record: Record = serde_json::from_str(
            r#"{"type":"event","at":5,"event":{"kind":"rollback-finished","job":[0,1],"ok":false,"reason":"x"}}"#,
        )
        .unwrap();
        let Record::Event { event, .. } = record else {
            panic!("not an event");
        };
        assert_eq!(
            event.into_event(),
            Event::RollbackFinished {
                job: JobId { ring: 0, index: 1 },
                ok: false,
                reason: Some("x".into())
            }
        );
    }

    #[test]
    fn events_round_trip() {
        let e = Event::StepSucceeded {
            job: JobId { ring: 2, index: 9 },
            step: 1,
            reboot_pending: true,
        };
        assert_eq!(StoredEvent::from_event(&e).into_event(), e);
        let e = Event::RebootFinished {
            job: JobId { ring: 0, index: 3 },
            ok: false,
            reason: Some("not back".into()),
        };
        assert_eq!(StoredEvent::from_event(&e).into_event(), e);
        // A record written before reboots reads as no reboot pending.
        let old: StoredEvent =
            serde_json::from_str(r#"{"kind":"step-succeeded","job":[0,1],"step":0}"#).unwrap();
        assert_eq!(
            old,
            StoredEvent::StepSucceeded {
                job: (0, 1),
                step: 0,
                reboot_pending: false
            }
        );
    }
}
