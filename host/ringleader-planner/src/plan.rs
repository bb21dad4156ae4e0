//! The plan: which device gets which patch, in which ring and batch, in which order,
//! no earlier than when, and why (or why not). Deterministic: the same policy,
//! inventory, catalog and planning time give the same plan.

use crate::catalog::{Catalog, PatchIndex};
use crate::inventory::{Device, Inventory};
use crate::policy::{Amount, Policy, Select};
use crate::schedule::{self, Delay};
use jiff::Timestamp;
use sha2::{Digest, Sha256};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
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
    /// Applicable-looking (device, patch) pairs that are not planned, with why.
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

/// One patch on one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub patch: PatchIndex,
    /// No earlier than this.
    pub earliest_start: Timestamp,
    /// Soaks shortened (and maybe windows skipped) by the policy's expedite rule.
    pub expedited: bool,
    /// The device reboots after this step (once for a run of reboot-needing patches).
    pub reboot_after: bool,
    /// Held back by a deferral until this time.
    pub deferred_until: Option<Timestamp>,
    /// Index of a freeze that pushed the start later.
    pub frozen_by: Option<usize>,
    /// Pushed later to the next maintenance window opening.
    pub waited_for_window: bool,
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
    /// The installed version is already at or above the fixed version.
    AlreadyAtOrAbove { installed: String },
    /// The installed version is below the fixed version but outside `applies-to`.
    NotApplicable { installed: String },
    /// A newer patch that also applies replaces it.
    Superseded { by: PatchIndex },
    /// A prerequisite no source reported.
    MissingPrerequisite { id: String },
    /// A prerequisite that applies but is not planned (itself skipped or out of range).
    PrerequisiteNotPlanned { prerequisite: PatchIndex },
    /// The device is in no ring.
    NoRing,
}

impl SkipReason {
    /// A stable machine-readable name (the JSON `reason`).
    pub fn code(&self) -> &'static str {
        match self {
            SkipReason::ComponentAbsent => "component-absent",
            SkipReason::AlreadyAtOrAbove { .. } => "already-at-or-above",
            SkipReason::NotApplicable { .. } => "not-applicable",
            SkipReason::Superseded { .. } => "superseded",
            SkipReason::MissingPrerequisite { .. } => "missing-prerequisite",
            SkipReason::PrerequisiteNotPlanned { .. } => "prerequisite-not-planned",
            SkipReason::NoRing => "no-ring",
        }
    }

    /// A sentence for people.
    pub fn describe(&self, catalog: &Catalog) -> String {
        let id = |i: &PatchIndex| catalog.get(*i).patch.id.as_str();
        match self {
            SkipReason::ComponentAbsent => "the device does not have this component".into(),
            SkipReason::AlreadyAtOrAbove { installed } => {
                format!("version {installed} is already at or above the fixed version")
            }
            SkipReason::NotApplicable { installed } => {
                format!("version {installed} is outside the range the patch applies to")
            }
            SkipReason::Superseded { by } => format!("superseded by {}, which applies", id(by)),
            SkipReason::MissingPrerequisite { id } => {
                format!("blocked: prerequisite {id} is in no patch source's catalog")
            }
            SkipReason::PrerequisiteNotPlanned { prerequisite } => format!(
                "blocked: prerequisite {} is needed but not planned for this device",
                id(prerequisite)
            ),
            SkipReason::NoRing => "the device is in no ring of the policy".into(),
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
    Skipped(SkipReason),
    /// The catalog refused the patch (bad version or range, duplicate id).
    Refused {
        reason: String,
    },
}

/// Everything the planner decided for one device.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The device's ring; `None` when no ring selects it.
    pub ring: Option<String>,
    /// Every patch of the catalog, by id: planned (in install order), skipped or refused.
    pub decisions: Vec<(String, Decision)>,
}

