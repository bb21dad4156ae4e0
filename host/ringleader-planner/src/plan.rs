//! The plan: which device gets which patch, in which ring and batch, in which order,
//! no earlier than when, and why (or why not). Deterministic: the same policy,
//! inventory, catalog and planning time give the same plan.

use crate::catalog::{Catalog, CatalogPatch, PatchIndex, Reading};
use crate::inventory::{Device, Installed, Inventory};
use crate::policy::{Amount, Policy, Reboot, Select};
use crate::schedule;
use crate::version::{AnyVersion, Scheme};
use jiff::Timestamp;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;

/// Index of a device in [`Inventory::devices`].
pub type DeviceIndex = u32;

/// A complete plan.
#[derive(Debug, Clone)]
pub struct Plan {
    pub policy: String,
    pub planned_at: Timestamp,
    pub rings: Vec<RingPlan>,
    /// Devices that no ring selects.
    pub unassigned: Vec<DeviceIndex>,
    /// (device, patch) pairs that are not planned, with why, in ring and rollout order
    /// (patches older than what a device runs are left out; `explain` lists them).
    pub skipped: Vec<Skip>,
}

/// One ring of the plan.
#[derive(Debug, Clone)]
pub struct RingPlan {
    pub name: String,
    /// Devices in rollout order: by batch, then by stable hash.
    pub devices: Vec<DevicePlan>,
    /// Number of devices in each batch.
    pub batch_sizes: Vec<usize>,
    /// Earliest the ring can start, before windows (previous rings' soaks added).
    pub earliest_start: Timestamp,
    pub approval: bool,
    pub soak: Duration,
}

/// One device's part of the plan.
#[derive(Debug, Clone)]
pub struct DevicePlan {
    pub device: DeviceIndex,
    /// 0-based batch within the ring.
    pub batch: u32,
    /// Patches in install order (prerequisites first, reboots grouped).
    pub steps: Vec<Step>,
}

/// One patch on one device. Kept small: a plan of 100,000 devices holds millions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub patch: PatchIndex,
    /// Earliest start, seconds since the Unix epoch.
    start: i64,
    /// End of a deferral that held the patch back, seconds; 0 when none.
    deferred: i64,
    /// Index of a freeze that pushed the start later; `u16::MAX` when none.
    frozen: u16,
    /// Soaks shortened (and maybe windows skipped) by the policy's expedite rule.
    pub expedited: bool,
    /// The device reboots after this step: its last, when any of its patches needs a
    /// restart (once per device and rollout).
    pub reboot_after: bool,
    /// Pushed later to the next maintenance window opening.
    pub waited_for_window: bool,
}

impl Step {
    /// No install of this patch on this device starts before this.
    pub fn earliest_start(&self) -> Timestamp {
        Timestamp::from_second(self.start).unwrap_or(schedule::NEVER)
    }

    /// When a deferral by patch kind held the patch back: until when.
    pub fn deferred_until(&self) -> Option<Timestamp> {
        (self.deferred != 0)
            .then(|| Timestamp::from_second(self.deferred).unwrap_or(schedule::NEVER))
    }

    /// The policy's freeze (by index) that pushed the start later, if one did.
    pub fn frozen_by(&self) -> Option<usize> {
        (self.frozen != u16::MAX).then_some(usize::from(self.frozen))
    }
}

/// A (device, patch) pair that is not planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    pub device: DeviceIndex,
    pub patch: PatchIndex,
    pub reason: SkipReason,
}

/// Why a patch is not planned for a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The device does not have the patch's component (only in explanations).
    ComponentAbsent,
    /// The installed version is already at or above the fixed version (only in
    /// explanations: the plan does not list every older patch of every device).
    AlreadyAtOrAbove,
    /// The installed version is below the fixed version but outside `applies-to`.
    NotApplicable,
    /// The policy approves other versions of the component (the operator's list).
    NotApproved,
    /// A newer patch that also applies replaces it.
    Superseded { by: PatchIndex },
    /// A prerequisite no source reported (index into the patch's
    /// `missing_prerequisites`).
    MissingPrerequisite { index: u16 },
    /// A prerequisite that applies but is not planned (itself skipped or out of range).
    PrerequisiteNotPlanned { prerequisite: PatchIndex },
    /// The device is in no ring.
    NoRing,
    /// The inventory names one scheme for the device's component and the patch names
    /// another: versions of two schemes have no order.
    SchemeMismatch,
    /// A version cannot be read in the scheme the pair is compared in: the patch's
    /// (`patch`) or the device's.
    UnreadableVersion { scheme: Scheme, patch: bool },
}

