//! `ringleader plan`: the deterministic answer to "which device gets which patch, in
//! which ring, in which order, no earlier than when, and why (or why not)".

use anyhow::{Context, bail};
use clap::Args;
use jiff::Timestamp;
use ringleader_api::exit::ExitStatus;
use ringleader_api::plan::{Decision, ExplainV1, ExplainedV1, PlanV1};
use ringleader_diag::escape;
use ringleader_planner::catalog::Catalog;
use ringleader_planner::inventory::{Inventory, InventoryError};
use ringleader_planner::plan::Planner;
use ringleader_planner::policy::{Policy, PolicyError};
use ringleader_runtime::{OperatorConfig, Runtime, RuntimeConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Plan a rollout without touching any device.
///
/// Reads the policy and the inventory, asks the patch-source plugins for their patches
/// (by default the built-in simulated vendor), and prints, per ring, the devices, the
/// patches, the batches and the earliest start, given soaks, windows, freezes,
/// deferrals and expedite rules. The same inputs (and `--at`) always give byte-identical
/// output.
///
/// Exit status: 0 when planned; 8 when planned, but some input was refused (documents a
/// patch source refused, patches the catalog refused: each named on stderr); 1 when an
/// input is invalid (every problem is listed) or `--explain` names a device that is
/// not in the inventory.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The rollout policy (see docs/policies.md).
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// The inventory, TOML or JSON (see docs/inventory.md).
    #[arg(long, value_name = "FILE")]
    inventory: PathBuf,
    /// A patch-source plugin: a bundled plugin's name (`ringleader plugin list`), or a
    /// manifest's path (anything with a `/` or ending in `.toml` or `.wasm`); repeat
    /// for several. Default: the built-in simulated vendor.
    #[arg(long = "source", value_name = "PLUGIN")]
    sources: Vec<PathBuf>,
    /// Operator config with `[plugins.NAME]` capability grants for the sources.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Plan as of this time (RFC 3339, e.g. 2026-12-01T00:00:00Z). Default: now.
    #[arg(long, value_name = "TIME", value_parser = schedulable_time)]
    at: Option<Timestamp>,
    /// Print one JSON object (schema `ringleader.plan/v1`, or `ringleader.explain/v1`
    /// with --explain) instead of text.
    #[arg(long)]
    json: bool,
    /// Explain every patch for one device: planned (when, in which ring and order) or
    /// why not.
    #[arg(long, value_name = "DEVICE_ID")]
    explain: Option<String>,
}

/// A time given on the command line (RFC 3339) that a rollout can be scheduled from:
/// before 9000-01-01 (`docs/policies.md`, "Limits").
pub(crate) fn schedulable_time(text: &str) -> Result<Timestamp, String> {
    let t: Timestamp = text.parse().map_err(|e| format!("{e}"))?;
    ringleader_planner::schedule::check_time(t)
}

pub async fn run(args: PlanArgs) -> ExitCode {
    match plan(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(ExitStatus::Failure)
        }
    }
}

async fn plan(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let policy = match Policy::load(&args.policy) {
        Ok(p) => p,
        Err(PolicyError::Invalid(d)) => bail!("the policy is not valid:\n{d}"),
        Err(e) => return Err(e.into()),
    };
    let inventory = match Inventory::load(&args.inventory) {
        Ok(i) => i,
        Err(InventoryError::Invalid(d)) => bail!("the inventory is not valid:\n{d}"),
        Err(e) => return Err(e.into()),
    };
    let (catalog, refused_documents) =
        discover(&args.sources, args.config.as_deref(), &inventory).await?;
    warn_refused(&catalog);
    if refused_documents > 0 {
        eprintln!(
            "warning: the patch sources refused {} (each in a warning of its source above); the plan covers the rest",
            crate::count(refused_documents, "document", "documents")
        );
    }
    // Refused input shows in the exit status, once the plan of the rest is printed.
    let planned = if refused_documents > 0 || !catalog.refused.is_empty() {
        ExitCode::from(ExitStatus::RefusedInput)
    } else {
        ExitCode::SUCCESS
    };
    let at = args.at.unwrap_or_else(Timestamp::now);
    let planner = Planner {
        policy: &policy,
        inventory: &inventory,
        catalog: &catalog,
        at,
    };
    if let Some(device) = &args.explain {
        let Some(explanation) = planner.explain(device) else {
            bail!(
                "device `{device}` is not in the inventory {}",
                args.inventory.display()
            );
        };
        let d = inventory
            .devices
            .iter()
            .find(|d| &d.id == device)
            .context("device vanished")?;
        let view = ringleader_daemon::plan_view::explain(&planner, d, explanation);
        if args.json {
            println!("{}", serde_json::to_string_pretty(&view)?);
        } else {
            print_explain(&view);
        }
        return Ok(planned);
    }
    let plan = planner.plan();
    let mut view = ringleader_daemon::plan_view::plan(&plan, &planner);
    view.totals.refused_documents = refused_documents;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print_plan(&view, policy.expedite.as_ref().map(|e| e.soak_factor));
    }
    Ok(planned)
}

