//! Planner benchmarks: planning generated fleets (100,000 devices x 1,000 patches is the
//! target: < 1 s). Peak memory of the same run: `cargo run --release -p
//! ringleader-benches --bin plan-scale -- 100000 1000`.
//!
//! Each size is planned twice: with vendor versions (`2.13.4`, the inventory's
//! default rule) and with Debian versions declared `deb` (`1:2.13.4-1+deb12u2`,
//! `~deb12u1` backports: dpkg's order), to show what the scheme costs.
//!
//! Run: `cargo bench -p ringleader-benches --bench planner`

use criterion::{Criterion, criterion_group, criterion_main};
use ringleader_benches::{Versions, world_of};
use ringleader_planner::plan::Planner;
use std::time::Duration;

fn planning(c: &mut Criterion) {
    let at = "2026-11-30T00:00:00Z".parse().unwrap();
    let mut group = c.benchmark_group("plan");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    for (devices, patches) in [(10_000, 1_000), (100_000, 1_000)] {
        for (versions, suffix) in [(Versions::Vendor, ""), (Versions::Deb, "_deb")] {
            let (policy, inventory, catalog) = world_of(devices, patches, versions);
            let planner = Planner {
                policy: &policy,
                inventory: &inventory,
                catalog: &catalog,
                at,
            };
            group.bench_function(
                format!("{devices}_devices_x_{patches}_patches{suffix}"),
                |b| b.iter(|| planner.plan()),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, planning);
criterion_main!(benches);