/// Priority of a ready patch in the install order (max-heap, so reversed).
type ReadyKey = Reverse<(Timestamp, bool, String)>;

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
        ring_of
    }

    /// Plans every device.
    pub fn plan(&self) -> Plan {
        let ring_of = self.assign();
        let devices = &self.inventory.devices;
        let mut members: Vec<Vec<(u64, DeviceIndex)>> = vec![Vec::new(); self.policy.rings.len()];
        let mut unassigned = Vec::new();
        for (i, ring) in ring_of.iter().enumerate() {
            match ring {
                Some(r) => members[usize::from(*r)].push((
                    stable_rank(&self.policy.name, &devices[i].id),
                    i as DeviceIndex,
                )),
                None => unassigned.push(i as DeviceIndex),
            }
        }
        let mut skipped = Vec::new();
        let mut rings = Vec::with_capacity(self.policy.rings.len());
        for (r, ring) in self.policy.rings.iter().enumerate() {
            let mut order = std::mem::take(&mut members[r]);
            order.sort_unstable();
            let bounds = batch_bounds(&ring.batches, order.len());
            let mut plans = Vec::with_capacity(order.len());
            for (position, &(_, device)) in order.iter().enumerate() {
                let batch = bounds.iter().position(|&b| position < b).unwrap_or(0) as u32;
                let (steps, skips) = self.plan_device(device, r, false);
                skipped.extend(skips);
                plans.push(DevicePlan {
                    device,
                    batch,
                    steps,
                });
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
                earliest_start: self.ring_start(r, false),
                approval: ring.approval,
                soak: ring.soak,
            });
        }
        skipped.sort_by_key(|s| (s.device, s.patch));
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
                for p in &self.catalog.patches {
                    decisions.push((p.patch.id.clone(), Decision::Skipped(SkipReason::NoRing)));
                }
            }
            Some(r) => {
                let plan = self.plan();
                let ring_plan = &plan.rings[r];
                let device_plan = ring_plan
                    .devices
                    .iter()
                    .find(|d| d.device == index as DeviceIndex);
                let (steps, skips) = self.plan_device(index as DeviceIndex, r, true);
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
                for skip in skips {
                    decisions.push((
                        self.catalog.get(skip.patch).patch.id.clone(),
                        Decision::Skipped(skip.reason),
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

    fn is_expedited(&self, patch: PatchIndex) -> bool {
        self.policy.expedite.as_ref().is_some_and(|e| {
            e.severities
                .contains(&self.catalog.get(patch).patch.severity)
        })
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
        let seconds = self.at.as_second().saturating_add(soak.round() as i64);
        Timestamp::from_second(seconds).unwrap_or(self.at)
    }

    /// When patch `p` could start in ring `r` before windows and freezes: the ring's
    /// start for its expedite class, or the end of its deferral if later (also returned).
    fn own_start(&self, r: usize, p: PatchIndex) -> (Timestamp, Option<Timestamp>) {
        let cp = self.catalog.get(p);
        let ring_start = self.ring_start(r, self.is_expedited(p));
        let deferred_until = self
            .policy
            .deferrals
            .iter()
            .find(|def| def.kind == cp.patch.kind)
            .and_then(|def| {
                let until = cp.patch.released.saturating_add(i64::from(def.days) * DAY);
                Timestamp::from_second(until).ok()
            })
            .filter(|until| *until > ring_start);
        (deferred_until.unwrap_or(ring_start), deferred_until)
    }

    /// The steps and skips of one device in ring `r`. With `explain`, also lists the
    /// patches whose component the device does not have.
    fn plan_device(&self, device: DeviceIndex, r: usize, explain: bool) -> (Vec<Step>, Vec<Skip>) {
        let d = &self.inventory.devices[device as usize];
        let catalog = self.catalog;
        let mut skips = Vec::new();
        let skip = |patch: PatchIndex, reason: SkipReason| Skip {
            device,
            patch,
            reason,
        };

        // 1. Applicability.
        let mut applicable: BTreeSet<PatchIndex> = BTreeSet::new();
        for (component, installed) in &d.components {
            let Some(patches) = catalog.by_component.get(component) else {
                continue;
            };
            for &p in patches {
                let cp = catalog.get(p);
                if *installed >= cp.fixed {
                    skips.push(skip(
                        p,
                        SkipReason::AlreadyAtOrAbove {
                            installed: installed.to_string(),
                        },
                    ));
                } else if !cp.applies_to.matches(installed) {
                    skips.push(skip(
                        p,
                        SkipReason::NotApplicable {
                            installed: installed.to_string(),
                        },
                    ));
                } else {
                    applicable.insert(p);
                }
            }
        }
        if explain {
            for (i, cp) in catalog.patches.iter().enumerate() {
                if !d.components.contains_key(&cp.patch.component) {
                    skips.push(skip(i as PatchIndex, SkipReason::ComponentAbsent));
                }
            }
        }

        // 2. Supersedence: a patch replaced by another applicable one is not planned.
        let mut planned: BTreeSet<PatchIndex> = BTreeSet::new();
        let mut successor: HashMap<PatchIndex, PatchIndex> = HashMap::new();
        for &p in &applicable {
            match catalog
                .get(p)
                .superseded_by
                .iter()
                .find(|q| applicable.contains(q))
            {
                Some(&q) => {
                    successor.insert(p, q);
                    skips.push(skip(p, SkipReason::Superseded { by: q }));
                }
                None => {
                    planned.insert(p);
                }
            }
        }
        // Where a superseded patch is someone's prerequisite, its successor stands in.
        let resolve = |mut p: PatchIndex| {
            for _ in 0..catalog.patches.len() {
                match successor.get(&p) {
                    Some(&q) => p = q,
                    None => break,
                }
            }
            p
        };

        // 3. Prerequisites, until nothing more is blocked.
        loop {
            let mut blocked = Vec::new();
            for &p in &planned {
                let cp = catalog.get(p);
                if let Some(id) = cp.missing_prerequisites.first() {
                    blocked.push((p, SkipReason::MissingPrerequisite { id: id.clone() }));
                    continue;
                }
                for &pre in &cp.prerequisites {
                    let pre_patch = catalog.get(pre);
                    let satisfied = match d.components.get(&pre_patch.patch.component) {
                        None => true,
                        Some(installed) => *installed >= pre_patch.fixed,
                    } || planned.contains(&resolve(pre));
                    if !satisfied {
                        blocked.push((p, SkipReason::PrerequisiteNotPlanned { prerequisite: pre }));
                        break;
                    }
                }
            }
            if blocked.is_empty() {
                break;
            }
            for (p, reason) in blocked {
                planned.remove(&p);
                skips.push(skip(p, reason));
            }
        }

        // 4. Order: topological over prerequisites; among ready patches, those without a
        // reboot first, so that reboot-needing patches gather at the end (one reboot).
        let mut pending: HashMap<PatchIndex, usize> = HashMap::new();
        let mut dependents: HashMap<PatchIndex, Vec<PatchIndex>> = HashMap::new();
        for &p in &planned {
            let mut count = 0;
            for &pre in &catalog.get(p).prerequisites {
                let pre = resolve(pre);
                if planned.contains(&pre) && pre != p {
                    count += 1;
                    dependents.entry(pre).or_default().push(p);
                }
            }
            pending.insert(p, count);
        }
        // Among ready patches: earliest own start first (a deferred patch must not hold
        // back the others), then those without a reboot, then by id.
        let own_start: HashMap<PatchIndex, (Timestamp, Option<Timestamp>)> =
            planned.iter().map(|&p| (p, self.own_start(r, p))).collect();
        let key = |p: PatchIndex| {
            let cp = catalog.get(p);
            Reverse((
                own_start[&p].0,
                cp.patch.reboot_required,
                cp.patch.id.clone(),
            ))
        };
        let mut ready: BinaryHeap<(ReadyKey, PatchIndex)> = pending
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(&p, _)| (key(p), p))
            .collect();
        let mut order = Vec::with_capacity(planned.len());
        while let Some((_, p)) = ready.pop() {
            order.push(p);
            for &q in dependents.get(&p).map(Vec::as_slice).unwrap_or(&[]) {
                if let Some(n) = pending.get_mut(&q) {
                    *n -= 1;
                    if *n == 0 {
                        ready.push((key(q), q));
                    }
                }
            }
        }

        // 5. Times and reboots.
        let ring = &self.policy.rings[r];
        let window = ring
            .window
            .as_ref()
            .and_then(|w| self.policy.windows.get(w));
        let mut steps: Vec<Step> = Vec::with_capacity(order.len());
        let mut previous = self.at;
        let mut cache: HashMap<(i64, bool), (Timestamp, Vec<Delay>)> = HashMap::new();
        let mut pending_reboot: BTreeSet<PatchIndex> = BTreeSet::new();
        for p in order {
            let cp = catalog.get(p);
            let expedited = self.is_expedited(p);
            let (own, deferred_until) = own_start[&p];
            let t0 = own.max(previous);
            let skip_window =
                expedited && self.policy.expedite.as_ref().is_some_and(|e| e.skip_window);
            let (start, delays) = cache
                .entry((t0.as_second(), skip_window))
                .or_insert_with(|| {
                    schedule::earliest(
                        t0,
                        &d.timezone,
                        if skip_window { None } else { window },
                        &self.policy.freezes,
                    )
                })
                .clone();
            if cp
                .prerequisites
                .iter()
                .any(|pre| pending_reboot.contains(&resolve(*pre)))
                && let Some(last) = steps.last_mut()
            {
                last.reboot_after = true;
                pending_reboot.clear();
            }
            if cp.patch.reboot_required {
                pending_reboot.insert(p);
            }
            previous = start;
            steps.push(Step {
                patch: p,
                earliest_start: start,
                expedited,
                reboot_after: false,
                deferred_until,
                frozen_by: delays.iter().find_map(|d| match d {
                    Delay::Freeze(i) => Some(*i),
                    Delay::Window => None,
                }),
                waited_for_window: delays.contains(&Delay::Window),
            });
        }
        if !pending_reboot.is_empty()
            && let Some(last) = steps.last_mut()
        {
            last.reboot_after = true;
        }
        (steps, skips)
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