/// The scheme a device's component and a patch for it are compared in: the one the
/// inventory names for the component, else the one the patch names, else `vendor`;
/// [`SkipReason::SchemeMismatch`] when both name one and they differ.
pub fn pair_scheme(installed: &Installed, patch: &CatalogPatch) -> Result<Scheme, SkipReason> {
    match (installed.declared_scheme(), patch.scheme()) {
        (Some(c), Some(p)) if c != p => Err(SkipReason::SchemeMismatch),
        (Some(c), _) => Ok(c),
        (None, Some(p)) => Ok(p),
        (None, None) => Ok(Scheme::Vendor),
    }
}

/// The installed version and the patch, both read in their [`pair_scheme`].
fn pair<'a>(
    installed: &'a Installed,
    patch: &'a CatalogPatch,
) -> Result<(Cow<'a, AnyVersion>, &'a Reading), SkipReason> {
    let scheme = pair_scheme(installed, patch)?;
    let reading = patch
        .reading(scheme)
        .map_err(|_| SkipReason::UnreadableVersion {
            scheme,
            patch: true,
        })?;
    let version = if installed.version.scheme() == scheme {
        Cow::Borrowed(&installed.version)
    } else {
        // Only for a component whose scheme the inventory leaves to the patch.
        Cow::Owned(AnyVersion::parse(scheme, installed.as_str()).map_err(|_| {
            SkipReason::UnreadableVersion {
                scheme,
                patch: false,
            }
        })?)
    };
    Ok((version, reading))
}

/// What a device with a component at `installed` needs of a patch for it, by the
/// versions alone (the policy's approved versions aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The installed version is at or above the fixed version: the device has the fix.
    AtOrAbove,
    /// Below the fixed version and inside `applies-to`: the patch applies.
    Applies,
    /// Below the fixed version but outside `applies-to`.
    OutOfRange,
}

/// Whether the patch applies to a component at `installed`, compared in their
/// [`pair_scheme`] (the rule the plan and compliance both use), with the patch read
/// in that scheme; the error is why the pair cannot be compared.
pub fn need<'a>(
    installed: &'a Installed,
    patch: &'a CatalogPatch,
) -> Result<(Need, &'a Reading), SkipReason> {
    let (installed, reading) = pair(installed, patch)?;
    let need = if at_or_above(&installed, reading) {
        Need::AtOrAbove
    } else if reading.applies_to.matches(&installed).unwrap_or(false) {
        Need::Applies
    } else {
        Need::OutOfRange
    };
    Ok((need, reading))
}

/// The patch of `applicable` (sorted) that supersedes `p` on a device, if one does:
/// `p` is then not installed (nor counted missing), its successor is.
pub fn superseding(
    catalog: &Catalog,
    p: PatchIndex,
    applicable: &[PatchIndex],
) -> Option<PatchIndex> {
    catalog
        .get(p)
        .superseded_by
        .iter()
        .find(|q| applicable.binary_search(q).is_ok())
        .copied()
}

/// Whether `installed` is at or above the fixed version (both of one scheme).
#[inline]
fn at_or_above(installed: &AnyVersion, reading: &Reading) -> bool {
    installed
        .try_cmp(&reading.fixed)
        .is_ok_and(std::cmp::Ordering::is_ge)
}

/// Why in words: the installed and the fixed version of `patch` on `device`, and the
/// order they are compared by (`installed 2.36-9+deb12u4 < fixed 2.36-9+deb12u7 (deb
/// order)`); `None` when the device lacks the component or the pair cannot be compared.
pub fn comparison(device: &Device, patch: &CatalogPatch) -> Option<String> {
    let installed = device.components.get(&patch.patch.component)?;
    let (version, reading) = pair(installed, patch).ok()?;
    let op = match version.try_cmp(&reading.fixed).ok()? {
        std::cmp::Ordering::Less => "<",
        std::cmp::Ordering::Equal => "=",
        std::cmp::Ordering::Greater => ">",
    };
    Some(format!(
        "installed {} {op} fixed {} ({} order)",
        version,
        reading.fixed,
        reading.fixed.scheme()
    ))
}

/// The scheme `patch` is compared in on `device`, when the device has its component
/// and the two agree.
pub fn scheme_on(device: &Device, patch: &CatalogPatch) -> Option<Scheme> {
    pair_scheme(device.components.get(&patch.patch.component)?, patch).ok()
}

