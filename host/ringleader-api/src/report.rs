//! `ringleader.time-to-patch/v1`: time to patch over the daemon's records
//! (`GET /v1/reports/time-to-patch`, `ringleader report time-to-patch --json`).

use crate::demo::TimeToPatchV1;
use crate::{Document, Schema};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// `ringleader.time-to-patch/v1` (docs/schemas/time-to-patch.v1.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeToPatchReportV1 {
    pub schema: Schema<TimeToPatchReportV1>,
    /// The time the report is for: publications and installs after it are not counted.
    pub at: Timestamp,
    /// Patches the source polls have seen (by then).
    pub publications: u32,
    /// Rollouts whose logs were read.
    pub rollouts: u32,
    /// Rollouts not read: still being prepared (their devices are not known yet).
    pub unread: Vec<String>,
    /// Installs the logs hold (steps that succeeded, not rolled back), each
    /// (device, patch) once.
    pub installs: u32,
    /// Per severity, most severe first.
    pub severities: Vec<TimeToPatchV1>,
}

impl Document for TimeToPatchReportV1 {
    const SCHEMA: &'static str = "ringleader.time-to-patch/v1";
}
