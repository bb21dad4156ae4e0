//! Compliance of the fleet registry (`GET /v1/compliance`, `ringleader compliance`,
//! the compliance gauges of `/metrics`): every device of the registry with its
//! components as its last scan found them (as declared by its inventory file when it
//! was never scanned), against the catalog the daemon's patch sources report for
//! them, computed by [`ringleader_planner::compliance`].
//!
//! The catalog is kept: it is discovered again when it is older than
//! [`CATALOG_MAX_AGE`], when the registry's devices or their components changed since
//! (a scan found another version, an inventory added devices), or when the caller
//! asks (`refresh`). docs/compliance.md says what each number means.

use crate::fleet::{Entry, Registry};
use crate::session::Session;
use jiff::Timestamp;
use ringleader_api::Schema;
use ringleader_api::compliance::{
    BySeverityV1, CatalogInfoV1, ComplianceSummaryV1, ComplianceV1, DeviceComplianceV1, FilterV1,
    MissingV1, PatchComplianceV1, SeveritySummaryV1,
};
use ringleader_api::fleet::ScanErrorKind;
use ringleader_api::plugin::SeverityV1;
use ringleader_planner::catalog::Catalog;
use ringleader_planner::compliance::{self, Filter, Fleet, age_days, rank};
use ringleader_planner::inventory::{Device, Inventory};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How long a discovered catalog is used before the sources are asked again: vendors
/// publish a few times a day, and a dashboard polling `/v1/compliance` or `/metrics`
/// must not load the plugins on every request.
pub const CATALOG_MAX_AGE: Duration = Duration::from_secs(5 * 60);

/// How long a device may go without a successful scan before it counts as not
/// scanned recently, when no periodic scan is configured (as `fleet list`).
pub const RECENT_SCAN: Duration = Duration::from_secs(24 * 60 * 60);

/// The last discovered catalog.
#[derive(Debug, Default)]
pub struct CatalogCache {
    slot: tokio::sync::Mutex<Option<Cached>>,
}

#[derive(Debug)]
struct Cached {
    at: Timestamp,
    /// The devices (ids and components) it was discovered for.
    fingerprint: [u8; 32],
    catalog: Arc<Catalog>,
}

/// The registry's devices as the planner sees them: each from the inventory file it
/// was last given in, with its last scan's components (observed wins), beside its
/// registry entry.
pub type RegistryDevices = Arc<(Vec<Entry>, Inventory)>;

/// What compliance last read of the registry, so that the next read does only the
/// work a change calls for: the devices, kept until a write changes the registry
/// (at 100,000 devices the read is most of a computation), and the inventory files
/// by name with their text (a file whose text is the same is not parsed again: a
/// parse of 100,000 devices takes a second, and scans change entries, not files).
#[derive(Debug, Default)]
pub struct RegistryReads {
    last: Option<(u64, RegistryDevices)>,
    files: HashMap<String, (String, Arc<HashMap<String, Device>>)>,
}

impl RegistryReads {
    /// The registry's devices ([`RegistryDevices`]); devices whose file no longer
    /// names them are left out.
    pub fn devices(&mut self, registry: &Registry) -> anyhow::Result<RegistryDevices> {
        // Taken before the read: a write during it makes the next call read again.
        let generation = registry.generation();
        if let Some((at, devices)) = &self.last
            && *at == generation
        {
            return Ok(devices.clone());
        }
        let files = self.files(registry)?;
        let mut entries = Vec::new();
        let mut inventory = Inventory::default();
        for entry in registry.list()? {
            let Some(mut device) = files
                .get(&entry.inventory)
                .and_then(|f| f.get(&entry.id))
                .cloned()
            else {
                continue;
            };
            if let Some(scan) = &entry.last_scan {
                let components: Vec<_> = scan
                    .components
                    .iter()
                    .cloned()
                    .map(crate::fleet::component_of)
                    .collect();
                for problem in device.observe(&components, None) {
                    tracing::warn!("{problem}; compliance uses the inventory's version");
                }
            }
            inventory.devices.push(device);
            entries.push(entry);
        }
        let devices = Arc::new((entries, inventory));
        self.last = Some((generation, devices.clone()));
        Ok(devices)
    }

    /// The devices of each of `registry`'s files, by id; a file that cannot be parsed
    /// is left out, with a warning.
    fn files(
        &mut self,
        registry: &Registry,
    ) -> anyhow::Result<HashMap<String, Arc<HashMap<String, Device>>>> {
        let mut now = HashMap::new();
        for (name, text) in registry.inventories()? {
            if let Some((kept, devices)) = self.files.get(&name)
                && *kept == text
            {
                now.insert(name, devices.clone());
                continue;
            }
            match Inventory::parse(Path::new(&name), &text) {
                Ok(inventory) => {
                    let devices: Arc<HashMap<String, Device>> = Arc::new(
                        inventory
                            .devices
                            .into_iter()
                            .map(|d| (d.id.clone(), d))
                            .collect(),
                    );
                    self.files.insert(name.clone(), (text, devices.clone()));
                    now.insert(name, devices);
                }
                Err(e) => tracing::warn!("compliance leaves out the devices of {name}: {e}"),
            }
        }
        self.files.retain(|name, _| now.contains_key(name));
        Ok(now)
    }
}