impl SkipReason {
    /// A stable machine-readable name (the JSON `reason`).
    pub fn code(&self) -> &'static str {
        match self {
            SkipReason::ComponentAbsent => "component-absent",
            SkipReason::AlreadyAtOrAbove => "already-at-or-above",
            SkipReason::NotApplicable => "not-applicable",
            SkipReason::NotApproved => "not-approved",
            SkipReason::Superseded { .. } => "superseded",
            SkipReason::MissingPrerequisite { .. } => "missing-prerequisite",
            SkipReason::PrerequisiteNotPlanned { .. } => "prerequisite-not-planned",
            SkipReason::NoRing => "no-ring",
            SkipReason::SchemeMismatch => "scheme-mismatch",
            SkipReason::UnreadableVersion { .. } => "unreadable-version",
        }
    }

    /// A sentence for people about `patch` on `device`.
    pub fn describe(
        &self,
        policy: &Policy,
        catalog: &Catalog,
        device: &Device,
        patch: PatchIndex,
    ) -> String {
        let id = |i: &PatchIndex| catalog.get(*i).patch.id.as_str();
        let cp = catalog.get(patch);
        let approved = policy.approved.get(&cp.patch.component);
        let component = device.components.get(&cp.patch.component);
        let installed = || component.map_or_else(|| "?".to_string(), |v| v.to_string());
        // The pair's scheme and the patch read in it (what the skip was decided by).
        let reading = component
            .and_then(|c| pair(c, cp).ok())
            .map_or(cp.own(), |(_, r)| r);
        let scheme = reading.fixed.scheme();
        match self {
            SkipReason::ComponentAbsent => "the device does not have this component".into(),
            SkipReason::AlreadyAtOrAbove => format!(
                "version {} is already at or above the fixed version {} ({scheme} order)",
                installed(),
                reading.fixed
            ),
            SkipReason::NotApplicable => format!(
                "version {} is outside the range the patch applies to ({}, {scheme} order)",
                installed(),
                reading.applies_to.as_str()
            ),
            SkipReason::NotApproved => format!(
                "version {} is not approved for {} by the policy (only {})",
                reading.fixed,
                cp.patch.component,
                approved.map_or_else(String::new, |a| {
                    let list: Vec<String> = a.versions.iter().map(|v| v.to_string()).collect();
                    let why = if a.reason.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", a.reason)
                    };
                    format!("{}{why}", list.join(", "))
                })
            ),
            SkipReason::Superseded { by } => format!("superseded by {}, which applies", id(by)),
            SkipReason::MissingPrerequisite { index } => format!(
                "blocked: prerequisite {} is in no patch source's catalog",
                cp.missing_prerequisites
                    .get(usize::from(*index))
                    .map_or("?", String::as_str)
            ),
            SkipReason::PrerequisiteNotPlanned { prerequisite } => format!(
                "blocked: prerequisite {} is needed but not planned for this device",
                id(prerequisite)
            ),
            SkipReason::NoRing => "the device is in no ring of the policy".into(),
            SkipReason::SchemeMismatch => format!(
                "the patch's versions are {} versions, and the inventory reads {} on this device as {}: versions of two schemes have no order (name the scheme of the component's package manager in the inventory, or use a source for it)",
                cp.patch.scheme.map_or("?", Scheme::name),
                cp.patch.component,
                component
                    .and_then(Installed::declared_scheme)
                    .map_or("?", Scheme::name)
            ),
            SkipReason::UnreadableVersion {
                scheme,
                patch: true,
            } => format!(
                "the patch cannot be compared in {scheme} order, the scheme of the device's {}: {}",
                cp.patch.component,
                cp.reading(*scheme).err().unwrap_or("?")
            ),
            SkipReason::UnreadableVersion {
                scheme,
                patch: false,
            } => format!(
                "the device's {} version cannot be read in {scheme} order, the patch's scheme: {}",
                cp.patch.component,
                AnyVersion::parse(*scheme, &installed())
                    .err()
                    .map_or_else(|| "?".to_string(), |e| e.to_string())
            ),
        }
    }
}

/// What the planner decided for one patch on one device, for `--explain`.
#[derive(Debug, Clone)]
pub enum Decision {
    Planned {
        ring: String,
        batch: u32,
        /// 1-based position in the device's install order.
        order: usize,
        step: Step,
    },
    Skipped {
        patch: PatchIndex,
        reason: SkipReason,
    },
    /// The catalog refused the patch (bad version or range, duplicate id).
    Refused { reason: String },
}

