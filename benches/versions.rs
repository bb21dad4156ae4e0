//! Version benchmarks, per scheme: parsing a version, comparing two parsed versions,
//! and the planner's applicability check (is the installed version below the fixed
//! one and inside `applies-to`?) over a generated fleet, vendor versions (today's
//! planner) beside deb versions through `AnyVersion` (what the planner will use).
//!
//! Run: `cargo bench -p ringleader-benches --bench versions`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ringleader_benches::Rng;
use ringleader_version::{AnyRange, AnyVersion, Range, Scheme, Version};
use std::hint::black_box;
use std::time::Duration;

/// Versions as each ecosystem writes them.
fn samples(scheme: Scheme) -> &'static [&'static str] {
    match scheme {
        Scheme::Deb => &[
            "2.36-9+deb12u4",
            "2.36-9+deb12u7",
            "5.2.15-2+b6",
            "2:9.0.1378-2+deb12u1",
            "3.0.15-1~deb12u1",
            "3.0.15-1",
            "1:1.2.13.dfsg-1",
            "252.30-1~deb12u2",
            "1:2.38.1-5+deb12u3",
            "7.88.1-10+deb12u8",
            "6.1.0-28",
            "1:9.2p1-2+deb12u3",
        ],
        Scheme::Rpm => &[
            "1:0.17-64.el7",
            "2.28-225.el9_4",
            "5.14.0-427.13.1.el9_4",
            "1:3.0.7-27.el9",
            "8.32-35.el9",
            "1.0^git1-1.fc39",
            "2.5.2-0.1.rc1.el9",
            "3.0.7-28.el9_4",
            "2:8.2.2637-20.el9_1",
            "1.1.1k-12.el8_9",
            "4.18.0-513.24.1.el8_9",
            "0.9.7~rc1-1.fc40",
        ],
        Scheme::Apk => &[
            "1.2.3-r0",
            "3.0.15-r0",
            "1.36.1-r29",
            "2.9.14_p1-r1",
            "1.0_rc1-r2",
            "8.11.1-r0",
            "3.3.2-r1",
            "0.1_pre20240101-r0",
            "2.40.1-r0",
            "6.6.32-r0",
            "1.24.2b-r3",
            "3.20.3~abc123-r1",
        ],
        Scheme::Semver => &[
            "1.2.3",
            "1.2.3-rc.1",
            "2.0.0-alpha.1+build.5",
            "0.9.12",
            "10.4.0",
            "1.0.0-beta.11",
            "3.1.4",
            "1.75.0",
            "0.0.1",
            "2.1.0+20240101",
            "4.0.0-rc.2",
            "1.2.10",
        ],
        Scheme::Vendor => &[
            "2.19.1-a03",
            "7.10.30.00",
            "1.2",
            "2.21.0",
            "v3.1.4",
            "1.0.0-alpha.2",
            "10.0",
            "2.19.1",
            "4.2.0.1",
            "1.2.3+build.7",
            "0.99",
            "22.7.3",
        ],
    }
}

fn parse_and_compare(c: &mut Criterion) {
    let mut parse = c.benchmark_group("version/parse");
    for scheme in Scheme::ALL {
        let texts = samples(scheme);
        parse.throughput(Throughput::Elements(texts.len() as u64));
        parse.bench_function(BenchmarkId::from_parameter(scheme), |b| {
            b.iter(|| {
                for text in texts {
                    black_box(AnyVersion::parse(scheme, black_box(text)).unwrap());
                }
            })
        });
    }
    parse.finish();

    let mut compare = c.benchmark_group("version/compare");
    for scheme in Scheme::ALL {
        let versions: Vec<_> = samples(scheme)
            .iter()
            .map(|t| AnyVersion::parse(scheme, t).unwrap())
            .collect();
        compare.throughput(Throughput::Elements(
            (versions.len() * versions.len()) as u64,
        ));
        compare.bench_function(BenchmarkId::from_parameter(scheme), |b| {
            b.iter(|| {
                for a in &versions {
                    for v in &versions {
                        black_box(black_box(a).try_cmp(black_box(v)).unwrap());
                    }
                }
            })
        });
    }
    compare.finish();
}

