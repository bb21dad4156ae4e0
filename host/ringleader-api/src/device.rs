//! A rollout's devices: `ringleader.devices/v1` (all of them) and
//! `ringleader.device/v1` (one, with its history).

use crate::event::EventV1;
use crate::{Document, Schema};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

named! {
    /// Where a device's job is.
    pub enum DeviceState {
        /// Not started.
        Pending = "pending",
        /// A step runs on it.
        Running = "running",
        /// Between two of its steps (the next waits, e.g. for a window).
        BetweenSteps = "between-steps",
        /// Restarting after its steps (or waiting for the reboot window), then verified.
        Rebooting = "rebooting",
        Done = "done",
        Failed = "failed",
        RollingBack = "rolling-back",
        RolledBack = "rolled-back",
        RollbackFailed = "rollback-failed",
    }
}

/// A device as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceV1 {
    pub id: String,
    pub ring: String,
    pub state: DeviceState,
    /// Why its install failed, when it did (kept once it is rolled back).
    pub reason: Option<String>,
    /// Why its rollback failed, when it did (`rollback-failed`).
    #[serde(default)]
    pub rollback_reason: Option<String>,
    /// Component versions now: as inventoried, updated by the steps that succeeded.
    pub versions: BTreeMap<String, String>,
    /// Patches of the rollout not installed on it (yet).
    pub pending: Vec<String>,
    /// How long the oldest of those has been due (released, and past its deferral), in
    /// seconds; none when nothing is overdue.
    pub behind_seconds: Option<i64>,
    /// Its steps are installed and a restart the ring's `reboot = "never"` left
    /// pending (`done`: "installed, reboot pending"). Absent (false) in answers from
    /// before reboots.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reboot_pending: bool,
}

/// `ringleader.devices/v1` (docs/schemas/devices.v1.json).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevicesV1 {
    pub schema: Schema<DevicesV1>,
    pub rollout: String,
    /// The rollout's time the answer is of.
    pub time: Timestamp,
    pub devices: Vec<DeviceV1>,
}

impl Document for DevicesV1 {
    const SCHEMA: &'static str = "ringleader.devices/v1";
}

/// `ringleader.device/v1` (docs/schemas/device.v1.json): one device and every event
/// of the log about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceHistoryV1 {
    pub schema: Schema<DeviceHistoryV1>,
    pub rollout: String,
    pub device: DeviceV1,
    pub history: Vec<EventV1>,
}

impl Document for DeviceHistoryV1 {
    const SCHEMA: &'static str = "ringleader.device/v1";
}