/// What the catalog depends on: every device's id and components.
fn fingerprint(inventory: &Inventory) -> [u8; 32] {
    let mut hash = Sha256::new();
    for d in &inventory.devices {
        hash.update(d.id.as_bytes());
        hash.update([0]);
        for (name, installed) in &d.components {
            hash.update(name.as_bytes());
            hash.update([1]);
            hash.update(installed.as_str().as_bytes());
            hash.update([2]);
        }
        hash.update([3]);
    }
    hash.finalize().into()
}

impl CatalogCache {
    /// When the kept catalog was discovered, if one is kept.
    pub async fn kept_at(&self) -> Option<Timestamp> {
        self.slot.lock().await.as_ref().map(|c| c.at)
    }

    /// The catalog for `inventory`: the kept one while it is younger than
    /// [`CATALOG_MAX_AGE`] and was discovered for the same devices, unless `refresh`;
    /// else discovered now (and kept). Returns it with when it was discovered.
    pub async fn get(
        &self,
        session: &Session,
        inventory: &Inventory,
        refresh: bool,
    ) -> anyhow::Result<(Arc<Catalog>, Timestamp)> {
        let now = Timestamp::now();
        if inventory.devices.is_empty() {
            // No device, no patch: the sources are not loaded for nothing.
            return Ok((Arc::new(Catalog::default()), now));
        }
        let mut slot = self.slot.lock().await;
        let fingerprint = fingerprint(inventory);
        if let Some(c) = slot.as_ref()
            && !refresh
            && c.fingerprint == fingerprint
            && now.duration_since(c.at).as_secs() < CATALOG_MAX_AGE.as_secs() as i64
        {
            return Ok((c.catalog.clone(), c.at));
        }
        let catalog = Arc::new(session.discover(inventory).await?);
        *slot = Some(Cached {
            at: now,
            fingerprint,
            catalog: catalog.clone(),
        });
        Ok((catalog, now))
    }
}

/// A compliance request: the filter as given, the time ages are measured at.
#[derive(Debug, Clone)]
pub struct Request {
    pub filter: FilterV1,
    pub at: Timestamp,
    /// The scan interval devices are held to.
    pub interval: Duration,
}

