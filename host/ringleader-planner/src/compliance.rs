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

use crate::catalog::{Catalog, PatchIndex, Reading};
use crate::inventory::{Device, Installed};
use crate::plan::{stand_in, superseding};
use crate::version::{AnyVersion, Scheme};
use ringleader_types::{Severity, Timestamp};
use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::OnceLock;

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

impl<'a> Fleet<'a> {
    /// Computes the fleet's compliance; devices are looked at in parallel and the
    /// result does not depend on how many threads ran.
    pub fn compute(&self) -> Compliance {
        let selected: Vec<u32> = (0..self.devices.len() as u32)
            .filter(|&i| self.filter.selects_device(&self.devices[i as usize]))
            .collect();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = selected.len().div_ceil(threads).max(1);
        let ladders = &Ladders::of(self.catalog);
        let parts: Vec<Part> = std::thread::scope(|scope| {
            let workers: Vec<_> = selected
                .chunks(chunk)
                .map(|devices| scope.spawn(move || self.part(ladders, devices)))
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
    fn part(&self, ladders: &HashMap<&str, Ladders<'a>>, devices: &[u32]) -> Part {
        let mut counts = vec![(0u32, 0u32); self.catalog.patches.len()];
        let mut out = Vec::with_capacity(devices.len());
        let mut applicable: Vec<PatchIndex> = Vec::new();
        for &i in devices {
            applicable.clear();
            let d = &self.devices[i as usize];
            for (component, installed) in &d.components {
                let Some(ladders) = ladders.get(component.as_str()) else {
                    continue;
                };
                match installed.declared_scheme() {
                    Some(scheme) => ladders.declared(self.catalog, scheme).climb(
                        installed,
                        &mut counts,
                        &mut applicable,
                    ),
                    None => {
                        for ladder in &ladders.undeclared {
                            ladder.climb(installed, &mut counts, &mut applicable);
                        }
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

/// A component's patches read in one scheme, in the order of their fixed versions: the
/// patches a device's version is at or above are the ladder's first rungs, found by
/// one binary search, and only those above it are checked against `applies-to`. The
/// outcome is [`plan::need`]'s for each pair (the rule the plan uses; a test holds the
/// two together), in fewer comparisons.
///
/// [`plan::need`]: crate::plan::need
struct Ladder<'c> {
    scheme: Scheme,
    /// The patches readable in `scheme`, by fixed version (then index).
    rungs: Vec<(PatchIndex, &'c Reading)>,
}

impl<'c> Ladder<'c> {
    fn of(catalog: &'c Catalog, patches: impl Iterator<Item = PatchIndex>, scheme: Scheme) -> Self {
        let mut rungs: Vec<(PatchIndex, &Reading)> = patches
            .filter_map(|p| catalog.get(p).reading(scheme).ok().map(|r| (p, r)))
            .collect();
        rungs.sort_by(|a, b| {
            a.1.fixed
                .try_cmp(&b.1.fixed)
                .unwrap_or(Ordering::Equal)
                .then(a.0.cmp(&b.0))
        });
        Ladder { scheme, rungs }
    }

    /// Counts a component at `installed` against every rung: patched for those at or
    /// below it, affected (and `applicable`) for those above whose `applies-to` holds
    /// it. A version that cannot be read in the ladder's scheme compares with none.
    fn climb(
        &self,
        installed: &Installed,
        counts: &mut [(u32, u32)],
        applicable: &mut Vec<PatchIndex>,
    ) {
        let version = if installed.version.scheme() == self.scheme {
            Cow::Borrowed(&installed.version)
        } else {
            match AnyVersion::parse(self.scheme, installed.as_str()) {
                Ok(v) => Cow::Owned(v),
                Err(_) => return,
            }
        };
        let below = self.rungs.partition_point(|(_, r)| {
            version
                .try_cmp(&r.fixed)
                .is_ok_and(std::cmp::Ordering::is_ge)
        });
        for &(p, _) in &self.rungs[..below] {
            counts[p as usize].1 += 1;
        }
        for &(p, r) in &self.rungs[below..] {
            if r.applies_to.matches(&version).unwrap_or(false) {
                counts[p as usize].0 += 1;
                applicable.push(p);
            }
        }
    }
}

/// One component's ladders, by [`crate::plan::pair_scheme`]'s rule: a component
/// whose scheme the inventory names is compared with the patches that name none or
/// the same one, read in it (one ladder per scheme, made when a device first needs
/// it); one whose scheme the inventory leaves open is compared with every patch in
/// the patch's own scheme (one ladder per scheme the patches name).
struct Ladders<'c> {
    patches: &'c [PatchIndex],
    declared: [OnceLock<Ladder<'c>>; Scheme::ALL.len()],
    undeclared: Vec<Ladder<'c>>,
}

impl<'c> Ladders<'c> {
    /// Every component's, by name.
    fn of(catalog: &'c Catalog) -> HashMap<&'c str, Ladders<'c>> {
        catalog
            .by_component
            .iter()
            .map(|(component, patches)| {
                let own = |p: PatchIndex| catalog.get(p).own().fixed.scheme();
                let mut schemes: Vec<Scheme> = patches.iter().map(|&p| own(p)).collect();
                schemes.sort_unstable_by_key(|s| *s as usize);
                schemes.dedup();
                let undeclared = schemes
                    .into_iter()
                    .map(|s| {
                        Ladder::of(catalog, patches.iter().copied().filter(|&p| own(p) == s), s)
                    })
                    .collect();
                let ladders = Ladders {
                    patches,
                    declared: Default::default(),
                    undeclared,
                };
                (component.as_str(), ladders)
            })
            .collect()
    }

    fn declared(&self, catalog: &'c Catalog, scheme: Scheme) -> &Ladder<'c> {
        self.declared[scheme as usize].get_or_init(|| {
            let comparable = self
                .patches
                .iter()
                .copied()
                .filter(|&p| catalog.get(p).scheme().is_none_or(|s| s == scheme));
            Ladder::of(catalog, comparable, scheme)
        })
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
