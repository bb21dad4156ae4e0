//! The planner's answers as scripts read them: `ringleader.plan/v1` (`plan --json`) and
//! `ringleader.explain/v1` (`plan --explain --json`, and the daemon's
//! `GET /v1/rollouts/{id}/explain/{device}`). The types are in `ringleader_api::plan`;
//! this is where they are built from the planner's.

use ringleader_api::Schema;
use ringleader_api::plan::{
    Decision, DeviceV1, ExplainReason, ExplainV1, ExplainedV1, PlanV1, RingV1, SkipReason, SkipV1,
    StepV1, TotalsV1,
};
use ringleader_planner::inventory::Device;
use ringleader_planner::plan::{self, Explanation, Plan, Planner, Step};
use ringleader_planner::policy::Reboot;

/// The planner's reason for not planning a patch, as JSON names it.
fn skip_reason(reason: &plan::SkipReason) -> SkipReason {
    match reason {
        plan::SkipReason::ComponentAbsent => SkipReason::ComponentAbsent,
        plan::SkipReason::AlreadyAtOrAbove => SkipReason::AlreadyAtOrAbove,
        plan::SkipReason::NotApplicable => SkipReason::NotApplicable,
        plan::SkipReason::NotApproved => SkipReason::NotApproved,
        plan::SkipReason::Superseded { .. } => SkipReason::Superseded,
        plan::SkipReason::MissingPrerequisite { .. } => SkipReason::MissingPrerequisite,
        plan::SkipReason::PrerequisiteNotPlanned { .. } => SkipReason::PrerequisiteNotPlanned,
        plan::SkipReason::NoRing => SkipReason::NoRing,
        plan::SkipReason::SchemeMismatch => SkipReason::SchemeMismatch,
        plan::SkipReason::UnreadableVersion { .. } => SkipReason::UnreadableVersion,
    }
}

/// One planned step of `device`.
pub fn step(planner: &Planner<'_>, device: &Device, step: &Step) -> StepV1 {
    let cp = planner.catalog.get(step.patch);
    StepV1 {
        id: cp.patch.id.clone(),
        component: cp.patch.component.clone(),
        from: device
            .components
            .get(&cp.patch.component)
            .map(|v| v.to_string()),
        to: cp.patch.fixed_version.clone(),
        scheme: plan::scheme_on(device, cp),
        earliest_start: step.earliest_start(),
        reboot_after: step.reboot_after,
        expedited: step.expedited,
        deferred_until: step.deferred_until(),
        frozen: step.frozen_by().map(|i| {
            let f = &planner.policy.freezes[i];
            if f.reason.is_empty() {
                format!("{} to {}", f.from, f.to)
            } else {
                format!("{} to {} ({})", f.from, f.to, f.reason)
            }
        }),
        waited_for_window: step.waited_for_window,
    }
}