/// Computes `ringleader.compliance/v1` (CPU-bound: run it off the async threads).
pub fn document(
    entries: &[Entry],
    inventory: &Inventory,
    catalog: &Catalog,
    discovered_at: Timestamp,
    request: &Request,
) -> ComplianceV1 {
    let filter = Filter {
        severity: request.filter.severity.map(Into::into),
        cve: request.filter.cve.clone(),
        tag: request.filter.tag.clone(),
    };
    let at = request.at.as_second();
    let computed = Fleet {
        devices: &inventory.devices,
        catalog,
        at,
        filter: &filter,
    }
    .compute();
    let interval = request.interval.as_secs() as i64;
    let overdue = |e: &Entry| {
        e.last_seen
            .is_none_or(|seen| request.at.duration_since(seen).as_secs() > interval)
    };
    let ts = |s: i64| Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH);
    let ids = |list: &mut dyn Iterator<Item = u32>| -> Vec<String> {
        list.map(|p| catalog.get(p).patch.id.clone()).collect()
    };
    let mut summary = ComplianceSummaryV1 {
        devices: computed.summary.devices,
        fully_patched: computed.summary.fully_patched,
        not_scanned_recently: 0,
        unreachable: 0,
        reboot_pending: 0,
        by_severity: compliance::SEVERITIES
            .iter()
            .rev()
            .map(|&s| SeveritySummaryV1 {
                severity: s.into(),
                devices_missing: computed.summary.missing_by_severity[rank(s)],
                share_patched: computed.summary.share_patched(s),
                oldest_missing_days: computed.summary.oldest_by_severity[rank(s)]
                    .map(|r| age_days(r, at)),
            })
            .collect(),
    };
    let mut devices = Vec::with_capacity(computed.devices.len());
    for d in &computed.devices {
        let entry = &entries[d.device as usize];
        let device = &inventory.devices[d.device as usize];
        let error = entry.error.as_ref().map(|(_, e)| e.clone());
        let unreachable = error
            .as_ref()
            .is_some_and(|e| matches!(e.kind, ScanErrorKind::Unreachable | ScanErrorKind::Timeout));
        let reachable = match &error {
            Some(e) if e.kind == ScanErrorKind::Busy => entry.last_seen.map(|_| true),
            Some(_) => Some(!unreachable),
            None => entry.last_scan.as_ref().map(|_| true),
        };
        let reboot_pending = entry
            .last_scan
            .as_ref()
            .is_some_and(|s| s.boot.reboot_pending);
        let scan_overdue = overdue(entry);
        summary.not_scanned_recently += u32::from(scan_overdue);
        summary.unreachable += u32::from(unreachable);
        summary.reboot_pending += u32::from(reboot_pending);
        let mut by = BySeverityV1::default();
        for s in compliance::SEVERITIES {
            *by.get_mut(s.into()) = d.by_severity[rank(s)];
        }
        let mut missing: Vec<&compliance::Missing> = d.missing.iter().collect();
        // Most severe first, then by id.
        missing.sort_by(|a, b| {
            rank(b.severity).cmp(&rank(a.severity)).then_with(|| {
                catalog
                    .get(a.patch)
                    .patch
                    .id
                    .cmp(&catalog.get(b.patch).patch.id)
            })
        });
        let missing = missing
            .into_iter()
            .map(|m| {
                let cp = &catalog.get(m.patch).patch;
                let mut cves: Vec<String> = std::iter::once(m.patch)
                    .chain(d.covers(m))
                    .flat_map(|p| catalog.get(p).patch.cves.iter().cloned())
                    .collect();
                // Once each, in the order the patches name them.
                let mut seen = std::collections::HashSet::new();
                cves.retain(|c| seen.insert(c.clone()));
                MissingV1 {
                    patch: cp.id.clone(),
                    title: cp.title.clone(),
                    component: cp.component.clone(),
                    installed: device
                        .components
                        .get(&cp.component)
                        .map(|i| i.as_str().to_string())
                        .unwrap_or_default(),
                    fixed_version: cp.fixed_version.clone(),
                    severity: m.severity.into(),
                    cves,
                    covers: ids(&mut d.covers(m)),
                    released: ts(m.released),
                    age_days: age_days(m.released, at),
                }
            })
            .collect();
        devices.push(DeviceComplianceV1 {
            id: entry.id.clone(),
            tags: entry.tags.clone(),
            observed: entry.last_scan.is_some(),
            last_scan: entry.last_scan.as_ref().map(|s| s.at),
            reachable,
            error,
            scan_overdue,
            reboot_pending,
            fully_patched: d.fully_patched(),
            missing_by_severity: by,
            oldest_missing_days: d.oldest_missing.map(|r| age_days(r, at)),
            missing,
        });
    }
    let mut patches: Vec<PatchComplianceV1> = computed
        .patches
        .iter()
        .map(|p| {
            let cp = &catalog.get(p.patch).patch;
            PatchComplianceV1 {
                id: cp.id.clone(),
                title: cp.title.clone(),
                component: cp.component.clone(),
                fixed_version: cp.fixed_version.clone(),
                severity: cp.severity.into(),
                cves: cp.cves.clone(),
                released: ts(cp.released),
                affected: p.affected,
                patched: p.patched,
            }
        })
        .collect();
    patches.sort_by(|a, b| a.id.cmp(&b.id));
    ComplianceV1 {
        schema: Schema::new(),
        at: request.at,
        filter: request.filter.clone(),
        scan_interval_secs: request.interval.as_secs(),
        catalog: CatalogInfoV1 {
            discovered_at,
            patches: catalog.patches.len(),
            refused: catalog.refused.len(),
        },
        summary,
        devices,
        patches,
    }
}

/// One gauge of `/metrics`: name, help, and samples (labels, value).
pub type Gauge = (&'static str, &'static str, Vec<(String, f64)>);

/// The fleet's compliance gauges for `/metrics`, from a document computed without a
/// filter.
pub fn gauges(doc: &ComplianceV1) -> Vec<Gauge> {
    let oldest_critical = doc
        .summary
        .by_severity
        .iter()
        .find(|s| s.severity == SeverityV1::Critical)
        .and_then(|s| s.oldest_missing_days)
        .unwrap_or(0);
    vec![
        (
            "ringleader_compliance_devices_missing_fixes",
            "Devices of the fleet registry missing at least one applicable fix, by the fix's severity.",
            doc.summary
                .by_severity
                .iter()
                .map(|s| {
                    (
                        format!("{{severity=\"{}\"}}", s.severity),
                        f64::from(s.devices_missing),
                    )
                })
                .collect(),
        ),
        (
            "ringleader_compliance_oldest_missing_critical_fix_days",
            "Age in days of the oldest critical fix a device lacks (0 when none is missing).",
            vec![(String::new(), oldest_critical as f64)],
        ),
        (
            "ringleader_fleet_devices_not_scanned_recently",
            "Devices never scanned, or not within the scan interval.",
            vec![(String::new(), f64::from(doc.summary.not_scanned_recently))],
        ),
        (
            "ringleader_compliance_devices",
            "Devices of the fleet registry compliance counts.",
            vec![(String::new(), f64::from(doc.summary.devices))],
        ),
    ]
}
