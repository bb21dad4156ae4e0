//! Simulated-vendor installer: installs patches on simulated devices.
//!
//! A simulated device keeps its own state; this plugin reaches it only through the
//! `exec` capability, running the device's `sim-pkg` tool (the host's `sim` transport),
//! exactly as a real installer runs `dpkg` or a vendor flash tool:
//!
//! - `sim-pkg query COMPONENT` prints the installed version;
//! - `sim-pkg install COMPONENT VERSION PATCH [reboot]` installs (and may fail, as
//!   devices do); with `reboot` (the patch needs a restart) the device reports a
//!   pending restart until it reboots;
//! - `sim-pkg rollback COMPONENT VERSION [reboot]` restores a version;
//! - `sim-pkg health PATCH` says whether the device is healthy after the patch;
//! - `sim-pkg list` prints every component with its version (`scan`);
//! - `sim-pkg boot` prints the boot id (and `pending ...` while a restart is due),
//!   `sim-pkg reboot` restarts the device.
//!
//! Built against WIT 0.3.0 (for `scan`, `boot-state` and `reboot`); the simulated
//! source stays on 0.1.0, so the simulated fleet exercises old and new side by side.

wit_bindgen::generate!({
    path: "../../wit/ringleader-plugin@0.3.0",
    world: "installer",
});

use exports::ringleader::plugin::installer_api::Guest;
use ringleader::plugin::exec::{self, Command, Output};
use ringleader::plugin::log::{Level, log};
use ringleader::plugin::types::{
    BootState, Component, Device, DeviceScan, HealthCheck, HealthReport, InstallOutcome, Patch,
    PluginError, PluginInfo, Readiness, RollbackTarget, VerifyReport,
};

struct SimVendorInstaller;

fn sim_pkg(args: &[&str]) -> Result<Output, PluginError> {
    exec::run(&Command {
        program: "sim-pkg".into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        stdin: vec![],
        timeout_ms: Some(60_000),
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

/// `sim-pkg CMD` that must succeed, its output.
fn sim_pkg_ok(device: &Device, args: &[&str]) -> Result<String, PluginError> {
    let out = sim_pkg(args)?;
    if out.exit_code != 0 {
        return Err(PluginError::Permanent(format!(
            "sim-pkg {} on {} exited with {}: {}",
            args.join(" "),
            device.id,
            out.exit_code,
            text(&out.stderr)
        )));
    }
    Ok(text(&out.stdout))
}

/// The device's boot id, and what waits for its restart (`sim-pkg boot`'s `pending`
/// line: installs done with `reboot` since the last restart).
fn boot(device: &Device) -> Result<BootState, PluginError> {
    let said = sim_pkg_ok(device, &["boot"])?;
    let mut lines = said.lines();
    let boot_id = lines.next().map(str::to_string);
    let pending: Vec<String> = lines
        .filter_map(|l| l.strip_prefix("pending "))
        .flat_map(|p| p.split(','))
        .map(|p| format!("{p} waits for a restart"))
        .collect();
    Ok(BootState {
        boot_id,
        booted_at: None,
        reboot_pending: !pending.is_empty(),
        pending_reasons: pending,
    })
}

/// The version of `component` the device reports, `None` if it has none.
fn installed(component: &str) -> Result<Option<String>, PluginError> {
    let out = sim_pkg(&["query", component])?;
    Ok((out.exit_code == 0).then(|| text(&out.stdout)))
}

impl Guest for SimVendorInstaller {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "sim-vendor-installer".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "installs simulated-vendor patches on simulated devices".into(),
        }
    }

    fn preflight(_device: Device, patch: Patch) -> Result<Readiness, PluginError> {
        Ok(match installed(&patch.component)? {
            None => Readiness::Blocked(format!("device has no component `{}`", patch.component)),
            Some(v) if v == patch.fixed_version => Readiness::AlreadyInstalled(v),
            Some(_) => Readiness::Ready,
        })
    }

    fn install(device: Device, patch: Patch) -> Result<InstallOutcome, PluginError> {
        let mut args = vec!["install", &patch.component, &patch.fixed_version, &patch.id];
        if patch.reboot_required {
            args.push("reboot");
        }
        let out = sim_pkg(&args)?;
        if out.exit_code != 0 {
            return Err(PluginError::Permanent(format!(
                "sim-pkg install on {} exited with {}: {}",
                device.id,
                out.exit_code,
                text(&out.stderr)
            )));
        }
        log(
            Level::Debug,
            &format!("installed {} on {}", patch.id, device.id),
        );
        Ok(InstallOutcome {
            installed_version: patch.fixed_version,
            reboot_pending: patch.reboot_required,
            detail: text(&out.stdout),
        })
    }

    fn verify(_device: Device, patch: Patch) -> Result<VerifyReport, PluginError> {
        let installed_version = installed(&patch.component)?;
        let mut checks = Vec::new();
        if installed_version.as_deref() == Some(patch.fixed_version.as_str()) {
            let out = sim_pkg(&["health", &patch.id])?;
            checks.push(HealthCheck {
                name: "sim:health".into(),
                ok: out.exit_code == 0,
                detail: text(if out.exit_code == 0 {
                    &out.stdout
                } else {
                    &out.stderr
                }),
            });
        }
        Ok(VerifyReport {
            installed_version,
            health: HealthReport {
                healthy: checks.iter().all(|c| c.ok),
                checks,
            },
        })
    }

    fn rollback(
        device: Device,
        patch: Patch,
        target: RollbackTarget,
    ) -> Result<InstallOutcome, PluginError> {
        let mut args = vec!["rollback", &patch.component, &target.version];
        if patch.reboot_required {
            args.push("reboot");
        }
        let out = sim_pkg(&args)?;
        if out.exit_code != 0 {
            return Err(PluginError::Permanent(format!(
                "sim-pkg rollback on {} exited with {}: {}",
                device.id,
                out.exit_code,
                text(&out.stderr)
            )));
        }
        Ok(InstallOutcome {
            installed_version: target.version,
            reboot_pending: patch.reboot_required,
            detail: text(&out.stdout),
        })
    }

    fn scan(device: Device) -> Result<DeviceScan, PluginError> {
        let listed = sim_pkg_ok(&device, &["list"])?;
        let components = listed
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(name, version)| Component {
                name: name.into(),
                version: version.into(),
                scheme: None,
                source: None,
            })
            .collect();
        Ok(DeviceScan {
            components,
            os: None,
            boot: boot(&device)?,
            facts: Vec::new(),
        })
    }

    fn boot_state(device: Device) -> Result<BootState, PluginError> {
        boot(&device)
    }

    fn reboot(device: Device) -> Result<String, PluginError> {
        sim_pkg_ok(&device, &["reboot"])
    }
}

export!(SimVendorInstaller);
