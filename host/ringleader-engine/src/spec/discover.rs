//! A rollout's spec from an inventory and a policy, with the patches asked of the
//! patch-source plugins (the `runtime` feature).

use super::from_plan;
use crate::core::{DeviceJob, RolloutSpec};
use crate::executor::{Joining, Targets};
use ringleader_planner::catalog::Catalog;
use ringleader_planner::inventory::Inventory;
use ringleader_planner::plan::Planner;
use ringleader_planner::policy::Policy;

/// Devices handed to a patch source per `discover` call: bounds the plugin's memory
/// (and the host's copy of the call) however large the fleet; a vendor catalog does not
/// grow with the fleet, so more calls cost little.
pub const DISCOVER_CHUNK: usize = 5_000;

/// Asks `source` for its patches, [`DISCOVER_CHUNK`] devices at a time; the same patch
/// reported for several chunks is kept once (the first time). A different patch under
/// an id already reported is kept too, so that [`Catalog::build`] refuses it with a
/// warning rather than it vanishing here.
pub async fn discover_in_chunks(
    source: &ringleader_runtime::Plugin,
    devices: &[ringleader_types::Device],
) -> Result<Vec<ringleader_types::Patch>, ringleader_runtime::CallError> {
    let mut first: std::collections::HashMap<String, (usize, usize)> =
        std::collections::HashMap::new();
    let mut patches: Vec<ringleader_types::Patch> = Vec::new();
    for (n, chunk) in devices.chunks(DISCOVER_CHUNK).enumerate() {
        for patch in source.discover(chunk).await? {
            match first.get(&patch.id) {
                // Reported again for another chunk of devices: the same patch.
                Some(&(i, chunk_of)) if chunk_of != n && patches[i] == patch => {}
                Some(_) => patches.push(patch),
                None => {
                    first.insert(patch.id.clone(), (patches.len(), n));
                    patches.push(patch);
                }
            }
        }
    }
    Ok(patches)
}

/// Every source's patches for `devices`, each with the name of the source that
/// reported it (what [`Catalog::build`] takes).
pub async fn discover_all(
    sources: &[ringleader_runtime::Plugin],
    devices: &[ringleader_types::Device],
) -> Result<Vec<(ringleader_types::Patch, String)>, ringleader_runtime::CallError> {
    let mut reported = Vec::new();
    for source in sources {
        let patches = discover_in_chunks(source, devices).await?;
        reported.extend(patches.into_iter().map(|p| (p, source.name().to_string())));
    }
    Ok(reported)
}

/// What went wrong preparing a rollout.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Discover(#[from] ringleader_runtime::CallError),
    #[error(transparent)]
    Catalog(#[from] ringleader_planner::catalog::CycleError),
}

/// A rollout ready to run: the core's spec and what the executor needs to call plugins.
#[derive(Debug)]
pub struct Prepared {
    pub spec: RolloutSpec,
    pub targets: Targets,
    /// The patches as planned (for explaining the plan later).
    pub catalog: Catalog,
}

/// Asks every patch source for its patches for `inventory`, plans with `policy` as of
/// `at`, and returns the rollout's spec and targets.
pub async fn prepare(
    policy: &Policy,
    inventory: &Inventory,
    sources: &[ringleader_runtime::Plugin],
    at: jiff::Timestamp,
    only: Option<&std::collections::BTreeSet<String>>,
) -> Result<Prepared, PrepareError> {
    let devices: Vec<_> = inventory.devices.iter().map(|d| d.to_plugin()).collect();
    plan_for(policy, inventory, devices, sources, at, only).await
}

/// Asks `sources` for the patches of `devices` (some or all of `inventory`), and plans
/// the whole inventory with them: the spec, what plugins need to reach `devices`, and
/// the catalog.
async fn plan_for(
    policy: &Policy,
    inventory: &Inventory,
    devices: Vec<ringleader_types::Device>,
    sources: &[ringleader_runtime::Plugin],
    at: jiff::Timestamp,
    only: Option<&std::collections::BTreeSet<String>>,
) -> Result<Prepared, PrepareError> {
    let mut reported = discover_all(sources, &devices).await?;
    if let Some(only) = only {
        reported.retain(|(patch, _)| only.contains(&patch.id));
    }
    let targets = Targets {
        devices: devices.into_iter().map(|d| (d.id.clone(), d)).collect(),
        patches: reported
            .iter()
            .map(|(p, _)| (p.id.clone(), p.clone()))
            .collect(),
    };
    let catalog = Catalog::build(reported)?;
    let plan = Planner {
        policy,
        inventory,
        catalog: &catalog,
        at,
    }
    .plan();
    Ok(Prepared {
        spec: from_plan(&plan, policy, inventory, &catalog),
        targets,
        catalog,
    })
}

/// Devices of `inventory` named in `joining`, placed in rings by the policy's rules as
/// of `at`, with their patches asked of `sources`: what the executor needs to add them
/// to a running rollout ([`crate::executor::Command::Join`]).
///
/// Rings are assigned over the whole inventory, old devices and new, exactly as a plan
/// would, so that a percentage stays a percentage of the fleet; only the new devices'
/// jobs are kept. Where they go from there (their ring may be done already) is the
/// core's rule, documented in `docs/policies.md`. `only`: the rollout's patches, when
/// it rolls out a selection ([`prepare`]).
pub async fn join(
    policy: &Policy,
    inventory: &Inventory,
    joining: &[&str],
    sources: &[ringleader_runtime::Plugin],
    at: jiff::Timestamp,
    only: Option<&std::collections::BTreeSet<String>>,
) -> Result<Joining, PrepareError> {
    let wanted: std::collections::HashSet<&str> = joining.iter().copied().collect();
    let devices: Vec<_> = inventory
        .devices
        .iter()
        .filter(|d| wanted.contains(d.id.as_str()))
        .map(|d| d.to_plugin())
        .collect();
    let Prepared { spec, targets, .. } =
        plan_for(policy, inventory, devices, sources, at, only).await?;
    let rings = spec
        .rings
        .into_iter()
        .enumerate()
        .map(|(r, ring)| {
            let jobs: Vec<DeviceJob> = ring
                .devices
                .into_iter()
                .filter(|job| wanted.contains(job.device.as_str()))
                .collect();
            (r as u16, jobs)
        })
        .filter(|(_, jobs)| !jobs.is_empty())
        .collect();
    Ok(Joining { rings, targets })
}
