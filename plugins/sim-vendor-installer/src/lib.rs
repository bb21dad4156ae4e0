//! Simulated-vendor installer: installs patches on simulated devices.
//!
//! A simulated device keeps what is installed on it in this plugin's key/value store
//! (`installed/<device>/<component>`), so `verify` reads back what `install` wrote,
//! across calls and host restarts, the way a real device keeps its own state.

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

fn healthy() -> HealthReport {
    HealthReport {
        healthy: true,
        checks: vec![HealthCheck {
            name: "sim:heartbeat".into(),
            ok: true,
            detail: "device answers".into(),
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
        if current_version(&device, &patch.component)?.is_none() {
            return Err(PluginError::Permanent(format!(
                "device {} has no component `{}`",
                device.id, patch.component
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
        Ok(VerifyReport {
            installed_version: current_version(&device, &patch.component)?,
            health: healthy(),
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
