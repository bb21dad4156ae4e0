//! Simulated vendor catalog: the patch source behind `ringleader demo` and the tests.
//!
//! Two simulated vendors: `acme` server firmware with a prerequisite chain
//! (BMC before BIOS before NIC firmware, each needing a reboot but the BMC), and
//! `debian-sim` OS packages with a critical security fix that supersedes an older one.
//! Only patches for components that some device has are returned.

wit_bindgen::generate!({
    path: "../../wit/ringleader-plugin@0.1.0",
    world: "patch-source",
});

use exports::ringleader::plugin::patch_source_api::Guest;
use ringleader::plugin::log::{Level, log};
use ringleader::plugin::types::{
    Artifact, Device, Patch, PatchKind, PluginError, PluginInfo, Severity,
};

struct SimVendorSource;

/// 2026-10-13T00:00:00Z, the day the simulated vendors published this catalog.
const RELEASED: i64 = 1_791_849_600;

struct Entry {
    id: &'static str,
    vendor: &'static str,
    title: &'static str,
    component: &'static str,
    fixed: &'static str,
    applies_to: &'static str,
    kind: PatchKind,
    severity: Severity,
    cves: &'static [&'static str],
    prerequisites: &'static [&'static str],
    supersedes: &'static [&'static str],
    reboot: bool,
    size: u64,
}

const CATALOG: &[Entry] = &[
    Entry {
        id: "acme-bmc-7.10.30",
        vendor: "acme",
        title: "ACME BMC firmware 7.10.30",
        component: "bmc-firmware",
        fixed: "7.10.30",
        applies_to: ">=7.0.0, <7.10.30",
        kind: PatchKind::Firmware,
        severity: Severity::High,
        cves: &[],
        prerequisites: &[],
        supersedes: &[],
        reboot: false,
        size: 94_371_840,
    },
    Entry {
        id: "acme-bios-2.19.1",
        vendor: "acme",
        title: "ACME server BIOS 2.19.1",
        component: "bios",
        fixed: "2.19.1",
        applies_to: ">=2.0.0, <2.19.1",
        kind: PatchKind::Firmware,
        severity: Severity::Medium,
        cves: &[],
        prerequisites: &["acme-bmc-7.10.30"],
        supersedes: &[],
        reboot: true,
        size: 33_554_432,
    },
    Entry {
        id: "acme-nic-22.31.6",
        vendor: "acme",
        title: "ACME 25GbE NIC firmware 22.31.6",
        component: "nic-firmware",
        fixed: "22.31.6",
        applies_to: ">=22.0.0, <22.31.6",
        kind: PatchKind::Firmware,
        severity: Severity::Low,
        cves: &[],
        prerequisites: &["acme-bios-2.19.1"],
        supersedes: &[],
        reboot: true,
        size: 4_194_304,
    },
    Entry {
        id: "debian-sim-openssl-3.0.14",
        vendor: "debian-sim",
        title: "openssl security update 3.0.14",
        component: "openssl",
        fixed: "3.0.14",
        applies_to: ">=3.0.0, <3.0.14",
        kind: PatchKind::Security,
        severity: Severity::High,
        cves: &["CVE-2024-4603", "CVE-2024-4741"],
        prerequisites: &[],
        supersedes: &[],
        reboot: false,
        size: 2_273_280,
    },
    Entry {
        id: "debian-sim-openssl-3.0.15",
        vendor: "debian-sim",
        title: "openssl security update 3.0.15",
        component: "openssl",
        fixed: "3.0.15",
        applies_to: ">=3.0.0, <3.0.15",
        kind: PatchKind::Security,
        severity: Severity::Critical,
        cves: &["CVE-2024-5535", "CVE-2024-6119"],
        prerequisites: &[],
        supersedes: &["debian-sim-openssl-3.0.14"],
        reboot: false,
        size: 2_281_472,
    },
    Entry {
        id: "debian-sim-linux-6.1.115",
        vendor: "debian-sim",
        title: "linux kernel update 6.1.115",
        component: "linux",
        fixed: "6.1.115",
        applies_to: ">=6.1.0, <6.1.115",
        kind: PatchKind::Bugfix,
        severity: Severity::Medium,
        cves: &[],
        prerequisites: &[],
        supersedes: &[],
        reboot: true,
        size: 70_254_592,
    },
];

/// A stable, fake checksum per artifact: the simulated vendor has no real bytes.
fn fake_sha256(id: &str) -> String {
    // FNV-1a, widened to 64 hex digits: deterministic and obviously synthetic.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}").repeat(4)
}

impl Guest for SimVendorSource {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "sim-vendor-source".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "simulated vendor catalog: server firmware and OS packages".into(),
        }
    }

    fn discover(devices: Vec<Device>) -> Result<Vec<Patch>, PluginError> {
        let wanted = |component: &str| {
            devices
                .iter()
                .any(|d| d.components.iter().any(|c| c.name == component))
        };
        let patches: Vec<Patch> = CATALOG
            .iter()
            .filter(|e| wanted(e.component))
            .map(|e| Patch {
                id: e.id.into(),
                vendor: e.vendor.into(),
                title: e.title.into(),
                component: e.component.into(),
                fixed_version: e.fixed.into(),
                applies_to: e.applies_to.into(),
                kind: e.kind,
                severity: e.severity,
                cves: e.cves.iter().map(|s| s.to_string()).collect(),
                prerequisites: e.prerequisites.iter().map(|s| s.to_string()).collect(),
                supersedes: e.supersedes.iter().map(|s| s.to_string()).collect(),
                reboot_required: e.reboot,
                artifact: Artifact {
                    url: format!("https://updates.sim.invalid/{}/{}.bin", e.vendor, e.id),
                    sha256: fake_sha256(e.id),
                    size: e.size,
                },
                released: RELEASED,
            })
            .collect();
        log(
            Level::Info,
            &format!("{} patches for {} devices", patches.len(), devices.len()),
        );
        Ok(patches)
    }
}

export!(SimVendorSource);
