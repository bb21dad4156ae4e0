//! Simulated-vendor installer: installs patches on simulated devices.
//!
//! A simulated device keeps what is installed on it in this plugin's key/value store
//! (`installed/<device>/<component>`), so `verify` reads back what `install` wrote,
//! across calls and host restarts, the way a real device keeps its own state. It also
//! counts `install` calls per device and patch (`installs/...`), and those made when
//! the patch was already installed (`duplicates/...`), which must never happen.
//!
//! Outcomes are decided by a hash of (seed, device, patch), never by call order, so a
//! seed gives the same fleet behaviour however calls interleave or restart. Device facts
//! set the rates, in per mille:
//!
//! | fact | meaning |
//! |---|---|
//! | `sim.seed` | the seed |
//! | `sim.fail-permille` | installs that fail |
//! | `sim.unhealthy-permille` | devices unhealthy after an install (verify fails) |
//! | `sim.bad-patch` / `sim.bad-patch-permille` | a patch that fails more often on this device |

wit_bindgen::generate!({
    path: "../../wit/ringleader-plugin@0.1.0",
    world: "installer",
});

use exports::ringleader::plugin::installer_api::Guest;
use ringleader::plugin::log::{Level, log};
use ringleader::plugin::types::{
    Device, HealthCheck, HealthReport, InstallOutcome, Patch, PluginError, PluginInfo, Readiness,
    RollbackTarget, VerifyReport,
};
use ringleader::plugin::{clock, kv};

struct SimVendorInstaller;

fn key(device: &Device, component: &str) -> String {
    format!("installed/{}/{}", device.id, component)
}

/// The version of `component` on `device`: what we installed, else the inventory's.
fn current_version(device: &Device, component: &str) -> Result<Option<String>, PluginError> {
    if let Some(bytes) = kv::get(&key(device, component))? {
        return String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| PluginError::Permanent("device state is not UTF-8".into()));
    }
    Ok(device
        .components
        .iter()
        .find(|c| c.name == component)
        .map(|c| c.version.clone()))
}

fn set_version(device: &Device, component: &str, version: &str) -> Result<(), PluginError> {
    kv::set(&key(device, component), version.as_bytes())
}

fn fact<'a>(device: &'a Device, key: &str) -> Option<&'a str> {
    device
        .facts
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn permille(device: &Device, key: &str) -> u64 {
    fact(device, key).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// A number in 0..1000 fixed by (seed, device, patch, what): FNV-1a.
fn draw(device: &Device, patch: &Patch, what: &str) -> u64 {
    let seed = fact(device, "sim.seed").unwrap_or("0");
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [seed, &device.id, &patch.id, what] {
        for byte in part.bytes().chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash % 1000
}

fn fails(device: &Device, patch: &Patch) -> bool {
    let mut rate = permille(device, "sim.fail-permille");
    if fact(device, "sim.bad-patch") == Some(patch.id.as_str()) {
        rate += permille(device, "sim.bad-patch-permille");
    }
    draw(device, patch, "install") < rate
}

fn count(key: &str) -> Result<(), PluginError> {
    let n = kv::get(key)?
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    kv::set(key, (n + 1).to_string().as_bytes())
}

fn health(device: &Device, patch: &Patch, installed: bool) -> HealthReport {
    let ok = !(installed && draw(device, patch, "health") < permille(device, "sim.unhealthy-permille"));
    HealthReport {
        healthy: ok,
        checks: vec![HealthCheck {
            name: "sim:heartbeat".into(),
            ok,
            detail: if ok {
                "device answers".into()
            } else {
                "service degraded after the update".into()
            },
        }],
    }
}

impl Guest for SimVendorInstaller {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "sim-vendor-installer".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "installs simulated-vendor patches on simulated devices".into(),
        }
    }

    fn preflight(device: Device, patch: Patch) -> Result<Readiness, PluginError> {
        match current_version(&device, &patch.component)? {
            None => Ok(Readiness::Blocked(format!(
                "device has no component `{}`",
                patch.component
            ))),
            Some(v) if v == patch.fixed_version => Ok(Readiness::AlreadyInstalled(v)),
            Some(_) => Ok(Readiness::Ready),
        }
    }

    fn install(device: Device, patch: Patch) -> Result<InstallOutcome, PluginError> {
        let Some(current) = current_version(&device, &patch.component)? else {
            return Err(PluginError::Permanent(format!(
                "device {} has no component `{}`",
                device.id, patch.component
            )));
        };
        count(&format!("installs/{}/{}", device.id, patch.id))?;
        if current == patch.fixed_version {
            // The engine must never do this; count it so tests can prove it does not.
            count(&format!("duplicates/{}/{}", device.id, patch.id))?;
        }
        if fails(&device, &patch) {
            return Err(PluginError::Permanent(format!(
                "simulated install of {} failed on {}",
                patch.id, device.id
            )));
        }
        set_version(&device, &patch.component, &patch.fixed_version)?;
        log(
            Level::Info,
            &format!("installed {} on {}", patch.id, device.id),
        );
        Ok(InstallOutcome {
            installed_version: patch.fixed_version,
            reboot_pending: patch.reboot_required,
            detail: format!("sim install at t={}", clock::now()),
        })
    }

    fn verify(device: Device, patch: Patch) -> Result<VerifyReport, PluginError> {
        let installed_version = current_version(&device, &patch.component)?;
        let installed = installed_version.as_deref() == Some(patch.fixed_version.as_str());
        Ok(VerifyReport {
            installed_version,
            health: health(&device, &patch, installed),
        })
    }

    fn rollback(
        device: Device,
        patch: Patch,
        target: RollbackTarget,
    ) -> Result<InstallOutcome, PluginError> {
        set_version(&device, &patch.component, &target.version)?;
        log(
            Level::Info,
            &format!(
                "rolled {} back to {} on {}",
                patch.id, target.version, device.id
            ),
        );
        Ok(InstallOutcome {
            installed_version: target.version,
            reboot_pending: patch.reboot_required,
            detail: format!("sim rollback at t={}", clock::now()),
        })
    }
}

export!(SimVendorInstaller);