/// A warning on stderr for each patch the catalog refused (`plugin run ... discover`
/// prints the same).
pub(crate) fn warn_refused(catalog: &Catalog) {
    for refused in &catalog.refused {
        eprintln!(
            "warning: patch {} from `{}` is refused: {}",
            escape(&refused.patch_id),
            refused.source,
            escape(&refused.reason)
        );
    }
}

/// Runs every source's `discover` for the inventory and builds the catalog; with it,
/// how many documents the sources refused (the warnings they logged).
async fn discover(
    sources: &[PathBuf],
    config: Option<&Path>,
    inventory: &Inventory,
) -> anyhow::Result<(Catalog, usize)> {
    let chosen = ringleader_daemon::plugins::Chosen::new(sources, &[])?;
    let config = OperatorConfig::load(config)?;
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: ringleader_runtime::cache::ComponentCache::default_dir(),
        grants: config.grants,
        ..RuntimeConfig::default()
    })?;
    let plugins = chosen.load_sources(&runtime).await?;
    let devices: Vec<_> = inventory.devices.iter().map(|d| d.to_plugin()).collect();
    let reported = ringleader_engine::spec::discover_all(&plugins, &devices).await?;
    let refused: u64 = plugins.iter().map(|p| p.warnings_logged()).sum();
    Ok((
        Catalog::build(reported)?,
        usize::try_from(refused).unwrap_or(usize::MAX),
    ))
}

/// The plan as text; `soak_factor` is the policy's expedite factor, if it has one.
fn print_plan(p: &PlanV1, soak_factor: Option<f64>) {
    use crate::count;
    println!(
        "plan of policy `{}` as of {}: {}, {}",
        p.policy,
        p.planned_at,
        count(p.totals.devices, "device", "devices"),
        count(p.rings.len(), "ring", "rings")
    );
    for ring in &p.rings {
        let mut patches: BTreeMap<&str, usize> = BTreeMap::new();
        for d in &ring.devices {
            for s in &d.patches {
                *patches.entry(s.id.as_str()).or_default() += 1;
            }
        }
        // The first install of expedited patches and of the others: an expedited patch
        // waits for scaled soaks only, so it may start before the ring does.
        let first = |expedited: bool| {
            ring.devices
                .iter()
                .flat_map(|d| d.patches.iter().find(|s| s.expedited == expedited))
                .map(|s| s.earliest_start)
                .min()
        };
        let (first_expedited, first_other) = (first(true), first(false));
        let early = first_expedited.filter(|t| *t < ring.earliest_start);
        let first = if early.is_some() {
            first_other
        } else {
            first_expedited.into_iter().chain(first_other).min()
        };
        println!();
        println!(
            "ring {}: {} in {} {:?}{}",
            ring.name,
            count(ring.devices.len(), "device", "devices"),
            count(ring.batch_sizes.len(), "batch", "batches"),
            ring.batch_sizes,
            if ring.approval {
                ", needs approval"
            } else {
                ""
            }
        );
        if let Some(early) = early {
            println!(
                "  expedited patches from {early}, before the ring's start: the soaks they wait for are scaled by the policy's expedite soak_factor {}",
                soak_factor.unwrap_or(1.0)
            );
        }
        println!(
            "  starts no earlier than {}{}; soak afterwards {}",
            ring.earliest_start,
            first.map_or(String::new(), |f| format!(" (first install {f})")),
            humantime::format_duration(std::time::Duration::from_secs(ring.soak_seconds))
        );
        if patches.is_empty() {
            println!("  patches: none");
        } else {
            let list: Vec<String> = patches.iter().map(|(id, n)| format!("{id} x{n}")).collect();
            println!("  patches: {}", list.join(", "));
        }
    }
    println!();
    println!(
        "totals: {} of {} in rings, {} planned, {} skipped, {} refused, {} refused",
        p.totals.devices_in_rings,
        count(p.totals.devices, "device", "devices"),
        count(p.totals.device_patches, "device-patch", "device-patches"),
        p.totals.skipped,
        count(p.totals.refused_patches, "patch", "patches"),
        count(
            p.totals.refused_documents,
            "source document",
            "source documents"
        )
    );
    if !p.unassigned.is_empty() {
        println!("not in any ring: {}", p.unassigned.join(", "));
    }
}

fn print_explain(e: &ExplainV1) {
    println!(
        "device {} (site {}, time zone {}) as of {}",
        e.device, e.site, e.timezone, e.planned_at
    );
    match &e.ring {
        Some(r) => println!("ring: {r}"),
        None => println!("ring: none (no ring of the policy selects this device)"),
    }
    for &kind in Decision::ALL {
        let entries: Vec<&ExplainedV1> = e.patches.iter().filter(|p| p.decision == kind).collect();
        if entries.is_empty() {
            continue;
        }
        println!("{kind}:");
        let width = entries.iter().map(|p| p.patch.len()).max().unwrap_or(0);
        for p in entries {
            match &p.step {
                Some(s) => println!(
                    "  {}. {:width$}  {} {} -> {}{}; {}",
                    p.order.unwrap_or(0),
                    p.patch,
                    s.component,
                    s.from.as_deref().unwrap_or("?"),
                    s.to,
                    if s.reboot_after { ", then reboot" } else { "" },
                    p.detail
                ),
                None => println!("  {:width$}  {}", p.patch, p.detail),
            }
        }
    }
}