const DEVICES: usize = 10_000;
const COMPONENTS_PER_DEVICE: usize = 8;
const COMPONENTS: usize = 50;
const PATCHES_PER_COMPONENT: usize = 20;

/// The planner's check for every (device, component, patch of that component), as
/// `plan.rs` makes it: `installed >= fixed`, else `applies_to.matches(installed)`.
fn applicability(c: &mut Criterion) {
    let mut group = c.benchmark_group("version/applicability");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    let checks = DEVICES * COMPONENTS_PER_DEVICE * PATCHES_PER_COMPONENT;
    group.throughput(Throughput::Elements(checks as u64));

    // Today: vendor versions, the planner's own types.
    let vendor = |i: usize, j: usize| format!("{}.{}.{}", 1 + i % 3, j, (i * 7 + j) % 10);
    let (installed, patches) = world(|i, j| Version::parse(&vendor(i, j)).unwrap());
    let patches: Vec<Vec<(Version, Range)>> = patches
        .into_iter()
        .map(|ps| {
            ps.into_iter()
                .map(|fixed| {
                    let range = Range::parse(&format!(">= 1.0, < {fixed}")).unwrap();
                    (fixed, range)
                })
                .collect()
        })
        .collect();
    group.bench_function(format!("vendor_{DEVICES}_devices"), |b| {
        b.iter(|| {
            let mut applies = 0usize;
            for device in &installed {
                for (component, v) in device {
                    for (fixed, range) in &patches[*component] {
                        if v < fixed && range.matches(v) {
                            applies += 1;
                        }
                    }
                }
            }
            black_box(applies)
        })
    });

    // Tomorrow: deb versions (epochs, revisions, `+debNNuN`, `~`), through AnyVersion.
    let deb = |i: usize, j: usize| {
        let epoch = if i.is_multiple_of(5) { "1:" } else { "" };
        let tail = match j % 3 {
            0 => format!("-{}+deb12u{}", 1 + i % 9, j),
            1 => format!("-{}~deb12u{}", 1 + i % 9, j),
            _ => format!("-{}", 1 + j),
        };
        format!("{epoch}{}.{}.{}{tail}", 1 + i % 3, j, (i * 7 + j) % 10)
    };
    let (installed, patches) = world(|i, j| AnyVersion::parse(Scheme::Deb, &deb(i, j)).unwrap());
    let patches: Vec<Vec<(AnyVersion, AnyRange)>> = patches
        .into_iter()
        .map(|ps| {
            ps.into_iter()
                .map(|fixed| {
                    let range =
                        AnyRange::parse(Scheme::Deb, &format!(">= 0.1, < {fixed}")).unwrap();
                    (fixed, range)
                })
                .collect()
        })
        .collect();
    group.bench_function(format!("deb_{DEVICES}_devices"), |b| {
        b.iter(|| {
            let mut applies = 0usize;
            for device in &installed {
                for (component, v) in device {
                    for (fixed, range) in &patches[*component] {
                        if v.try_cmp(fixed).unwrap().is_lt() && range.matches(v).unwrap() {
                            applies += 1;
                        }
                    }
                }
            }
            black_box(applies)
        })
    });
    group.finish();
}

/// Per device, (component, installed version); per component, its fixed versions.
type World<V> = (Vec<Vec<(usize, V)>>, Vec<Vec<V>>);

/// Devices with 8 of 50 components each at a version `make(component, k)`, and per
/// component 20 fixed versions `make(component, 0..20)`: like `ringleader_benches::world`.
fn world<V>(make: impl Fn(usize, usize) -> V) -> World<V> {
    let mut rng = Rng::new(13);
    let installed = (0..DEVICES)
        .map(|_| {
            (0..COMPONENTS_PER_DEVICE)
                .map(|_| {
                    let component = rng.below(COMPONENTS as u64) as usize;
                    let at = rng.below(PATCHES_PER_COMPONENT as u64) as usize;
                    (component, make(component, at))
                })
                .collect()
        })
        .collect();
    let patches = (0..COMPONENTS)
        .map(|component| {
            (0..PATCHES_PER_COMPONENT)
                .map(|k| make(component, k))
                .collect()
        })
        .collect();
    (installed, patches)
}

criterion_group!(benches, parse_and_compare, applicability);
criterion_main!(benches);
