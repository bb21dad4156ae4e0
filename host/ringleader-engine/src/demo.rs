//! The simulated fleet of `ringleader demo`: servers and workstations at four sites in
//! four time zones, with per-model failure rates, a firmware patch that is bad on one
//! model, devices that never report back, and health that degrades after some installs.
//! Everything is keyed by the seed, device and patch.

use crate::executor::SimTiming;
use ringleader_planner::inventory::Installed;
use ringleader_planner::inventory::{Device, Inventory, Transport};
use ringleader_planner::small_map::SmallMap;
use ringleader_planner::version::Version;
use std::time::Duration;

/// How the simulated fleet behaves.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    pub devices: usize,
    pub seed: u64,
    /// Installs that fail, per mille (server models add their own).
    pub fail_permille: u64,
    /// Devices unhealthy after an install, per mille.
    pub unhealthy_permille: u64,
    /// Installs after which the device never reports, per mille.
    pub hang_permille: u64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            devices: 2_000,
            seed: 1,
            fail_permille: 2,
            unhealthy_permille: 1,
            hang_permille: 1,
        }
    }
}

const SITES: [(&str, &str); 4] = [
    ("ams", "Europe/Amsterdam"),
    ("nyc", "America/New_York"),
    ("sgp", "Asia/Singapore"),
    ("syd", "Australia/Sydney"),
];

fn mix(seed: u64, i: u64, salt: u64) -> u64 {
    let mut x =
        seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ salt.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 29)
}

/// The fleet's inventory.
pub fn inventory(config: &FleetConfig) -> Inventory {
    // One time zone value per site, shared by its devices.
    let zones: Vec<jiff::tz::TimeZone> = SITES
        .iter()
        .map(|(_, zone)| jiff::tz::TimeZone::get(zone).unwrap_or(jiff::tz::TimeZone::UTC))
        .collect();
    let devices = (0..config.devices)
        .map(|i| {
            let n = i as u64;
            let (site, zone) = SITES[i % SITES.len()];
            let server = mix(config.seed, n, 1) % 10 < 4;
            let mut components = SmallMap::new();
            let mut facts = SmallMap::new();
            let v = |s: &str| -> Installed {
                Version::parse(s)
                    .unwrap_or_else(|_| Version::parse("0").expect("0"))
                    .into()
            };
            let (id, model) = if server {
                let model = if mix(config.seed, n, 2).is_multiple_of(3) {
                    "r750"
                } else {
                    "r650"
                };
                components.insert(
                    "bios".into(),
                    v(["2.10.0", "2.14.2", "2.4.3"][(mix(config.seed, n, 3) % 3) as usize]),
                );
                components.insert(
                    "bmc-firmware".into(),
                    v(if mix(config.seed, n, 4).is_multiple_of(20) {
                        "6.10.80.00"
                    } else {
                        "7.00.00.00"
                    }),
                );
                components.insert("nic-firmware".into(), v("22.27.6"));
                components.insert("linux".into(), v("6.1.99"));
                (format!("srv-{site}-{i:05}"), model)
            } else {
                components.insert(
                    "openssl".into(),
                    v(["3.0.11", "3.0.13", "3.0.15"][(mix(config.seed, n, 5) % 3) as usize]),
                );
                components.insert("linux".into(), v("6.1.112"));
                (format!("ws-{site}-{i:05}"), "desktop")
            };
            facts.insert("model".into(), model.to_string());
            facts.insert("sim.seed".into(), config.seed.to_string());
            let model_rate = if model == "r750" { 3 } else { 0 };
            facts.insert(
                "sim.fail-permille".into(),
                (config.fail_permille + model_rate).to_string(),
            );
            facts.insert(
                "sim.unhealthy-permille".into(),
                config.unhealthy_permille.to_string(),
            );
            if model == "r750" {
                // This NIC firmware misbehaves on this model.
                facts.insert("sim.bad-patch".into(), "acme-nic-22.31.6".into());
                facts.insert("sim.bad-patch-permille".into(), "40".into());
            }
            let mut tags = Vec::new();
            if i % 100 == 0 {
                tags.push("lab".to_string());
            }
            if mix(config.seed, n, 6).is_multiple_of(20) {
                tags.push("critical".to_string());
            }
            Device {
                hostname: format!("{id}.sim"),
                id,
                site: site.into(),
                timezone_name: zone.into(),
                timezone: zones[i % SITES.len()].clone(),
                tags,
                facts,
                transport: Transport::Sim,
                installer: None,
                components,
            }
        })
        .collect();
    Inventory { devices }
}

/// The fleet's timing: installs take 5 to 40 minutes; some devices never report;
/// reboots take 2 to 12 minutes (a server's POST), and after as many as installs hang
/// the device never comes back; the engine polls devices for results every minute.
pub fn timing(config: &FleetConfig) -> SimTiming {
    SimTiming {
        seed: config.seed,
        min_duration: Duration::from_secs(5 * 60),
        max_duration: Duration::from_secs(40 * 60),
        hang_permille: config.hang_permille,
        reboot_min: Duration::from_secs(2 * 60),
        reboot_max: Duration::from_secs(12 * 60),
        reboot_hang_permille: config.hang_permille,
        poll: Duration::from_secs(60),
    }
}
