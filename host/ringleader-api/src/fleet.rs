//! The fleet registry (what the daemon knows is really on each device, from scans):
//! `fleet` (`ringleader fleet list --json`, `GET /v1/fleet`), `fleet-device`
//! (`ringleader fleet device ID --json`, `GET /v1/fleet/devices/{id}`), `fleet-scan`
//! (`ringleader fleet scan --json`, `POST /v1/fleet/scan`), and the body of a scan
//! request.

use crate::{Document, Schema};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

named! {
    /// Why a scan of a device failed.
    pub enum ScanErrorKind {
        /// The device could not be reached (connection refused, no route, SSH failed).
        Unreachable = "unreachable",
        /// The operator's grants or the device refused what the scan needed.
        Denied = "denied",
        /// The scan did not finish within the per-device timeout.
        Timeout = "timeout",
        /// The device's installer cannot scan (built against WIT before 0.3.0).
        Unsupported = "unsupported",
        /// Anything else the installer reported.
        Failed = "failed",
        /// Not scanned: a rollout step was running on it.
        Busy = "busy",
    }
}

named! {
    /// What a difference between the inventory file and the device is.
    pub enum DifferenceKind {
        /// The device runs another version than the file says.
        Version = "version",
        /// The device has a component the file does not list.
        Undeclared = "undeclared",
        /// The file lists a component the scan did not find.
        Missing = "missing",
    }
}

named! {
    /// What an entry of a device's history records.
    pub enum HistoryKind {
        /// A scan found a component at another version than the scan before (or new,
        /// or gone).
        Changed = "changed",
        /// A scan found a component at a lower version than before, with no rollback
        /// by Ringleader in between: restored from a snapshot, downgraded by hand.
        Drift = "drift",
        /// A scan failed (its error kept).
        ScanFailed = "scan-failed",
    }
}

/// A component as the device or the inventory has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentV1 {
    pub name: String,
    pub version: String,
    /// `deb`, `rpm`, `apk`, `semver`, `vendor`; none when not said.
    pub scheme: Option<String>,
    /// The source package, for binary packages.
    pub source: Option<String>,
}

/// A failed scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanErrorV1 {
    pub kind: ScanErrorKind,
    pub message: String,
}

/// The operating system a scan read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsV1 {
    pub id: String,
    pub version_id: Option<String>,
    pub codename: Option<String>,
    pub pretty_name: Option<String>,
}

/// Boot id and pending restart, as the last scan read them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootV1 {
    pub boot_id: Option<String>,
    pub booted_at: Option<Timestamp>,
    pub reboot_pending: bool,
    pub pending_reasons: Vec<String>,
}

/// The last successful scan of a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanV1 {
    pub at: Timestamp,
    pub duration_ms: u64,
    /// The installer that scanned it.
    pub installer: String,
    pub components: Vec<ComponentV1>,
    pub os: Option<OsV1>,
    pub boot: BootV1,
    pub facts: Vec<(String, String)>,
}

/// A difference between the inventory file and what the device has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DifferenceV1 {
    pub kind: DifferenceKind,
    pub component: String,
    /// What the inventory file says (none: it does not list the component).
    pub declared: Option<String>,
    /// What the device has (none: the scan did not find it).
    pub observed: Option<String>,
}

/// One device of the registry, as `fleet` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetDeviceSummaryV1 {
    pub id: String,
    /// The inventory file it was last given in.
    pub inventory: String,
    pub tags: Vec<String>,
    /// When a scan last succeeded.
    pub last_scan: Option<Timestamp>,
    /// When the device last answered (a scan succeeded).
    pub last_seen: Option<Timestamp>,
    /// The last scan's error, when the last scan failed.
    pub error: Option<ScanErrorV1>,
    /// Components the last scan found (none: never scanned).
    pub components: Option<usize>,
    /// Differences between the inventory file and the last scan.
    pub differences: usize,
    /// A component went back to a lower version since it was seen higher.
    pub drift: bool,
    pub reboot_pending: bool,
}

/// `ringleader.fleet/v1` (docs/schemas/fleet.v1.json): every device of the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetV1 {
    pub schema: Schema<FleetV1>,
    pub devices: Vec<FleetDeviceSummaryV1>,
    /// Devices never scanned, or whose last successful scan is older than the scan
    /// interval (or 24 hours when no periodic scan is configured).
    pub not_scanned_recently: usize,
}

impl Document for FleetV1 {
    const SCHEMA: &'static str = "ringleader.fleet/v1";
}

/// An entry of a device's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryV1 {
    pub at: Timestamp,
    pub kind: HistoryKind,
    pub component: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub detail: String,
}

/// What a rollout did to the device (from its log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutRecordV1 {
    pub rollout: String,
    /// The token that started the rollout (its audit entry's `by`).
    pub started_by: String,
    pub ring: String,
    /// The device's state in that rollout (as `devices` names it).
    pub state: String,
    /// Its component versions as the rollout has them (as inventoried, updated by
    /// the steps that succeeded).
    pub versions: std::collections::BTreeMap<String, String>,
    pub reason: Option<String>,
    /// What the rollout did to the device, oldest first: each install dispatched,
    /// step succeeded or failed, rollback, with its time, patch and versions.
    pub changes: Vec<ChangeV1>,
}

/// One thing a rollout did to a device (from the rollout's log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeV1 {
    pub at: Timestamp,
    /// The event's kind, as `ringleader.event/v1` names it (`dispatched`,
    /// `step-succeeded`, `step-failed`, `rollback-finished`, ...).
    pub kind: String,
    pub patch: Option<String>,
    pub component: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub reason: Option<String>,
    pub ok: Option<bool>,
}

/// `ringleader.fleet-device/v1` (docs/schemas/fleet-device.v1.json): one device, its
/// last scan, differences, history and rollouts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetDeviceV1 {
    pub schema: Schema<FleetDeviceV1>,
    pub id: String,
    pub inventory: String,
    pub tags: Vec<String>,
    pub declared: Vec<ComponentV1>,
    pub last_scan: Option<ScanV1>,
    pub last_seen: Option<Timestamp>,
    pub error: Option<ScanErrorV1>,
    /// When the error happened.
    pub error_at: Option<Timestamp>,
    pub differences: Vec<DifferenceV1>,
    pub drift: bool,
    /// Oldest first.
    pub history: Vec<HistoryV1>,
    pub rollouts: Vec<RolloutRecordV1>,
}

impl Document for FleetDeviceV1 {
    const SCHEMA: &'static str = "ringleader.fleet-device/v1";
}

/// A scan's outcome for one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScannedV1 {
    pub id: String,
    pub ok: bool,
    pub duration_ms: u64,
    pub components: Option<usize>,
    /// Components that changed since the scan before.
    pub changed: usize,
    pub error: Option<ScanErrorV1>,
}

/// `ringleader.fleet-scan/v1` (docs/schemas/fleet-scan.v1.json): what a scan did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetScanV1 {
    pub schema: Schema<FleetScanV1>,
    pub scanned: usize,
    pub ok: usize,
    pub failed: usize,
    pub duration_ms: u64,
    pub devices: Vec<ScannedV1>,
}

impl Document for FleetScanV1 {
    const SCHEMA: &'static str = "ringleader.fleet-scan/v1";
}

/// The body of `POST /v1/fleet/scan`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanRequestV1 {
    /// An inventory file to add to the registry (and scan); none: the registry's.
    #[serde(default)]
    pub inventory: Option<crate::rollout::FileV1>,
    /// Only these devices; empty: every device (of the inventory given, else of the
    /// registry).
    #[serde(default)]
    pub devices: Vec<String>,
}
