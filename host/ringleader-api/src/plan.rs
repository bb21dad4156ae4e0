//! What `ringleader plan` answers: `ringleader.plan/v1`, and `ringleader.explain/v1`
//! for one device (also `GET /v1/rollouts/{id}/explain/{device}`).

use crate::{Document, Schema};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// `ringleader.plan/v1` (docs/schemas/plan.v1.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanV1 {
    pub schema: Schema<PlanV1>,
    pub policy: String,
    pub planned_at: Timestamp,
    pub rings: Vec<RingV1>,
    /// Devices no ring selects.
    pub unassigned: Vec<String>,
    pub skipped: Vec<SkipV1>,
    pub totals: TotalsV1,
}

impl Document for PlanV1 {
    const SCHEMA: &'static str = "ringleader.plan/v1";
}

/// A ring of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingV1 {
    pub name: String,
    pub earliest_start: Timestamp,
    pub soak_seconds: u64,
    pub approval: bool,
    pub batch_sizes: Vec<usize>,
    pub devices: Vec<DeviceV1>,
}

/// A device of a ring and its patches, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceV1 {
    pub id: String,
    pub site: String,
    pub timezone: String,
    pub batch: u32,
    pub patches: Vec<StepV1>,
}

/// One patch on one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepV1 {
    pub id: String,
    pub component: String,
    /// The device's version of the component now (none when it has none).
    pub from: Option<String>,
    pub to: String,
    /// The version scheme `from` and `to` are compared in (docs/policies.md,
    /// "Versions").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<ringleader_types::Scheme>,
    pub earliest_start: Timestamp,
    pub reboot_after: bool,
    pub expedited: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deferred_until: Option<Timestamp>,
    /// The freeze it waits out, when one delays it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen: Option<String>,
    pub waited_for_window: bool,
}

named! {
    /// Why a patch is not planned for a device (the planner's reason codes).
    pub enum SkipReason {
        AlreadyAtOrAbove = "already-at-or-above",
        NotApplicable = "not-applicable",
        NotApproved = "not-approved",
        Superseded = "superseded",
        MissingPrerequisite = "missing-prerequisite",
        PrerequisiteNotPlanned = "prerequisite-not-planned",
        NoRing = "no-ring",
        ComponentAbsent = "component-absent",
        SchemeMismatch = "scheme-mismatch",
        UnreadableVersion = "unreadable-version",
    }
}

/// A patch not planned for a device, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkipV1 {
    pub device: String,
    pub patch: String,
    pub reason: SkipReason,
    /// The reason for people.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotalsV1 {
    pub devices: usize,
    pub devices_in_rings: usize,
    pub device_patches: usize,
    pub skipped: usize,
    pub refused_patches: usize,
    /// Documents (or entries) of their feeds the patch sources refused: each a warning
    /// the source logged.
    pub refused_documents: usize,
}

/// `ringleader.explain/v1` (docs/schemas/explain.v1.json): every patch for one device,
/// planned (when, in which ring and order) or why not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExplainV1 {
    pub schema: Schema<ExplainV1>,
    pub device: String,
    pub site: String,
    pub timezone: String,
    /// The device's ring; none when no ring selects it.
    pub ring: Option<String>,
    pub planned_at: Timestamp,
    pub patches: Vec<ExplainedV1>,
}

impl Document for ExplainV1 {
    const SCHEMA: &'static str = "ringleader.explain/v1";
}

named! {
    /// What the planner decided about a patch for a device.
    pub enum Decision {
        Planned = "planned",
        Skipped = "skipped",
        /// The catalog refused the patch itself.
        Refused = "refused",
    }
}

/// An explanation's `reason`: `planned`, `refused`, or for a skipped patch its
/// [`SkipReason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExplainReason {
    Planned,
    Refused,
    #[serde(untagged)]
    Skipped(SkipReason),
}

/// One patch's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplainedV1 {
    pub patch: String,
    pub decision: Decision,
    pub reason: ExplainReason,
    /// For people: when and where, or why not.
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<StepV1>,
}
