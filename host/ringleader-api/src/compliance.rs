//! `ringleader compliance --json` and `GET /v1/compliance` (`ringleader.compliance/v1`):
//! which devices of the fleet registry lack which applicable fixes, by severity and
//! age; per patch the devices affected and patched; the fleet's summary.
//! docs/compliance.md says what each number means.

use crate::fleet::ScanErrorV1;
use crate::plugin::SeverityV1;
use crate::{Document, Schema};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A count per severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BySeverityV1 {
    pub critical: u32,
    pub high: u32,
    pub medium: u32,
    pub low: u32,
    pub unknown: u32,
}

impl BySeverityV1 {
    /// The count of `severity`.
    pub fn get(&self, severity: SeverityV1) -> u32 {
        match severity {
            SeverityV1::Critical => self.critical,
            SeverityV1::High => self.high,
            SeverityV1::Medium => self.medium,
            SeverityV1::Low => self.low,
            SeverityV1::Unknown => self.unknown,
        }
    }

    /// The count of `severity`, to change.
    pub fn get_mut(&mut self, severity: SeverityV1) -> &mut u32 {
        match severity {
            SeverityV1::Critical => &mut self.critical,
            SeverityV1::High => &mut self.high,
            SeverityV1::Medium => &mut self.medium,
            SeverityV1::Low => &mut self.low,
            SeverityV1::Unknown => &mut self.unknown,
        }
    }
}

/// The filter the document was computed with (as given).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FilterV1 {
    /// Only fixes of at least this severity.
    pub severity: Option<SeverityV1>,
    pub cve: Option<String>,
    /// Only devices with this tag.
    pub tag: Option<String>,
}

/// The catalog the numbers were computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogInfoV1 {
    /// When the daemon asked its patch sources (it asks again when older than its
    /// refresh interval, or when `refresh` is asked).
    pub discovered_at: Timestamp,
    /// Patches the catalog holds.
    pub patches: usize,
    /// Patches the catalog refused (bad versions, duplicate ids).
    pub refused: usize,
}

/// A fix a device lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingV1 {
    /// The patch to install.
    pub patch: String,
    pub title: String,
    pub component: String,
    /// The version the device has (from its last scan, else the inventory file).
    pub installed: String,
    pub fixed_version: String,
    /// The highest severity of the patch and those it covers.
    pub severity: SeverityV1,
    /// CVEs of the patch and of those it covers.
    pub cves: Vec<String>,
    /// Applicable patches it supersedes on this device: their fixes are in it, and
    /// they are not counted again.
    pub covers: Vec<String>,
    /// The earliest release of the patch and those it covers.
    pub released: Timestamp,
    /// Whole days from `released` to the document's `at`.
    pub age_days: u64,
}

/// One device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceComplianceV1 {
    pub id: String,
    pub tags: Vec<String>,
    /// Whether the components come from a scan (`true`) or the inventory file.
    pub observed: bool,
    /// When a scan last succeeded.
    pub last_scan: Option<Timestamp>,
    /// Whether the last scan reached the device; none: never scanned.
    pub reachable: Option<bool>,
    /// The last scan's error, while the last scan failed.
    pub error: Option<ScanErrorV1>,
    /// Not scanned within the scan interval (or never).
    pub scan_overdue: bool,
    /// The last scan found a restart pending.
    pub reboot_pending: bool,
    pub fully_patched: bool,
    pub missing_by_severity: BySeverityV1,
    /// Age in days of the oldest missing fix; none when nothing is missing.
    pub oldest_missing_days: Option<u64>,
    /// Most severe first, then by patch id.
    pub missing: Vec<MissingV1>,
}

/// One patch across the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchComplianceV1 {
    pub id: String,
    pub title: String,
    pub component: String,
    pub fixed_version: String,
    pub severity: SeverityV1,
    pub cves: Vec<String>,
    pub released: Timestamp,
    /// Devices it applies to: they lack its fix (superseded there or not).
    pub affected: u32,
    /// Devices at or above its fixed version.
    pub patched: u32,
}

/// The fleet's numbers for one severity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeveritySummaryV1 {
    pub severity: SeverityV1,
    /// Devices missing at least one fix of this severity.
    pub devices_missing: u32,
    /// The share of devices missing none (0 to 1; 1 for no devices).
    pub share_patched: f64,
    /// Age in days of the fleet's oldest missing fix of this severity.
    pub oldest_missing_days: Option<u64>,
}

/// The fleet's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComplianceSummaryV1 {
    /// Devices counted (the tag filter's).
    pub devices: u32,
    /// Devices missing no fix (the filter's).
    pub fully_patched: u32,
    /// Devices never scanned, or not within the scan interval.
    pub not_scanned_recently: u32,
    /// Devices whose last scan could not reach them.
    pub unreachable: u32,
    pub reboot_pending: u32,
    /// Critical first.
    pub by_severity: Vec<SeveritySummaryV1>,
}

/// `ringleader.compliance/v1` (docs/schemas/compliance.v1.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComplianceV1 {
    pub schema: Schema<ComplianceV1>,
    /// When ages are measured.
    pub at: Timestamp,
    pub filter: FilterV1,
    /// The scan interval devices are held to, in seconds.
    pub scan_interval_secs: u64,
    pub catalog: CatalogInfoV1,
    pub summary: ComplianceSummaryV1,
    /// By id.
    pub devices: Vec<DeviceComplianceV1>,
    /// Patches that apply to or are installed on a counted device, by id.
    pub patches: Vec<PatchComplianceV1>,
}

impl Document for ComplianceV1 {
    const SCHEMA: &'static str = "ringleader.compliance/v1";
}
