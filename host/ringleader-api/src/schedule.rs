//! Standing schedules: `ringleader.schedules/v1` (`ringleader schedule list --json`)
//! and `ringleader.schedule-runs/v1` (`ringleader schedule next --json`).

use crate::{Document, Schema};
use serde::{Deserialize, Serialize};

/// `ringleader.schedules/v1` (docs/schemas/schedules.v1.json): every schedule of a
/// schedules file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulesV1 {
    pub schema: Schema<SchedulesV1>,
    /// The schedules file.
    pub file: String,
    pub schedules: Vec<ScheduleV1>,
}

impl Document for SchedulesV1 {
    const SCHEMA: &'static str = "ringleader.schedules/v1";
}

/// One schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleV1 {
    pub name: String,
    /// The recurrence as written.
    pub when: String,
    /// Its IANA time zone (`UTC` when it names none).
    pub zone: String,
    /// Paths, resolved against the schedules file's directory; `inventory` is empty
    /// when the schedule patches the registry's devices by `tags`.
    pub inventory: String,
    /// The fleet registry's devices with one of these tags are patched (added within
    /// v1: absent from documents written before).
    #[serde(default)]
    pub tags: Vec<String>,
    /// The sources whose patches its runs take; empty: every source (added within
    /// v1).
    #[serde(default)]
    pub sources: Vec<String>,
    pub policy: String,
    pub on_freeze: OnFreezeV1,
    pub patches: PatchFilterV1,
    /// When the patches it selects may be rolled out (added within v1: absent from
    /// documents written before).
    #[serde(default)]
    pub approval: ApprovalV1,
    /// Its next run (RFC 3339 with offset and zone), through its policy's freezes;
    /// `null` when it has none within 100 years.
    pub next: Option<String>,
}

named! {
    /// What a run that falls into one of the policy's freezes does.
    pub enum OnFreezeV1 {
        Move = "move",
        Skip = "skip",
    }
}

/// Which applicable patches a run rolls out; an empty list does not filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchFilterV1 {
    pub kinds: Vec<String>,
    pub severities: Vec<String>,
    pub cves: Vec<String>,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

/// When a schedule's patches may be rolled out: the first rule that matches a patch
/// approves it `after_days` after its release; the ids in `approved` at once. No
/// rules: every selected patch on its release.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ApprovalV1 {
    pub rules: Vec<ApprovalRuleV1>,
    pub approved: Vec<String>,
}

/// One approval rule; an empty list matches every patch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRuleV1 {
    pub kinds: Vec<String>,
    pub severities: Vec<String>,
    pub after_days: u32,
}

/// `ringleader.schedule-runs/v1` (docs/schemas/schedule-runs.v1.json): the next runs
/// of every schedule of a file, in time order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleRunsV1 {
    pub schema: Schema<ScheduleRunsV1>,
    /// Runs after this instant (RFC 3339, UTC).
    pub after: jiff::Timestamp,
    pub runs: Vec<ScheduleRunV1>,
}

impl Document for ScheduleRunsV1 {
    const SCHEMA: &'static str = "ringleader.schedule-runs/v1";
}

/// One run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleRunV1 {
    pub schedule: String,
    /// When the recurrence puts it (RFC 3339 with offset and zone).
    pub planned: String,
    /// When it runs: `planned`, or where a freeze moved it; `null` when skipped.
    pub at: Option<String>,
    pub outcome: RunOutcomeV1,
    /// The freeze that moved or skipped it.
    pub freeze: Option<String>,
}

named! {
    /// What becomes of a run.
    pub enum RunOutcomeV1 {
        Runs = "runs",
        Moved = "moved",
        Skipped = "skipped",
    }
}

/// `ringleader.scheduled-runs/v1` (docs/schemas/scheduled-runs.v1.json): the daemon's
/// standing schedules (`serve --schedules FILE`), each with its next run, and the runs
/// made, newest first (`GET /v1/schedules/runs`, `ringleader schedule runs --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledRunsV1 {
    pub schema: Schema<ScheduledRunsV1>,
    /// The schedules file the daemon runs; empty when it runs none.
    pub file: String,
    pub schedules: Vec<ScheduledV1>,
    pub runs: Vec<crate::demo::ContinuousRunV1>,
}

impl Document for ScheduledRunsV1 {
    const SCHEMA: &'static str = "ringleader.scheduled-runs/v1";
}

/// A schedule the daemon runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledV1 {
    pub name: String,
    /// Its next run by its recurrence (through freezes); `null` when none is left.
    pub next: Option<jiff::Timestamp>,
}
