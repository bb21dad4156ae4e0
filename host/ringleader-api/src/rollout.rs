//! A rollout as the daemon shows it: `ringleader.status/v1` and the list of them
//! (`ringleader.rollouts/v1`), the body that starts one, the answer to an operator's
//! action (`ringleader.accepted/v1`) and the daemon's health (`ringleader.health/v1`).

use crate::{Document, Schema};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

named! {
    /// Where a rollout is (`ringleader.status/v1` `state`).
    pub enum RolloutState {
        /// Discovery and planning run; nothing is dispatched yet.
        Preparing = "preparing",
        /// A ring installs.
        Running = "running",
        /// A ring waits out its soak.
        Soaking = "soaking",
        /// A ring waits for an operator's approval.
        AwaitingApproval = "awaiting-approval",
        /// A ring halted (and rolls back, or has).
        Halted = "halted",
        /// Every ring completed.
        Completed = "completed",
        /// An operator aborted it.
        Aborted = "aborted",
        /// The daemon stopped; it resumes when the daemon starts.
        Stopped = "stopped",
        /// It could not be prepared (see `error`).
        Failed = "failed",
        /// Its log cannot be written (see `error`): nothing is dispatched, it goes on
        /// once writes succeed.
        Stalled = "stalled",
        /// Its store cannot be read (see `error`); it is left as it is.
        Unreadable = "unreadable",
    }
}

named! {
    /// Which clock a rollout runs on.
    pub enum Clock {
        Real = "real",
        /// Simulated timing: weeks pass in seconds.
        Virtual = "virtual",
    }
}

named! {
    /// What a rollout waits for (`waiting.for`): the gate it stands at.
    pub enum Gate {
        /// An operator's approval of the ring.
        Approval = "approval",
        /// The ring's soak.
        Soak = "soak",
        /// A maintenance window, freeze or deferral.
        Window = "window",
        /// An operator to resume it (paused).
        Resume = "resume",
    }
}

named! {
    /// An operator's action on a rollout (`POST /v1/rollouts/{id}/{action}`).
    pub enum Action {
        /// Approve the ring that waits for approval.
        Approve = "approve",
        /// What runs finishes, nothing new starts.
        Pause = "pause",
        Resume = "resume",
        /// Nothing new starts, ever.
        Abort = "abort",
        /// Halt the ring running now and roll it back; after a halt, roll back every
        /// ring that installed (or, with `ring` or `device`, one ring or one device).
        Rollback = "rollback",
        /// After a halt: run the halted ring's failed devices again (or, with
        /// `device`, one of them).
        Retry = "retry",
    }
}

/// `ringleader.status/v1` (docs/schemas/status.v1.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusV1 {
    pub schema: Schema<StatusV1>,
    pub id: String,
    /// The policy's name (none when the rollout is unreadable).
    pub policy: Option<String>,
    /// None when the rollout is unreadable.
    pub clock: Option<Clock>,
    /// When the rollout started (virtual time for virtual-clock rollouts).
    pub started: Option<Timestamp>,
    pub state: RolloutState,
    /// Completed, halted (and done rolling back), aborted or failed: nothing more will
    /// happen.
    pub ended: bool,
    pub paused: bool,
    /// The ring the state is about.
    pub ring: Option<String>,
    /// Why nothing is starting now, when that is so.
    pub waiting: Option<WaitingV1>,
    pub halt_reason: Option<String>,
    pub error: Option<String>,
    /// The rollout's time now (virtual or real).
    pub time: Option<Timestamp>,
    pub rings: Vec<RingV1>,
    /// Cursor of the next event: `events --since` this to see only what follows.
    pub cursor: u64,
}

impl Document for StatusV1 {
    const SCHEMA: &'static str = "ringleader.status/v1";
}

/// Why nothing is starting now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingV1 {
    #[serde(rename = "for")]
    pub for_: Gate,
    pub ring: Option<String>,
    /// When the soak ends.
    pub until: Option<Timestamp>,
}

/// One ring's devices by state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingV1 {
    pub name: String,
    pub devices: usize,
    pub pending: usize,
    pub active: usize,
    pub done: usize,
    pub failed: usize,
    pub rolling_back: usize,
    pub rolled_back: usize,
    pub rollback_failed: usize,
    /// Of `active`: restarting, or waiting for the reboot window.
    #[serde(default)]
    pub rebooting: usize,
    /// Reboots started so far.
    #[serde(default)]
    pub reboots: usize,
    /// Of `done`: installed, a restart left pending (`reboot = "never"`).
    #[serde(default)]
    pub reboot_pending: usize,
}

/// `ringleader.rollouts/v1` (docs/schemas/rollouts.v1.json): every rollout, by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutsV1 {
    pub schema: Schema<RolloutsV1>,
    pub rollouts: Vec<StatusV1>,
}

impl Document for RolloutsV1 {
    const SCHEMA: &'static str = "ringleader.rollouts/v1";
}

/// The body of `POST /v1/rollouts` (docs/api/openapi.yaml). Unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartV1 {
    pub policy: FileV1,
    /// An inventory file; or `simulated` for the demo's simulated fleet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<FileV1>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulated: Option<SimulatedV1>,
    /// `real` (default) or `virtual` (simulated timing; needs a simulated fleet or `sim`
    /// devices): a [`Clock`] name, kept as text so that the daemon's answer to another
    /// names the choices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<String>,
    /// Seed of the simulated timing (virtual clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// When a virtual-clock rollout starts (RFC 3339); default now. Text, so that the
    /// daemon's answer to a bad one says what is wrong with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
}

/// A file sent in a rollout start: its name (for messages) and its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileV1 {
    pub name: String,
    pub text: String,
}

/// The demo's simulated fleet, instead of an inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedV1 {
    pub devices: usize,
    #[serde(default = "one")]
    pub seed: u64,
    /// Installs that fail, per mille.
    #[serde(default = "two")]
    pub fail_permille: u64,
    /// Installs after which the device never reports, per mille.
    #[serde(default = "one")]
    pub hang_permille: u64,
}

fn one() -> u64 {
    1
}

fn two() -> u64 {
    2
}

/// `ringleader.accepted/v1` (docs/schemas/accepted.v1.json): the daemon took an
/// operator's action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedV1 {
    pub schema: Schema<AcceptedV1>,
    pub rollout: String,
    pub action: Action,
}

impl Document for AcceptedV1 {
    const SCHEMA: &'static str = "ringleader.accepted/v1";
}

named! {
    /// The daemon's health (`status`).
    pub enum Health {
        Ok = "ok",
        /// Some rollout stalls or cannot be read: see `problems`.
        Degraded = "degraded",
    }
}

named! {
    /// What is wrong with a rollout, in the daemon's health.
    pub enum ProblemState {
        /// Its log cannot be written.
        Stalled = "stalled",
        /// Its store cannot be read.
        Unreadable = "unreadable",
    }
}

/// `ringleader.health/v1` (docs/schemas/health.v1.json): `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthV1 {
    pub schema: Schema<HealthV1>,
    pub status: Health,
    /// How many rollouts the daemon holds (readable ones).
    pub rollouts: usize,
    pub problems: Vec<ProblemV1>,
}

impl Document for HealthV1 {
    const SCHEMA: &'static str = "ringleader.health/v1";
}

/// A rollout that stalls or cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemV1 {
    pub rollout: String,
    pub state: ProblemState,
    pub error: String,
}
