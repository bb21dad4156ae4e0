//! Planner benchmarks: planning generated fleets (100,000 devices x 1,000 patches is the
//! target: < 1 s). Peak memory of the same run: `cargo run --release -p
//! ringleader-benches --bin plan-scale -- 100000 1000`.
//!
//! Run: `cargo bench -p ringleader-benches --bench planner`

use criterion::{Criterion, criterion_group, criterion_main};
use ringleader_benches::world;
use ringleader_planner::plan::Planner;
use std::time::Duration;

fn planning(c: &mut Criterion) {
    let at = "2026-11-30T00:00:00Z".parse().unwrap();
    let mut group = c.benchmark_group("plan");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    for (devices, patches) in [(10_000, 1_000), (100_000, 1_000)] {
        let (policy, inventory, catalog) = world(devices, patches);
        let planner = Planner {
            policy: &policy,
            inventory: &inventory,
            catalog: &catalog,
            at,
        };
        group.bench_function(format!("{devices}_devices_x_{patches}_patches"), |b| {
            b.iter(|| planner.plan())
        });
    }
    group.finish();
}

criterion_group!(benches, planning);
criterion_main!(benches);
