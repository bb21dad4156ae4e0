//! Compliance: which devices lack which applicable fixes, by severity and age.
//!
//! Pure: devices (their components as observed, else as declared: the caller picks)
//! and a catalog in, numbers out; the time the ages are measured at is an input.
//! Applicability and supersedence are the plan's own ([`plan::need`],
//! [`plan::superseding`]): a patch is missing on a device when it applies (the
//! installed version is below the fixed one and inside `applies-to`, compared in the
//! pair's scheme) and no other patch that also applies supersedes it. A superseded
//! patch is never counted on its own: the patch that supersedes it stands for it and
//! carries its severity and CVEs (the highest severity of the two, both CVE lists),
//! and the age of the oldest of them. The policy's approved versions play no part: a
//! fix the operator holds back is still missing.
//!
//! Numbers (docs/compliance.md says what each means):
//! - per device: the missing patches, how many of each severity, and the oldest
//!   missing fix's release (its age at `at`);
//! - per patch: the devices it applies to (affected: they lack its fix, superseded or
//!   not) and the devices at or above its fixed version (patched);
//! - the fleet: devices with nothing missing, and per severity the devices missing a
//!   fix of it (the share fully patched is the rest) and the oldest such fix.

use crate::catalog::{Catalog, PatchIndex};
use crate::inventory::Device;
use crate::plan::{self, Need, stand_in, superseding};
use ringleader_types::{Severity, Timestamp};

/// Severities from lowest to highest: the index of each in the per-severity arrays.
pub const SEVERITIES: [Severity; 5] = [
    Severity::Unknown,
    Severity::Low,
    Severity::Medium,
    Severity::High,
    Severity::Critical,
];

/// The rank of a severity: its index in [`SEVERITIES`].
pub const fn rank(severity: Severity) -> usize {
    match severity {
        Severity::Unknown => 0,
        Severity::Low => 1,
        Severity::Medium => 2,
        Severity::High => 3,
        Severity::Critical => 4,
    }
}

/// Which patches and devices count. A missing entry is selected by its own
/// severity and CVEs (those of the patch and of the patches it stands for).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only fixes of at least this severity.
    pub severity: Option<Severity>,
    /// Only fixes of this CVE (exact id, case-insensitive).
    pub cve: Option<String>,
    /// Only devices with this tag.
    pub tag: Option<String>,
}

impl Filter {
    fn selects<'c>(&self, severity: Severity, mut cves: impl Iterator<Item = &'c String>) -> bool {
        self.severity.is_none_or(|s| rank(severity) >= rank(s))
            && self
                .cve
                .as_ref()
                .is_none_or(|id| cves.any(|c| c.eq_ignore_ascii_case(id)))
    }

    fn selects_device(&self, device: &Device) -> bool {
        self.tag.as_ref().is_none_or(|t| device.has_tag(t))
    }
}

/// The inputs.
#[derive(Debug)]
pub struct Fleet<'a> {
    pub devices: &'a [Device],
    pub catalog: &'a Catalog,
    /// When ages are measured, seconds since the Unix epoch.
    pub at: Timestamp,
    pub filter: &'a Filter,
}

/// A fix a device lacks (the patches it covers: [`DeviceCompliance::covers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missing {
    /// The patch to install.
    pub patch: PatchIndex,
    /// The highest severity of the patch and those it covers.
    pub severity: Severity,
    /// The earliest release of the patch and those it covers: the fix has been
    /// available since then.
    pub released: Timestamp,
}

/// One device's compliance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCompliance {
    /// Index in [`Fleet::devices`].
    pub device: u32,
    /// By patch index.
    pub missing: Vec<Missing>,
    /// Applicable patches superseded on this device, each with the missing patch that
    /// stands for it (its fix is in it): (missing, covered), sorted (one vector per
    /// device, not one per missing patch: a fleet has millions of these).
    pub covered: Vec<(PatchIndex, PatchIndex)>,
    /// Missing fixes of each severity (by [`rank`]).
    pub by_severity: [u32; 5],
    /// The release of the oldest missing fix.
    pub oldest_missing: Option<Timestamp>,
}