/// The plan; its `refused_documents` total is the caller's to fill in (the planner does
/// not see the sources' refusals).
pub fn plan(plan: &Plan, planner: &Planner<'_>) -> PlanV1 {
    let devices = &planner.inventory.devices;
    let rings: Vec<RingV1> = plan
        .rings
        .iter()
        .map(|ring| RingV1 {
            name: ring.name.clone(),
            earliest_start: ring.earliest_start,
            soak_seconds: ring.soak.as_secs(),
            approval: ring.approval,
            batch_sizes: ring.batch_sizes.clone(),
            devices: ring
                .devices
                .iter()
                .map(|dp| {
                    let d = &devices[dp.device as usize];
                    DeviceV1 {
                        id: d.id.clone(),
                        site: d.site.clone(),
                        timezone: d.timezone_name.clone(),
                        batch: dp.batch,
                        patches: dp.steps.iter().map(|s| step(planner, d, s)).collect(),
                    }
                })
                .collect(),
        })
        .collect();
    let skipped: Vec<SkipV1> = plan
        .skipped
        .iter()
        .map(|s| SkipV1 {
            device: devices[s.device as usize].id.clone(),
            patch: planner.catalog.get(s.patch).patch.id.clone(),
            reason: skip_reason(&s.reason),
            detail: s.reason.describe(
                planner.policy,
                planner.catalog,
                &devices[s.device as usize],
                s.patch,
            ),
        })
        .collect();
    let device_patches = rings
        .iter()
        .flat_map(|r| &r.devices)
        .map(|d| d.patches.len())
        .sum();
    PlanV1 {
        schema: Schema::new(),
        policy: plan.policy.clone(),
        planned_at: plan.planned_at,
        totals: TotalsV1 {
            devices: devices.len(),
            devices_in_rings: devices.len() - plan.unassigned.len(),
            device_patches,
            skipped: skipped.len(),
            refused_patches: planner.catalog.refused.len(),
            refused_documents: 0,
        },
        rings,
        unassigned: plan
            .unassigned
            .iter()
            .map(|&i| devices[i as usize].id.clone())
            .collect(),
        skipped,
    }
}

/// Every patch for `device`: planned (when, in which ring and order) or why not.
pub fn explain(planner: &Planner<'_>, device: &Device, explanation: Explanation) -> ExplainV1 {
    let patches = explanation
        .decisions
        .into_iter()
        .map(|(patch, decision)| match decision {
            plan::Decision::Planned {
                ring,
                batch,
                order,
                step: planned,
            } => {
                let view = step(planner, device, &planned);
                let mut why = vec![format!(
                    "planned in ring {ring}, batch {}, step {order}, no earlier than {}",
                    batch + 1,
                    view.earliest_start
                )];
                why.extend(plan::comparison(device, planner.catalog.get(planned.patch)));
                if let Some(until) = view.deferred_until {
                    why.push(format!("deferred until {until}"));
                }
                if let Some(f) = &view.frozen {
                    why.push(format!("after the freeze {f}"));
                }
                if view.waited_for_window {
                    why.push("at the next maintenance window".into());
                }
                if view.expedited {
                    why.push("expedited".into());
                }
                let rule = planner
                    .policy
                    .rings
                    .iter()
                    .find(|r| r.name == ring)
                    .map(|r| r.reboot);
                if planner.catalog.get(planned.patch).patch.reboot_required {
                    why.push(match rule {
                        Some(Reboot::Never) => "needs a restart: left installed, reboot pending (the ring's reboot = \"never\")".into(),
                        _ if view.reboot_after => "needs a restart: the device reboots after this step".into(),
                        _ => "needs a restart: the device reboots once, after its last step".into(),
                    });
                } else if view.reboot_after {
                    why.push("then the device reboots".into());
                }
                ExplainedV1 {
                    patch,
                    decision: Decision::Planned,
                    reason: ExplainReason::Planned,
                    detail: why.join("; "),
                    ring: Some(ring),
                    batch: Some(batch),
                    order: Some(order),
                    step: Some(view),
                }
            }
            plan::Decision::Skipped {
                patch: index,
                reason,
            } => ExplainedV1 {
                patch,
                decision: Decision::Skipped,
                reason: ExplainReason::Skipped(skip_reason(&reason)),
                detail: reason.describe(planner.policy, planner.catalog, device, index),
                ring: None,
                batch: None,
                order: None,
                step: None,
            },
            plan::Decision::Refused { reason } => ExplainedV1 {
                patch,
                decision: Decision::Refused,
                reason: ExplainReason::Refused,
                detail: reason,
                ring: None,
                batch: None,
                order: None,
                step: None,
            },
        })
        .collect();
    ExplainV1 {
        schema: Schema::new(),
        device: device.id.clone(),
        site: device.site.clone(),
        timezone: device.timezone_name.clone(),
        ring: explanation.ring,
        planned_at: planner.at,
        patches,
    }
}
