//! A rollout's event log as scripts read it: `ringleader.event/v1`, a page of them
//! (`ringleader.events/v1`), and the event stream's `stalled` message
//! (`ringleader.stall/v1`).

use crate::{Document, Schema};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

named! {
    /// What happened (`ringleader.event/v1` `type`; the event stream's event name).
    pub enum EventKind {
        /// An install step was sent to a device.
        Dispatched = "dispatched",
        StepSucceeded = "step-succeeded",
        StepFailed = "step-failed",
        /// A device's rollback was sent.
        RollbackDispatched = "rollback-dispatched",
        /// A device's rollback ended (`ok` says how).
        RollbackFinished = "rollback-finished",
        /// A device was asked to restart after its steps.
        RebootDispatched = "reboot-dispatched",
        /// A device's reboot ended: back with another boot id and its steps verified
        /// (`ok`), or `reason` says what failed.
        RebootFinished = "reboot-finished",
        RingComplete = "ring-complete",
        AwaitingApproval = "awaiting-approval",
        /// A ring that needs approval was approved by its policy's `auto_approve`
        /// rule (`reason` says how the ring before it did).
        ApprovedByRule = "approved-by-rule",
        Halted = "halted",
        Completed = "completed",
        /// A device did not report in time.
        DeviceUnresponsive = "device-unresponsive",
        /// An operator's action, as the core took it.
        Approve = "approve",
        Pause = "pause",
        Resume = "resume",
        Abort = "abort",
        Rollback = "rollback",
        /// An operator retried failed devices (`device`: only that one).
        Retry = "retry",
        /// Who asked for what (`by`, `action`).
        Audit = "audit",
        /// The log could not be written for a while.
        Stalled = "stalled",
        /// The daemon started again and the rollout went on.
        Resumed = "resumed",
        /// Devices joined the running rollout.
        DevicesJoined = "devices-joined",
    }
}

/// `ringleader.event/v1` (docs/schemas/event.v1.json): one entry of a rollout's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventV1 {
    pub schema: Schema<EventV1>,
    /// Position in the log; `events --since` the last cursor seen to resume.
    pub cursor: u64,
    pub at: Timestamp,
    #[serde(rename = "type")]
    pub kind: EventKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ring: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// For a step (`dispatched`, `step-succeeded`, `step-failed`): the component the
    /// patch changes, its version on the device before the step, and the patch's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
    /// For `audit`: who, and what they asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

impl Document for EventV1 {
    const SCHEMA: &'static str = "ringleader.event/v1";
}

impl EventV1 {
    /// An event of `kind` at `cursor`, with none of the optional keys.
    pub fn new(cursor: u64, at: Timestamp, kind: EventKind) -> EventV1 {
        EventV1 {
            schema: Schema::new(),
            cursor,
            at,
            kind,
            ring: None,
            device: None,
            patch: None,
            component: None,
            from: None,
            to: None,
            reason: None,
            ok: None,
            by: None,
            action: None,
        }
    }
}

/// `ringleader.events/v1` (docs/schemas/events.v1.json): a page of events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsV1 {
    pub schema: Schema<EventsV1>,
    pub rollout: String,
    pub events: Vec<EventV1>,
    /// The cursor to ask from next.
    pub next: u64,
    /// Nothing more will happen.
    pub ended: bool,
    /// Present only while the rollout stalls: why its log cannot be written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stalled: Option<String>,
}

impl Document for EventsV1 {
    const SCHEMA: &'static str = "ringleader.events/v1";
}

/// `ringleader.stall/v1` (docs/schemas/stall.v1.json): the event stream's `stalled`
/// message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StallV1 {
    pub schema: Schema<StallV1>,
    pub rollout: String,
    pub reason: String,
}

impl Document for StallV1 {
    const SCHEMA: &'static str = "ringleader.stall/v1";
}
