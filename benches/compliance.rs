//! Compliance benchmarks: the planner's compliance of generated fleets (100,000
//! devices x 1,000 patches is the target: < 1 s), with vendor and with Debian versions
//! (the same worlds as the planner bench).
//!
//! Run: `cargo bench -p ringleader-benches --bench compliance`
//!
//! Measured 2026-12-03 on the 2-core build machine, idle: 100,000 x 1,000 in 482 ms
//! (vendor) and 486 ms (deb); 10,000 x 1,000 in 41 ms and 57 ms. Before each
//! component's patches were kept sorted by fixed version (the ladders of
//! `ringleader_planner::compliance`), it was 1.25 s and 1.20 s: every pair went through
//! the range check, now one binary search per device and component finds the patches
//! at or below the installed version, and only those above it are checked.

use criterion::{Criterion, criterion_group, criterion_main};
use ringleader_benches::{Versions, world_of};
use ringleader_planner::compliance::{Filter, Fleet};
use std::time::Duration;

fn compliance(c: &mut Criterion) {
    let at = 1_790_000_000 + 30 * 86_400;
    let filter = Filter::default();
    let mut group = c.benchmark_group("compliance");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    for (devices, patches) in [(10_000, 1_000), (100_000, 1_000)] {
        for (versions, suffix) in [(Versions::Vendor, ""), (Versions::Deb, "_deb")] {
            let (_, inventory, catalog) = world_of(devices, patches, versions);
            let fleet = Fleet {
                devices: &inventory.devices,
                catalog: &catalog,
                at,
                filter: &filter,
            };
            group.bench_function(
                format!("{devices}_devices_x_{patches}_patches{suffix}"),
                |b| b.iter(|| fleet.compute()),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, compliance);
criterion_main!(benches);