/// Everything the planner decided for one device.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The device's ring; `None` when no ring selects it.
    pub ring: Option<String>,
    /// Every patch of the catalog, by id: planned (in install order), skipped or refused.
    pub decisions: Vec<(String, Decision)>,
}

/// Priority of a ready patch in the install order: own start, reboot, id rank, local
/// index (a max-heap, so reversed).
type ReadyKey = Reverse<(Timestamp, bool, u32, u32)>;

/// The planner's view of its inputs.
#[derive(Debug)]
pub struct Planner<'a> {
    pub policy: &'a Policy,
    pub inventory: &'a Inventory,
    pub catalog: &'a Catalog,
    pub at: Timestamp,
}

const DAY: i64 = 86_400;

/// A stable pseudo-random rank of a device under a policy: the same every run.
pub fn stable_rank(policy: &str, device: &str) -> u64 {
    let digest = Sha256::new()
        .chain_update(policy.as_bytes())
        .chain_update([0])
        .chain_update(device.as_bytes())
        .finalize();
    u64::from_be_bytes(digest[..8].try_into().unwrap_or([0; 8]))
}

impl Planner<'_> {
    /// The ring index of every device, or `None` when no ring selects it.
    /// Rings are tried in order; a device joins the first that selects it.
    pub fn assign(&self) -> Vec<Option<u16>> {
        self.assign_ranked().0
    }

    /// [`Planner::assign`], with every device's stable rank.
    fn assign_ranked(&self) -> (Vec<Option<u16>>, Vec<u64>) {
        let devices = &self.inventory.devices;
        let ranks: Vec<u64> = devices
            .iter()
            .map(|d| stable_rank(&self.policy.name, &d.id))
            .collect();
        let mut ring_of: Vec<Option<u16>> = vec![None; devices.len()];
        for (r, ring) in self.policy.rings.iter().enumerate() {
            let candidates = (0..devices.len())
                .filter(|&i| ring_of[i].is_none() && selects(&ring.select, &devices[i]));
            let chosen: Vec<usize> = match ring.select {
                Select::Filter {
                    percent: Some(p), ..
                } => {
                    // Per site, the lowest-ranked share: stable and spread over sites.
                    let mut by_site: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
                    for i in candidates {
                        by_site.entry(devices[i].site.as_str()).or_default().push(i);
                    }
                    by_site
                        .into_values()
                        .flat_map(|mut group| {
                            group.sort_by_key(|&i| (ranks[i], i));
                            group.truncate(Amount::Percent(p).of(group.len()));
                            group
                        })
                        .collect()
                }
                _ => candidates.collect(),
            };
            for i in chosen {
                ring_of[i] = Some(r as u16);
            }
        }
        (ring_of, ranks)
    }

    /// Plans every device. Devices are planned in parallel; the result does not depend
    /// on how many threads ran.
    pub fn plan(&self) -> Plan {
        let prepared = self.prepare();
        let (ring_of, ranks) = self.assign_ranked();
        let mut members: Vec<Vec<(u64, DeviceIndex)>> = vec![Vec::new(); self.policy.rings.len()];
        let mut unassigned = Vec::new();
        for (i, ring) in ring_of.iter().enumerate() {
            match ring {
                Some(r) => members[usize::from(*r)].push((ranks[i], i as DeviceIndex)),
                None => unassigned.push(i as DeviceIndex),
            }
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut skipped = Vec::new();
        let mut rings = Vec::with_capacity(self.policy.rings.len());
        for (r, ring) in self.policy.rings.iter().enumerate() {
            let mut order = std::mem::take(&mut members[r]);
            order.sort_unstable();
            let bounds = batch_bounds(&ring.batches, order.len());
            let chunk = order.len().div_ceil(threads).max(1);
            let results: Vec<(Vec<DevicePlan>, Vec<Skip>)> = std::thread::scope(|scope| {
                let workers: Vec<_> = order
                    .chunks(chunk)
                    .enumerate()
                    .map(|(c, devices)| {
                        let prepared = &prepared;
                        let bounds = &bounds;
                        scope.spawn(move || {
                            let mut plans = Vec::with_capacity(devices.len());
                            let mut skips = Vec::new();
                            for (k, &(_, device)) in devices.iter().enumerate() {
                                let position = c * chunk + k;
                                let batch =
                                    bounds.iter().position(|&b| position < b).unwrap_or(0) as u32;
                                let (steps, s) = self.plan_device(prepared, device, r, false);
                                skips.extend(s);
                                plans.push(DevicePlan {
                                    device,
                                    batch,
                                    steps,
                                });
                            }
                            (plans, skips)
                        })
                    })
                    .collect();
                workers
                    .into_iter()
                    .map(|w| w.join().unwrap_or_default())
                    .collect()
            });
            let mut plans = Vec::with_capacity(order.len());
            for (p, s) in results {
                plans.extend(p);
                skipped.extend(s);
            }
            let mut sizes = Vec::with_capacity(bounds.len());
            let mut previous = 0;
            for b in &bounds {
                sizes.push(b - previous);
                previous = *b;
            }
            rings.push(RingPlan {
                name: ring.name.clone(),
                devices: plans,
                batch_sizes: sizes,
                earliest_start: prepared.ring_start[r][0],
                approval: ring.approval,
                soak: ring.soak,
            });
        }
        Plan {
            policy: self.policy.name.clone(),
            planned_at: self.at,
            rings,
            unassigned,
            skipped,
        }
    }

    /// Every patch of the catalog, and what was decided for it on `device_id`.
    /// `None` when the inventory has no such device.
    pub fn explain(&self, device_id: &str) -> Option<Explanation> {
        let index = self
            .inventory
            .devices
            .iter()
            .position(|d| d.id == device_id)?;
        let ring_of = self.assign();
        let ring = ring_of[index].map(usize::from);
        let mut decisions: Vec<(String, Decision)> = Vec::new();
        match ring {
            None => {
                for (i, p) in self.catalog.patches.iter().enumerate() {
                    decisions.push((
                        p.patch.id.clone(),
                        Decision::Skipped {
                            patch: i as PatchIndex,
                            reason: SkipReason::NoRing,
                        },
                    ));
                }
            }
            Some(r) => {
                let plan = self.plan();
                let ring_plan = &plan.rings[r];
                let device_plan = ring_plan
                    .devices
                    .iter()
                    .find(|d| d.device == index as DeviceIndex);
                let (steps, skips) =
                    self.plan_device(&self.prepare(), index as DeviceIndex, r, true);
                let batch = device_plan.map_or(0, |d| d.batch);
                for (order, step) in steps.into_iter().enumerate() {
                    decisions.push((
                        self.catalog.get(step.patch).patch.id.clone(),
                        Decision::Planned {
                            ring: ring_plan.name.clone(),
                            batch,
                            order: order + 1,
                            step,
                        },
                    ));
                }
                let mut skips = skips;
                skips.sort_by(|a, b| {
                    let id = |s: &Skip| &self.catalog.get(s.patch).patch.id;
                    id(a).cmp(id(b))
                });
                for skip in skips {
                    decisions.push((
                        self.catalog.get(skip.patch).patch.id.clone(),
                        Decision::Skipped {
                            patch: skip.patch,
                            reason: skip.reason,
                        },
                    ));
                }
            }
        }
        for refused in &self.catalog.refused {
            decisions.push((
                refused.patch_id.clone(),
                Decision::Refused {
                    reason: format!("{} (reported by `{}`)", refused.reason, refused.source),
                },
            ));
        }
        Some(Explanation {
            ring: ring.map(|r| self.policy.rings[r].name.clone()),
            decisions,
        })
    }

    /// Per-patch and per-ring facts every device needs, computed once per plan.
    fn prepare(&self) -> Prepared {
        let catalog = self.catalog;
        let expedited: Vec<bool> = catalog
            .patches
            .iter()
            .map(|cp| {
                self.policy
                    .expedite
                    .as_ref()
                    .is_some_and(|e| e.severities.contains(&cp.patch.severity))
            })
            .collect();
        let deferred: Vec<Option<Timestamp>> = catalog
            .patches
            .iter()
            .map(|cp| {
                let def = self
                    .policy
                    .deferrals
                    .iter()
                    .find(|d| d.kind == cp.patch.kind)?;
                let until = cp.patch.released.saturating_add(i64::from(def.days) * DAY);
                Some(schedule::add_seconds(Timestamp::UNIX_EPOCH, until))
            })
            .collect();
        let mut by_id: Vec<PatchIndex> = (0..catalog.patches.len() as PatchIndex).collect();
        by_id.sort_by(|a, b| catalog.get(*a).patch.id.cmp(&catalog.get(*b).patch.id));
        let mut id_rank = vec![0u32; by_id.len()];
        for (rank, p) in by_id.into_iter().enumerate() {
            id_rank[p as usize] = rank as u32;
        }
        let ring_start = (0..self.policy.rings.len())
            .map(|r| [self.ring_start(r, false), self.ring_start(r, true)])
            .collect();
        Prepared {
            ring_start,
            expedited,
            deferred,
            id_rank,
        }
    }

    /// When ring `r` may start: the planning time plus the soaks of the rings before it
    /// (shortened for expedited patches).
    fn ring_start(&self, r: usize, expedited: bool) -> Timestamp {
        let factor = match (&self.policy.expedite, expedited) {
            (Some(e), true) => e.soak_factor,
            _ => 1.0,
        };
        let soak: f64 = self.policy.rings[..r]
            .iter()
            .map(|ring| ring.soak.as_secs_f64() * factor)
            .sum();
        // Saturating (a float too large for i64 becomes i64::MAX), so a sum of long
        // soaks is never, not the planning time.
        schedule::add_seconds(self.at, soak.round() as i64)
    }

    /// The steps and skips of one device in ring `r`. With `explain`, also lists the
    /// patches whose component the device does not have and those already installed.
    ///
    /// Phases, each its own function: applicability, supersedence, prerequisites,
    /// install order, then times and reboots.
    fn plan_device(
        &self,
        prep: &Prepared,
        device: DeviceIndex,
        r: usize,
        explain: bool,
    ) -> (Vec<Step>, Vec<Skip>) {
        let d = &self.inventory.devices[device as usize];
        let mut skips = Vec::new();
        let applicable = self.applicable(d, device, explain, &mut skips);
        let (mut planned, successors) = self.supersede(device, &applicable, &mut skips);
        self.drop_blocked(d, device, &mut planned, &successors, &mut skips);
        let order = self.install_order(prep, r, &planned, &successors);
        let steps = self.schedule_steps(prep, d, r, order);
        (steps, skips)
    }

    /// 1. Applicability: the patches for the device's components that it needs, may
    ///    take (their range holds) and are approved, in index order.
    fn applicable(
        &self,
        d: &Device,
        device: DeviceIndex,
        explain: bool,
        skips: &mut Vec<Skip>,
    ) -> Vec<PatchIndex> {
        let catalog = self.catalog;
        let mut applicable: Vec<PatchIndex> = Vec::new();
        for (component, installed) in &d.components {
            let Some(patches) = catalog.by_component.get(component) else {
                continue;
            };
            for &p in patches {
                let cp = catalog.get(p);
                let (need, reading) = match need(installed, cp) {
                    Ok(need) => need,
                    Err(reason) => {
                        skips.push(skip(device, p, reason));
                        continue;
                    }
                };
                if need == Need::AtOrAbove {
                    if explain {
                        skips.push(skip(device, p, SkipReason::AlreadyAtOrAbove));
                    }
                } else if need == Need::OutOfRange {
                    skips.push(skip(device, p, SkipReason::NotApplicable));
                } else if self
                    .policy
                    .approved
                    .get(component)
                    .is_some_and(|a| !a.allows(&reading.fixed))
                {
                    // Not approved, it supersedes nothing either: an approved older
                    // patch it replaces is still planned.
                    skips.push(skip(device, p, SkipReason::NotApproved));
                } else {
                    applicable.push(p);
                }
            }
        }
        applicable.sort_unstable();
        if explain {
            for (i, cp) in catalog.patches.iter().enumerate() {
                if !d.components.contains_key(&cp.patch.component) {
                    skips.push(skip(device, i as PatchIndex, SkipReason::ComponentAbsent));
                }
            }
        }
        applicable
    }

    /// 2. Supersedence: a patch replaced by another applicable one is not planned.
    ///    Returns the planned patches and, sorted, each superseded one's successor.
    fn supersede(
        &self,
        device: DeviceIndex,
        applicable: &[PatchIndex],
        skips: &mut Vec<Skip>,
    ) -> (Vec<PatchIndex>, Vec<(PatchIndex, PatchIndex)>) {
        let mut planned: Vec<PatchIndex> = Vec::with_capacity(applicable.len());
        let mut successors: Vec<(PatchIndex, PatchIndex)> = Vec::new();
        for &p in applicable {
            match superseding(self.catalog, p, applicable) {
                Some(q) => {
                    successors.push((p, q));
                    skips.push(skip(device, p, SkipReason::Superseded { by: q }));
                }
                None => planned.push(p),
            }
        }
        (planned, successors)
    }

    /// 3. Prerequisites: drops planned patches whose prerequisite is neither on the
    ///    device nor planned, until nothing more is blocked.
    fn drop_blocked(
        &self,
        d: &Device,
        device: DeviceIndex,
        planned: &mut Vec<PatchIndex>,
        successors: &[(PatchIndex, PatchIndex)],
        skips: &mut Vec<Skip>,
    ) {
        let catalog = self.catalog;
        loop {
            let mut blocked: Vec<(PatchIndex, SkipReason)> = Vec::new();
            for &p in planned.iter() {
                let cp = catalog.get(p);
                if !cp.missing_prerequisites.is_empty() {
                    blocked.push((p, SkipReason::MissingPrerequisite { index: 0 }));
                    continue;
                }
                for &pre in &cp.prerequisites {
                    let pre_patch = catalog.get(pre);
                    let satisfied = match d.components.get(&pre_patch.patch.component) {
                        None => true,
                        Some(installed) => pair(installed, pre_patch)
                            .is_ok_and(|(installed, reading)| at_or_above(&installed, reading)),
                    } || planned.binary_search(&stand_in(successors, pre)).is_ok();
                    if !satisfied {
                        blocked.push((p, SkipReason::PrerequisiteNotPlanned { prerequisite: pre }));
                        break;
                    }
                }
            }
            if blocked.is_empty() {
                return;
            }
            planned.retain(|p| !blocked.iter().any(|(b, _)| b == p));
            skips.extend(
                blocked
                    .into_iter()
                    .map(|(p, reason)| skip(device, p, reason)),
            );
        }
    }

    /// 4. Order: topological over prerequisites. Among ready patches: earliest own
    ///    start first (a deferred patch must not hold back the others), then those
    ///    without a reboot (so reboots gather at the end), then by id.
    fn install_order(
        &self,
        prep: &Prepared,
        r: usize,
        planned: &[PatchIndex],
        successors: &[(PatchIndex, PatchIndex)],
    ) -> Vec<PatchIndex> {
        let catalog = self.catalog;
        let n = planned.len();
        let mut pending = vec![0u32; n];
        let mut edges: Vec<(u32, u32)> = Vec::new();
        for (i, &p) in planned.iter().enumerate() {
            for &pre in &catalog.get(p).prerequisites {
                if let Ok(j) = planned.binary_search(&stand_in(successors, pre))
                    && j != i
                {
                    pending[i] += 1;
                    edges.push((j as u32, i as u32));
                }
            }
        }
        edges.sort_unstable();
        let key = |i: usize| {
            let p = planned[i];
            Reverse((
                prep.own_start(r, p).0,
                catalog.get(p).patch.reboot_required,
                prep.id_rank[p as usize],
                i as u32,
            ))
        };
        let mut ready: BinaryHeap<ReadyKey> =
            (0..n).filter(|&i| pending[i] == 0).map(key).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(Reverse((_, _, _, i))) = ready.pop() {
            order.push(planned[i as usize]);
            let first = edges.partition_point(|e| e.0 < i);
            for &(_, to) in edges[first..].iter().take_while(|e| e.0 == i) {
                pending[to as usize] -= 1;
                if pending[to as usize] == 0 {
                    ready.push(key(to as usize));
                }
            }
        }
        order
    }

    /// 5. Times and reboots: each step's earliest start (after the one before, its
    ///    own start, inside the ring's window, outside freezes), and a reboot after
    ///    the last step when any step needs one.
    fn schedule_steps(
        &self,
        prep: &Prepared,
        d: &Device,
        r: usize,
        order: Vec<PatchIndex>,
    ) -> Vec<Step> {
        let catalog = self.catalog;
        let ring = &self.policy.rings[r];
        let window = ring
            .window
            .as_ref()
            .and_then(|w| self.policy.windows.get(w));
        let skip_window_rule = self.policy.expedite.as_ref().is_some_and(|e| e.skip_window);
        let mut steps: Vec<Step> = Vec::with_capacity(order.len());
        let mut previous = self.at;
        let mut cache: Vec<((Timestamp, bool), schedule::Earliest)> = Vec::new();
        let mut pending_reboot = false;
        for p in order {
            let cp = catalog.get(p);
            let expedited = prep.expedited[p as usize];
            let (own, deferred_until) = prep.own_start(r, p);
            let t0 = own.max(previous);
            let skip_window = expedited && skip_window_rule;
            let earliest = match cache.iter().find(|(k, _)| *k == (t0, skip_window)) {
                Some((_, e)) => *e,
                None => {
                    let e = schedule::earliest(
                        t0,
                        &d.timezone,
                        if skip_window { None } else { window },
                        &self.policy.freezes,
                    );
                    cache.push(((t0, skip_window), e));
                    e
                }
            };
            // One restart per device and rollout, after its last step: a patch whose
            // prerequisite needs a restart is installed before it (a BMC stages both
            // and applies them in order at the reset, as a package manager configures
            // both before the reboot), which prerequisite order already gives.
            pending_reboot |= cp.patch.reboot_required;
            previous = earliest.at;
            steps.push(Step {
                patch: p,
                start: earliest.at.as_second(),
                deferred: deferred_until.map_or(0, |t| t.as_second()),
                frozen: earliest
                    .frozen_by
                    .and_then(|i| u16::try_from(i).ok())
                    .unwrap_or(u16::MAX),
                expedited,
                reboot_after: false,
                waited_for_window: earliest.waited_for_window,
            });
        }
        let reboot = match ring.reboot {
            Reboot::IfNeeded => pending_reboot,
            Reboot::Always => true,
            Reboot::Never => false,
        };
        if reboot && let Some(last) = steps.last_mut() {
            last.reboot_after = true;
        }
        steps
    }
}

