//! Building a rollout's [`RolloutSpec`] from a plan ([`from_plan`], pure); with the
//! `runtime` feature, also from an inventory and a policy, asking the patch-source
//! plugins for their patches first (`prepare`, `join`).

use crate::core::{DeviceJob, RingSpec, RolloutSpec, StepSpec};
use ringleader_planner::catalog::Catalog;
use ringleader_planner::inventory::Inventory;
use ringleader_planner::plan::Plan;
use ringleader_planner::policy::Policy;

#[cfg(feature = "runtime")]
mod discover;
#[cfg(feature = "runtime")]
pub use discover::{
    DISCOVER_CHUNK, PrepareError, Prepared, discover_all, discover_in_chunks, join, prepare,
};

/// The spec the core runs: the plan's rings, devices and ordered steps, with the
/// policy's gates. Start times are not carried over: the core recomputes them as rings
/// actually finish (deferrals are kept as `not_before`).
pub fn from_plan(
    plan: &Plan,
    policy: &Policy,
    inventory: &Inventory,
    catalog: &Catalog,
) -> RolloutSpec {
    let rings = policy
        .rings
        .iter()
        .zip(&plan.rings)
        .map(|(ring, planned)| RingSpec {
            name: ring.name.clone(),
            batches: planned.batch_sizes.len().max(1) as u32,
            max_parallel: ring.max_parallel,
            soak: ring.soak,
            success_threshold: ring.success_threshold,
            max_failures: ring.max_failures,
            unresponsive_after: ring.unresponsive_after,
            approval: ring.approval,
            auto_approve: ring.auto_approve,
            window: ring
                .window
                .as_ref()
                .and_then(|w| policy.windows.get(w))
                .cloned(),
            reboot: ring.reboot,
            reboot_window: ring
                .reboot_window
                .as_ref()
                .and_then(|w| policy.windows.get(w))
                .cloned(),
            reboot_timeout: ring.reboot_timeout,
            devices: planned
                .devices
                .iter()
                .map(|dp| {
                    let device = &inventory.devices[dp.device as usize];
                    DeviceJob {
                        device: device.id.clone(),
                        timezone: device.timezone.clone(),
                        batch: dp.batch,
                        steps: dp
                            .steps
                            .iter()
                            .map(|s| StepSpec {
                                patch: catalog.get(s.patch).patch.id.clone(),
                                not_before: s.deferred_until(),
                                expedited: s.expedited,
                                reboot_required: catalog.get(s.patch).patch.reboot_required,
                                reboot_after: s.reboot_after,
                            })
                            .collect(),
                    }
                })
                .collect(),
        })
        .collect();
    RolloutSpec {
        rings,
        freezes: policy.freezes.clone(),
        on_halt: policy.on_halt,
        failed_devices: policy.failed_devices,
        expedite_soak_factor: policy.expedite.as_ref().map_or(1.0, |e| e.soak_factor),
        expedite_skips_window: policy.expedite.as_ref().is_some_and(|e| e.skip_window),
    }
}
