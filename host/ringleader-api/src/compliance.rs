//! `ringleader compliance --json` and `GET /v1/compliance` (`ringleader.compliance/v1`):
//! which devices of the fleet registry lack which applicable fixes, by severity and
//! age; per patch the devices affected and patched; the fleet's summary.
//! docs/compliance.md says what each number means.
//!
//! Every struct here declares its fields in the order of their keys: the API writes
//! the document as it serializes, keys sorted as in every other answer, without
//! building a sorted copy first (at 10,000 devices that copy was half the work). A
//! test holds the order.

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
    pub low: u32,
    pub medium: u32,
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
    pub cve: Option<String>,
    /// Only fixes of at least this severity.
    pub severity: Option<SeverityV1>,
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
    /// Whole days from `released` to the document's `at`.
    pub age_days: u64,
    pub component: String,
    /// Applicable patches it supersedes on this device: their fixes are in it, and
    /// they are not counted again.
    pub covers: Vec<String>,
    /// CVEs of the patch and of those it covers.
    pub cves: Vec<String>,
    pub fixed_version: String,
    /// The version the device has (from its last scan, else the inventory file).
    pub installed: String,
    /// The patch to install.
    pub patch: String,
    /// The earliest release of the patch and those it covers.
    pub released: Timestamp,
    /// The highest severity of the patch and those it covers.
    pub severity: SeverityV1,
    pub title: String,
}

/// One device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceComplianceV1 {
    /// The last scan's error, while the last scan failed.
    pub error: Option<ScanErrorV1>,
    pub fully_patched: bool,
    pub id: String,
    /// When a scan last succeeded.
    pub last_scan: Option<Timestamp>,
    /// Most severe first, then by patch id.
    pub missing: Vec<MissingV1>,
    pub missing_by_severity: BySeverityV1,
    /// Whether the components come from a scan (`true`) or the inventory file.
    pub observed: bool,
    /// Age in days of the oldest missing fix; none when nothing is missing.
    pub oldest_missing_days: Option<u64>,
    /// Whether the last scan reached the device; none: never scanned.
    pub reachable: Option<bool>,
    /// The last scan found a restart pending.
    pub reboot_pending: bool,
    /// Not scanned within the scan interval (or never).
    pub scan_overdue: bool,
    pub tags: Vec<String>,
}

/// One patch across the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchComplianceV1 {
    /// Devices it applies to: they lack its fix (superseded there or not).
    pub affected: u32,
    pub component: String,
    pub cves: Vec<String>,
    pub fixed_version: String,
    pub id: String,
    /// Devices at or above its fixed version.
    pub patched: u32,
    pub released: Timestamp,
    pub severity: SeverityV1,
    pub title: String,
}

/// The fleet's numbers for one severity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeveritySummaryV1 {
    /// Devices missing at least one fix of this severity.
    pub devices_missing: u32,
    /// Age in days of the fleet's oldest missing fix of this severity.
    pub oldest_missing_days: Option<u64>,
    pub severity: SeverityV1,
    /// The share of devices missing none (0 to 1; 1 for no devices).
    pub share_patched: f64,
}

/// The fleet's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComplianceSummaryV1 {
    /// Critical first.
    pub by_severity: Vec<SeveritySummaryV1>,
    /// Devices counted (the tag filter's).
    pub devices: u32,
    /// Devices missing no fix (the filter's).
    pub fully_patched: u32,
    /// Devices never scanned, or not within the scan interval.
    pub not_scanned_recently: u32,
    pub reboot_pending: u32,
    /// Devices whose last scan could not reach them.
    pub unreachable: u32,
}

/// `ringleader.compliance/v1` (docs/schemas/compliance.v1.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComplianceV1 {
    /// When ages are measured.
    pub at: Timestamp,
    pub catalog: CatalogInfoV1,
    /// By id.
    pub devices: Vec<DeviceComplianceV1>,
    pub filter: FilterV1,
    /// Patches that apply to or are installed on a counted device, by id.
    pub patches: Vec<PatchComplianceV1>,
    /// The scan interval devices are held to, in seconds.
    pub scan_interval_secs: u64,
    pub schema: Schema<ComplianceV1>,
    pub summary: ComplianceSummaryV1,
}

impl Document for ComplianceV1 {
    const SCHEMA: &'static str = "ringleader.compliance/v1";
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::ScanErrorKind;

    /// A document with every field given: its JSON as written is its JSON with the
    /// keys sorted.
    #[test]
    fn every_field_is_declared_in_the_order_of_its_key() {
        let at: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let count = BySeverityV1 {
            critical: 1,
            high: 2,
            low: 3,
            medium: 4,
            unknown: 5,
        };
        let doc = ComplianceV1 {
            at,
            catalog: CatalogInfoV1 {
                discovered_at: at,
                patches: 1,
                refused: 0,
            },
            devices: vec![DeviceComplianceV1 {
                error: Some(ScanErrorV1 {
                    kind: ScanErrorKind::Timeout,
                    message: "timed out".into(),
                }),
                fully_patched: false,
                id: "web-1".into(),
                last_scan: Some(at),
                missing: vec![MissingV1 {
                    age_days: 3,
                    component: "openssl".into(),
                    covers: vec!["ssl-14".into()],
                    cves: vec!["CVE-2024-0727".into()],
                    fixed_version: "3.0.15".into(),
                    installed: "3.0.11".into(),
                    patch: "ssl-15".into(),
                    released: at,
                    severity: SeverityV1::Critical,
                    title: "OpenSSL".into(),
                }],
                missing_by_severity: count,
                observed: true,
                oldest_missing_days: Some(3),
                reachable: Some(false),
                reboot_pending: true,
                scan_overdue: true,
                tags: vec!["web".into()],
            }],
            filter: FilterV1 {
                cve: Some("CVE-2024-0727".into()),
                severity: Some(SeverityV1::High),
                tag: Some("web".into()),
            },
            patches: vec![PatchComplianceV1 {
                affected: 1,
                component: "openssl".into(),
                cves: vec![],
                fixed_version: "3.0.15".into(),
                id: "ssl-15".into(),
                patched: 0,
                released: at,
                severity: SeverityV1::Critical,
                title: "OpenSSL".into(),
            }],
            scan_interval_secs: 21_600,
            schema: Schema::new(),
            summary: ComplianceSummaryV1 {
                by_severity: vec![SeveritySummaryV1 {
                    devices_missing: 1,
                    oldest_missing_days: Some(3),
                    severity: SeverityV1::Critical,
                    share_patched: 0.5,
                }],
                devices: 2,
                fully_patched: 1,
                not_scanned_recently: 1,
                reboot_pending: 1,
                unreachable: 1,
            },
        };
        let written = serde_json::to_string(&doc).unwrap();
        let sorted = serde_json::to_string(&serde_json::to_value(&doc).unwrap()).unwrap();
        assert_eq!(written, sorted);
    }
}