impl DeviceCompliance {
    pub fn fully_patched(&self) -> bool {
        self.missing.is_empty()
    }

    /// The applicable patches `missing` supersedes on this device.
    pub fn covers(&self, missing: &Missing) -> impl Iterator<Item = PatchIndex> + '_ {
        covers(&self.covered, missing.patch)
    }
}

/// One patch across the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PatchCompliance {
    pub patch: PatchIndex,
    /// Devices it applies to: they lack its fix (counted here even where a newer patch
    /// supersedes it).
    pub affected: u32,
    /// Devices at or above its fixed version.
    pub patched: u32,
}

/// The fleet's summary.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    /// Devices the filter selects.
    pub devices: u32,
    /// Devices missing no selected fix.
    pub fully_patched: u32,
    /// Devices missing at least one fix of each severity (by [`rank`]).
    pub missing_by_severity: [u32; 5],
    /// The release of the oldest missing fix of each severity, fleet-wide.
    pub oldest_by_severity: [Option<Timestamp>; 5],
}

impl Summary {
    /// The share of devices missing no fix of `severity` (1 for no devices).
    pub fn share_patched(&self, severity: Severity) -> f64 {
        if self.devices == 0 {
            return 1.0;
        }
        let missing = self.missing_by_severity[rank(severity)];
        f64::from(self.devices - missing) / f64::from(self.devices)
    }
}

/// Everything [`Fleet::compute`] finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compliance {
    pub at: Timestamp,
    /// The devices the filter selects, in input order.
    pub devices: Vec<DeviceCompliance>,
    /// Patches the filter selects that apply to or are installed on a selected
    /// device, by index.
    pub patches: Vec<PatchCompliance>,
    pub summary: Summary,
}

/// Age in whole days from `released` to `at` (0 when released later).
pub fn age_days(released: Timestamp, at: Timestamp) -> u64 {
    u64::try_from(at.saturating_sub(released)).map_or(0, |s| s / 86_400)
}

/// What one worker found: its devices, and per patch (affected, patched).
type Part = (Vec<DeviceCompliance>, Vec<(u32, u32)>);

