//! Plans a generated fleet once and prints the time taken and the process's peak memory.
//! Usage: plan-scale [DEVICES] [PATCHES]   (defaults: 100000 1000)

use ringleader_benches::world;
use ringleader_planner::plan::Planner;
use std::time::Instant;

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let devices: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let patches: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000);
    let generate = Instant::now();
    let (policy, inventory, catalog) = world(devices, patches);
    let generated = generate.elapsed();
    let after_generate = peak_rss_kib().unwrap_or(0);
    let start = Instant::now();
    let plan = Planner {
        policy: &policy,
        inventory: &inventory,
        catalog: &catalog,
        at: "2026-11-30T00:00:00Z".parse().unwrap(),
    }
    .plan();
    let planned = start.elapsed();
    let steps: usize = plan
        .rings
        .iter()
        .flat_map(|r| &r.devices)
        .map(|d| d.steps.len())
        .sum();
    println!(
        "{devices} devices x {patches} patches: planned {steps} device-patches ({} skipped) in {:.3} s \
         (generating the inputs took {:.3} s); peak RSS {} MiB ({} MiB after generating inputs)",
        plan.skipped.len(),
        planned.as_secs_f64(),
        generated.as_secs_f64(),
        peak_rss_kib().unwrap_or(0) / 1024,
        after_generate / 1024
    );
}
