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
