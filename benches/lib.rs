//! Shared generators for the benchmarks.

use ringleader_planner::catalog::Catalog;
use ringleader_planner::inventory::{Device, Inventory, Transport};
use ringleader_planner::policy::Policy;
use ringleader_planner::small_map::SmallMap;
use ringleader_planner::version::Version;
use ringleader_types::{Artifact, Patch, PatchKind, Severity};
use std::path::Path;

/// A small deterministic generator (xorshift64*): the same fleet every run.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Components in the generated world.
pub const COMPONENTS: usize = 50;
const ZONES: [&str; 4] = [
    "Europe/Amsterdam",
    "America/New_York",
    "Asia/Singapore",
    "UTC",
];
const SITES: [&str; 8] = ["ams", "fra", "lon", "nyc", "chi", "sfo", "sgp", "syd"];

/// `devices` devices with 8 of the 50 components each, at 8 sites in 4 time zones.
pub fn inventory(devices: usize, seed: u64) -> Inventory {
    let mut rng = Rng::new(seed);
    let devices = (0..devices)
        .map(|i| {
            let mut components = SmallMap::new();
            while components.len() < 8 {
                let c = rng.below(COMPONENTS as u64);
                let version = format!("{}.{}.{}", 1 + c % 3, rng.below(20), rng.below(10));
                components.insert(format!("comp-{c}"), Version::parse(&version).unwrap());
            }
            let site = SITES[i % SITES.len()];
            let zone = ZONES[i % ZONES.len()];
            Device {
                id: format!("dev-{i:06}"),
                hostname: format!("dev-{i:06}.example"),
                site: site.into(),
                timezone_name: zone.into(),
                timezone: jiff::tz::TimeZone::get(zone).unwrap(),
                tags: if i % 500 == 0 {
                    vec!["lab".into()]
                } else {
                    vec![]
                },
                facts: SmallMap::new(),
                transport: Transport::Sim,
                installer: None,
                components,
            }
        })
        .collect();
    Inventory { devices }
}

/// `patches` patches spread over the 50 components: per component a series of fixed
/// versions, each superseding the previous one; every fourth needs a patch of another
/// component first (an acyclic chain); some need reboots; a few are critical.
pub fn patches(patches: usize, seed: u64) -> Vec<(Patch, String)> {
    let mut rng = Rng::new(seed);
    let per_component = patches.div_ceil(COMPONENTS);
    let mut out = Vec::with_capacity(patches);
    for i in 0..patches {
        let c = i % COMPONENTS;
        let n = i / COMPONENTS;
        let major = 1 + c % 3;
        let fixed = format!("{major}.{}.{}", n * 20 / per_component.max(1), 5 + n % 5);
        let mut prerequisites = Vec::new();
        if n % 4 == 3 && c > 0 {
            prerequisites.push(format!("p-{}-{}", c - 1, n));
        }
        let supersedes = if n > 0 && n.is_multiple_of(2) {
            vec![format!("p-{c}-{}", n - 1)]
        } else {
            vec![]
        };
        out.push((
            Patch {
                id: format!("p-{c}-{n}"),
                vendor: format!("vendor-{}", c % 7),
                title: String::new(),
                component: format!("comp-{c}"),
                fixed_version: fixed,
                applies_to: format!(">={major}.0.0"),
                kind: if n % 10 == 9 {
                    PatchKind::Feature
                } else {
                    PatchKind::Security
                },
                severity: if rng.below(50) == 0 {
                    Severity::Critical
                } else {
                    Severity::Medium
                },
                cves: vec![],
                prerequisites,
                supersedes,
                reboot_required: rng.below(10) == 0,
                artifact: Artifact {
                    url: String::new(),
                    sha256: String::new(),
                    size: 0,
                },
                released: 1_790_000_000,
            },
            "generated".to_string(),
        ));
    }
    out
}

/// The monthly OS policy shipped in `rollout-policies/`.
pub fn policy() -> Policy {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rollout-policies/monthly-os.toml");
    Policy::load(&path).unwrap()
}

/// Inventory, catalog and policy for a planning run.
pub fn world(devices: usize, patch_count: usize) -> (Policy, Inventory, Catalog) {
    let catalog = Catalog::build(patches(patch_count, 7)).unwrap();
    (policy(), inventory(devices, 11), catalog)
}
