//! `ringleader.demo/v1`: the summary `ringleader demo --json` prints.

use crate::{Document, Schema};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

named! {
    /// How the demo's rollout ended.
    pub enum FinalState {
        Completed = "completed",
        Halted = "halted",
        Aborted = "aborted",
        /// It stopped before its end.
        Stalled = "stalled",
    }
}

/// `ringleader.demo/v1` (docs/schemas/demo.v1.json).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoV1 {
    pub schema: Schema<DemoV1>,
    pub policy: String,
    pub devices: usize,
    pub seed: u64,
    pub final_state: FinalState,
    pub halt_reason: Option<String>,
    pub rings: Vec<RingV1>,
    pub outcomes: OutcomesV1,
    pub install_calls: u64,
    pub rollback_calls: u64,
    pub approvals: u64,
    pub duplicate_installs: u64,
    /// SHA-256 over every device's id and outcome, in order: equal digests mean equal
    /// per-device outcomes.
    pub outcomes_digest: String,
    pub virtual_start: Timestamp,
    pub virtual_end: Timestamp,
    pub virtual_duration_seconds: i64,
    pub real_duration_ms: u128,
    /// Of the real duration, the time spent inside installer plugin calls (the
    /// simulated devices' own work included), in this process.
    pub plugin_call_ms: u128,
}

impl Document for DemoV1 {
    const SCHEMA: &'static str = "ringleader.demo/v1";
}

/// One ring at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingV1 {
    pub name: String,
    pub devices: usize,
    /// The states at the end, each device once.
    pub done: usize,
    pub failed: usize,
    pub rolled_back: usize,
    pub rollback_failed: usize,
    pub not_started: usize,
    /// Devices whose install failed, as failure budgets and halt reasons count them:
    /// those that had installed a step were rolled back since (`rolled_back`).
    pub failures: usize,
    /// Reboots started in the ring (devices restarted after their steps).
    #[serde(default)]
    pub reboots: usize,
    /// Of `done`: installed, a restart left pending (`reboot = "never"`).
    #[serde(default)]
    pub reboot_pending: usize,
}

/// Every device once, by its state at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomesV1 {
    pub done: usize,
    pub failed: usize,
    pub rolled_back: usize,
    pub rollback_failed: usize,
    pub not_started: usize,
}

/// `ringleader.demo-continuous/v1` (docs/schemas/demo-continuous.v1.json): what
/// `ringleader demo --continuous --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContinuousV1 {
    pub schema: Schema<ContinuousV1>,
    pub policy: String,
    pub devices: usize,
    pub seed: u64,
    pub virtual_start: Timestamp,
    pub virtual_end: Timestamp,
    pub poll_every_seconds: u64,
    pub polls: u64,
    pub schedules: Vec<String>,
    /// Every patch the sources reported, as first seen (new, or a new revision).
    pub publications: Vec<PublicationV1>,
    /// Every run, in time order: started, nothing to do, failed, or skipped by a freeze.
    pub runs: Vec<ContinuousRunV1>,
    pub rollouts: Vec<ContinuousRolloutV1>,
    /// Per severity, most severe first, as of `virtual_end`.
    pub time_to_patch: Vec<TimeToPatchV1>,
    pub real_duration_ms: u128,
}

impl Document for ContinuousV1 {
    const SCHEMA: &'static str = "ringleader.demo-continuous/v1";
}

/// A patch as a poll first saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicationV1 {
    pub id: String,
    pub kind: crate::plugin::KindV1,
    pub severity: crate::plugin::SeverityV1,
    pub source: String,
    pub released: Timestamp,
    pub first_seen: Timestamp,
    /// 1 when new; one more each time what decides its install changed.
    pub revision: u32,
}

named! {
    /// What a run did.
    pub enum RunResultV1 {
        Started = "started",
        NothingToDo = "nothing-to-do",
        Failed = "failed",
        /// A freeze skipped it.
        Skipped = "skipped",
    }
}

/// One run of a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContinuousRunV1 {
    pub at: Timestamp,
    pub schedule: String,
    /// The patch an expedited run was started for; `null` for the recurrence's runs.
    pub expedited: Option<String>,
    pub outcome: RunResultV1,
    /// The rollout started (`r1`, ...).
    pub rollout: Option<String>,
    pub patches: Vec<String>,
    /// Devices with something to install.
    pub devices: Option<usize>,
    /// Selected patches still waiting for their approval.
    pub waiting: Vec<WaitingV1>,
    /// Why nothing was done, why it failed, or the freeze that skipped it.
    pub why: Option<String>,
}

/// A patch a schedule selects but has not approved yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingV1 {
    pub id: String,
    /// When its approval rule approves it.
    pub from: Timestamp,
}

/// A run's rollout at its end, or as it stood at `virtual_end`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContinuousRolloutV1 {
    pub id: String,
    pub schedule: String,
    pub expedited: bool,
    pub started: Timestamp,
    /// `null`: still going at `virtual_end`.
    pub finished: Option<Timestamp>,
    pub state: crate::rollout::RolloutState,
    pub patches: Vec<String>,
    pub devices: usize,
    pub installs: usize,
    /// Devices whose install (or rollback) failed, at the end.
    pub failed_devices: usize,
    pub rolled_back: usize,
    pub halt_reason: Option<String>,
}

/// Time to patch for one severity (docs/reports.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeToPatchV1 {
    pub severity: crate::plugin::SeverityV1,
    pub patches: u32,
    /// Devices that needed one of them, each (device, patch) once.
    pub pairs: u32,
    pub installed: u32,
    pub outstanding: u32,
    /// From first seen to install, over the installed pairs; `null` without any.
    pub median_seconds: Option<i64>,
    pub p95_seconds: Option<i64>,
    /// The share (0 to 1) of the decided pairs installed within 7, 14 and 30 days;
    /// `null` while none is decided.
    pub within_7_days: Option<f64>,
    pub within_14_days: Option<f64>,
    pub within_30_days: Option<f64>,
}