impl Fleet<'_> {
    /// Computes the fleet's compliance; devices are looked at in parallel and the
    /// result does not depend on how many threads ran.
    pub fn compute(&self) -> Compliance {
        let selected: Vec<u32> = (0..self.devices.len() as u32)
            .filter(|&i| self.filter.selects_device(&self.devices[i as usize]))
            .collect();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = selected.len().div_ceil(threads).max(1);
        let parts: Vec<Part> = std::thread::scope(|scope| {
            let workers: Vec<_> = selected
                .chunks(chunk)
                .map(|devices| scope.spawn(move || self.part(devices)))
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or_default())
                .collect()
        });
        let mut counts = vec![(0u32, 0u32); self.catalog.patches.len()];
        let mut devices = Vec::with_capacity(selected.len());
        let mut summary = Summary {
            devices: selected.len() as u32,
            ..Summary::default()
        };
        for (part, part_counts) in parts {
            for (total, c) in counts.iter_mut().zip(part_counts) {
                total.0 += c.0;
                total.1 += c.1;
            }
            for d in part {
                if d.fully_patched() {
                    summary.fully_patched += 1;
                }
                for (r, n) in d.by_severity.iter().enumerate() {
                    if *n > 0 {
                        summary.missing_by_severity[r] += 1;
                    }
                }
                for m in &d.missing {
                    let oldest = &mut summary.oldest_by_severity[rank(m.severity)];
                    *oldest = Some(oldest.map_or(m.released, |o| o.min(m.released)));
                }
                devices.push(d);
            }
        }
        let patches = counts
            .into_iter()
            .enumerate()
            .filter(|(i, (affected, patched))| {
                let p = &self.catalog.patches[*i].patch;
                (*affected > 0 || *patched > 0) && self.filter.selects(p.severity, p.cves.iter())
            })
            .map(|(i, (affected, patched))| PatchCompliance {
                patch: i as PatchIndex,
                affected,
                patched,
            })
            .collect();
        Compliance {
            at: self.at,
            devices,
            patches,
            summary,
        }
    }

    /// The devices of one worker, and its per-patch counts.
    fn part(&self, devices: &[u32]) -> Part {
        let mut counts = vec![(0u32, 0u32); self.catalog.patches.len()];
        let mut out = Vec::with_capacity(devices.len());
        let mut applicable: Vec<PatchIndex> = Vec::new();
        for &i in devices {
            applicable.clear();
            let d = &self.devices[i as usize];
            for (component, installed) in &d.components {
                let Some(patches) = self.catalog.by_component.get(component) else {
                    continue;
                };
                for &p in patches {
                    match plan::need(installed, self.catalog.get(p)) {
                        Ok((Need::Applies, _)) => {
                            counts[p as usize].0 += 1;
                            applicable.push(p);
                        }
                        Ok((Need::AtOrAbove, _)) => counts[p as usize].1 += 1,
                        Ok((Need::OutOfRange, _)) | Err(_) => {}
                    }
                }
            }
            applicable.sort_unstable();
            out.push(self.device(i, &applicable));
        }
        (out, counts)
    }

    /// One device's missing fixes from its applicable patches (sorted).
    fn device(&self, device: u32, applicable: &[PatchIndex]) -> DeviceCompliance {
        let catalog = self.catalog;
        let mut successors: Vec<(PatchIndex, PatchIndex)> = Vec::new();
        let mut missing: Vec<Missing> = Vec::with_capacity(applicable.len());
        for &p in applicable {
            match superseding(catalog, p, applicable) {
                Some(q) => successors.push((p, q)),
                None => {
                    let cp = &catalog.get(p).patch;
                    missing.push(Missing {
                        patch: p,
                        severity: cp.severity,
                        released: cp.released,
                    });
                }
            }
        }
        // (stand-in, covered), by stand-in.
        let mut covered: Vec<(PatchIndex, PatchIndex)> = successors
            .iter()
            .map(|&(p, _)| (stand_in(&successors, p), p))
            .collect();
        covered.sort_unstable();
        for &(q, p) in &covered {
            if let Ok(k) = missing.binary_search_by_key(&q, |m| m.patch) {
                let cp = &catalog.get(p).patch;
                let m = &mut missing[k];
                if rank(cp.severity) > rank(m.severity) {
                    m.severity = cp.severity;
                }
                m.released = m.released.min(cp.released);
            }
        }
        if self.filter.severity.is_some() || self.filter.cve.is_some() {
            missing.retain(|m| {
                let cves = std::iter::once(m.patch)
                    .chain(covers(&covered, m.patch))
                    .flat_map(|p| catalog.get(p).patch.cves.iter());
                self.filter.selects(m.severity, cves)
            });
        }
        let mut by_severity = [0u32; 5];
        for m in &missing {
            by_severity[rank(m.severity)] += 1;
        }
        DeviceCompliance {
            device,
            oldest_missing: missing.iter().map(|m| m.released).min(),
            missing,
            covered,
            by_severity,
        }
    }
}

/// The patches `patch` covers, from (stand-in, covered) pairs sorted by stand-in.
fn covers(
    covered: &[(PatchIndex, PatchIndex)],
    patch: PatchIndex,
) -> impl Iterator<Item = PatchIndex> + '_ {
    let first = covered.partition_point(|c| c.0 < patch);
    covered[first..]
        .iter()
        .take_while(move |c| c.0 == patch)
        .map(|c| c.1)
}

#[cfg(test)]
mod tests;
