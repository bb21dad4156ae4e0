//! Shared generators for the benchmarks.

use ringleader_planner::catalog::Catalog;
use ringleader_planner::inventory::{Device, Installed, Inventory, Transport};
use ringleader_planner::policy::Policy;
use ringleader_planner::small_map::SmallMap;
use ringleader_planner::version::{AnyVersion, Scheme, Version};
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

/// How the generated world writes its versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versions {
    /// Vendor strings (`2.13.4`), read by the `vendor` rule the inventory defaults to.
    Vendor,
    /// Debian versions, declared `deb` by the inventory and the patches: an epoch on
    /// every other component (`1:2.13.4-1+deb12u2`), security updates as `+deb12uN`
    /// and backports as `~deb12uN`, compared as dpkg does.
    Deb,
}

impl Versions {
    /// An installed version of component `c` at release `x.y`.
    fn installed(self, c: usize, major: usize, x: u64, y: u64, update: u64) -> Installed {
        match self {
            Versions::Vendor => Version::parse(&format!("{major}.{x}.{y}")).unwrap().into(),
            Versions::Deb => Installed::declared(
                AnyVersion::parse(
                    Scheme::Deb,
                    &format!("{}{major}.{x}.{y}-1+deb12u{update}", epoch(c)),
                )
                .unwrap(),
            ),
        }
    }

    /// The fixed version of the `n`th patch of component `c`, and its `applies-to`.
    fn fixed(self, c: usize, major: usize, x: usize, y: usize, n: usize) -> (String, String) {
        match self {
            Versions::Vendor => (format!("{major}.{x}.{y}"), format!(">={major}.0.0")),
            Versions::Deb => (
                if n.is_multiple_of(2) {
                    format!("{}{major}.{x}.{y}-1~deb12u{}", epoch(c), n % 3)
                } else {
                    format!("{}{major}.{x}.{y}-1+deb12u{}", epoch(c), n % 3)
                },
                format!(">= {}{major}.0.0", epoch(c)),
            ),
        }
    }

    fn scheme(self) -> Option<Scheme> {
        match self {
            Versions::Vendor => None,
            Versions::Deb => Some(Scheme::Deb),
        }
    }
}

/// An epoch on every other component.
fn epoch(c: usize) -> &'static str {
    if c % 2 == 1 { "1:" } else { "" }
}

/// `devices` devices with 8 of the 50 components each, at 8 sites in 4 time zones.
pub fn inventory(devices: usize, seed: u64) -> Inventory {
    inventory_of(devices, seed, Versions::Vendor)
}

/// [`inventory`] with its versions written as `versions` says.
pub fn inventory_of(devices: usize, seed: u64, versions: Versions) -> Inventory {
    let mut rng = Rng::new(seed);
    let devices = (0..devices)
        .map(|i| {
            let mut components = SmallMap::new();
            while components.len() < 8 {
                let c = rng.below(COMPONENTS as u64);
                let (x, y) = (rng.below(20), rng.below(10));
                let installed =
                    versions.installed(c as usize, 1 + c as usize % 3, x, y, rng.below(4));
                components.insert(format!("comp-{c}"), installed);
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
    patches_of(patches, seed, Versions::Vendor)
}

/// [`patches`] with their versions written as `versions` says.
pub fn patches_of(patches: usize, seed: u64, versions: Versions) -> Vec<(Patch, String)> {
    let mut rng = Rng::new(seed);
    let per_component = patches.div_ceil(COMPONENTS);
    let mut out = Vec::with_capacity(patches);
    for i in 0..patches {
        let c = i % COMPONENTS;
        let n = i / COMPONENTS;
        let major = 1 + c % 3;
        let (fixed, applies_to) =
            versions.fixed(c, major, n * 20 / per_component.max(1), 5 + n % 5, n);
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
                applies_to,
                scheme: versions.scheme(),
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
    world_of(devices, patch_count, Versions::Vendor)
}

/// [`world`] with its versions written as `versions` says.
pub fn world_of(
    devices: usize,
    patch_count: usize,
    versions: Versions,
) -> (Policy, Inventory, Catalog) {
    let catalog = Catalog::build(patches_of(patch_count, 7, versions)).unwrap();
    assert!(catalog.refused.is_empty(), "{:?}", catalog.refused);
    (policy(), inventory_of(devices, 11, versions), catalog)
}