/// A patch the plan skips on a device, and why.
fn skip(device: DeviceIndex, patch: PatchIndex, reason: SkipReason) -> Skip {
    Skip {
        device,
        patch,
        reason,
    }
}

/// The patch that stands in for `p` on a device: `p`, or the applicable patch that
/// supersedes it (transitively), from `successors` sorted by the superseded patch.
pub fn stand_in(successors: &[(PatchIndex, PatchIndex)], mut p: PatchIndex) -> PatchIndex {
    for _ in 0..=successors.len() {
        match successors.binary_search_by_key(&p, |s| s.0) {
            Ok(i) => p = successors[i].1,
            Err(_) => break,
        }
    }
    p
}

/// Per-plan facts shared by every device (see [`Planner::prepare`]).
#[derive(Debug)]
struct Prepared {
    /// Per ring: its start for ordinary and for expedited patches.
    ring_start: Vec<[Timestamp; 2]>,
    /// Per patch: whether the expedite rule covers it.
    expedited: Vec<bool>,
    /// Per patch: the end of its deferral, when a deferral rule covers its kind.
    deferred: Vec<Option<Timestamp>>,
    /// Per patch: its position in id order (the last tie-break of install order).
    id_rank: Vec<u32>,
}

impl Prepared {
    /// When patch `p` may start in ring `r`: the ring's start (for ordinary or
    /// expedited patches), or the end of the patch's deferral if later (also given).
    fn own_start(&self, r: usize, p: PatchIndex) -> (Timestamp, Option<Timestamp>) {
        let ring_start = self.ring_start[r][usize::from(self.expedited[p as usize])];
        let deferred = self.deferred[p as usize].filter(|until| *until > ring_start);
        (deferred.unwrap_or(ring_start), deferred)
    }
}

/// Whether a filter selects a device (percent is applied separately).
fn selects(select: &Select, d: &Device) -> bool {
    match select {
        Select::Rest => true,
        Select::Filter {
            tags,
            exclude_tags,
            ids,
            sites,
            ..
        } => {
            tags.iter().all(|t| d.has_tag(t))
                && !exclude_tags.iter().any(|t| d.has_tag(t))
                && (ids.is_empty() || ids.contains(&d.id))
                && (sites.is_empty() || sites.contains(&d.site))
        }
    }
}

/// Cumulative device counts at the end of each batch; the last is always `total`.
fn batch_bounds(batches: &[Amount], total: usize) -> Vec<usize> {
    let mut bounds: Vec<usize> = Vec::new();
    for amount in batches {
        let bound = amount
            .of(total)
            .min(total)
            .max(bounds.last().copied().unwrap_or(0));
        if bound > bounds.last().copied().unwrap_or(0) {
            bounds.push(bound);
        }
    }
    if bounds.last() != Some(&total) {
        bounds.push(total);
    }
    bounds
}

#[cfg(test)]
mod tests;
