//! dpkg installer: installs Debian packages on a device through the `exec` capability,
//! over whatever transport the device has (this machine, or SSH).
//!
//! - The patch's `component` is the package name and `fixed-version` its version.
//! - The package file is the patch's artifact, a `file://` path **on the device** (put
//!   there by the operator's distribution, e.g. a mirror mounted on every host); its
//!   SHA-256 is checked on the device with `sha256sum` before anything is installed.
//! - A device whose inventory transport is `local` with a `root` (the fact
//!   `local.root`), or any device with the fact `dpkg.root` (a directory on the device,
//!   e.g. a chroot reached over SSH), is a directory tree with its own dpkg database:
//!   every command gets `--root`/`--admindir`, so that test devices (and chroots) are
//!   independent.
//! - `rollback` installs the package file of the version to go back to (dpkg
//!   downgrades); the host passes it when the catalog knows that version.
//! - Built against WIT 0.3.0: a patch whose versions are of another scheme than `deb`
//!   (an `rpm` or `apk` package reported for the same name) is `blocked` at preflight,
//!   saying so; one that names no scheme is taken as a Debian package. `scan` reports
//!   every package dpkg has (with its source package), the os-release file and the
//!   boot state, under the device's root when it has one (guest-debian); `reboot` runs
//!   `systemctl reboot` on a device without a separate root (a directory tree cannot
//!   restart: refused, saying so).

wit_bindgen::generate!({
    path: "../../wit/ringleader-plugin@0.3.0",
    world: "installer",
});

use exports::ringleader::plugin::installer_api::Guest;
use ringleader::plugin::clock;
use ringleader::plugin::exec::{self, Command, Output};
use ringleader::plugin::log::{Level, log};
use ringleader::plugin::types::{
    Artifact, BootState, Component, Device, DeviceScan, HealthCheck, HealthReport, InstallOutcome,
    OsRelease, Patch, PluginError, PluginInfo, Readiness, RollbackTarget, VerifyReport,
    VersionScheme,
};

struct DpkgInstaller;

/// Deadline of one dpkg run (the plugin's own deadline is the manifest's `timeout`).
const DPKG_TIMEOUT_MS: u32 = 9 * 60 * 1000;

fn run(program: &str, args: Vec<String>) -> Result<Output, PluginError> {
    exec::run(&Command {
        program: program.into(),
        args,
        stdin: vec![],
        timeout_ms: Some(DPKG_TIMEOUT_MS),
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

/// The last lines of a program's error output, for a message.
fn tail(bytes: &[u8]) -> String {
    let all = text(bytes);
    let lines: Vec<&str> = all.lines().collect();
    lines[lines.len().saturating_sub(6)..].join(" | ")
}

/// The device's separate root, if it has one.
fn root(device: &Device) -> Option<&str> {
    let fact = |key: &str| {
        device
            .facts
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    fact("dpkg.root").or_else(|| fact("local.root"))
}

fn dpkg_args(device: &Device, rest: &[&str]) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(root) = root(device) {
        args.push(format!("--root={root}"));
        args.push("--force-not-root".into());
        args.push("--log=/dev/null".into());
    }
    args.extend(rest.iter().map(|s| s.to_string()));
    args
}

/// Version and dpkg status (e.g. `ii ` installed, `iF ` half-configured) of `package`,
/// `None` when it is not installed.
fn query(device: &Device, package: &str) -> Result<Option<(String, String)>, PluginError> {
    let mut args = Vec::new();
    if let Some(root) = root(device) {
        args.push(format!("--admindir={root}/var/lib/dpkg"));
    }
    args.push("-W".into());
    args.push("-f=${Version}\t${db:Status-Abbrev}".into());
    args.push(package.into());
    let out = run("dpkg-query", args)?;
    if out.exit_code != 0 {
        return Ok(None);
    }
    let line = text(&out.stdout);
    let (version, status) = line.split_once('\t').unwrap_or((line.as_str(), ""));
    if version.is_empty() {
        // Known to dpkg but not installed (e.g. removed, config files left).
        return Ok(None);
    }
    Ok(Some((version.to_string(), status.to_string())))
}

/// The path on the device of a `file://` artifact.
fn path_of(artifact: &Artifact) -> Result<&str, String> {
    artifact
        .url
        .strip_prefix("file://")
        .filter(|p| p.starts_with('/'))
        .ok_or_else(|| {
            format!(
                "the package must be a file:// path on the device, not `{}`",
                artifact.url
            )
        })
}

/// Checks the package file on the device against the artifact's SHA-256.
fn check_sum(artifact: &Artifact, path: &str) -> Result<Result<(), String>, PluginError> {
    if artifact.sha256.is_empty() {
        return Ok(Err(format!("{path} has no published SHA-256 to check")));
    }
    let out = run("sha256sum", vec![path.to_string()])?;
    if out.exit_code != 0 {
        return Ok(Err(format!("cannot read {path}: {}", tail(&out.stderr))));
    }
    let found = text(&out.stdout);
    let found = found.split_whitespace().next().unwrap_or("");
    Ok(if found.eq_ignore_ascii_case(&artifact.sha256) {
        Ok(())
    } else {
        Err(format!(
            "{path} has SHA-256 {found}, not the published {}",
            artifact.sha256
        ))
    })
}

/// How long `dpkg -i` waits for another dpkg on the device (an install of ours still
/// running after the engine stopped, or an operator's) before it gives up.
const LOCK_WAIT_MS: u32 = 120_000;
const LOCK_POLL_MS: u32 = 1_000;

/// `dpkg -i` of the package file at `path`, which brings `package` to `version`. When
/// another dpkg holds the lock, waits for it to finish, and installs nothing if that
/// dpkg (say, our own install from before a restart) has done the work.
fn dpkg_install(
    device: &Device,
    path: &str,
    what: &str,
    package: &str,
    version: &str,
) -> Result<(), PluginError> {
    let mut waited = 0;
    let out = loop {
        let out = run("dpkg", dpkg_args(device, &["-i", path]))?;
        if out.exit_code == 0 || !text(&out.stderr).contains("locked by another process") {
            break out;
        }
        if waited >= LOCK_WAIT_MS {
            return Err(PluginError::Transient(format!(
                "dpkg on {} is still busy with another install after {} s: {}",
                device.id,
                LOCK_WAIT_MS / 1000,
                tail(&out.stderr)
            )));
        }
        clock::sleep(LOCK_POLL_MS);
        waited += LOCK_POLL_MS;
        if let Some((v, status)) = query(device, package)?
            && v == version
            && status == "ii"
        {
            return Ok(());
        }
    };
    if out.exit_code != 0 {
        return Err(PluginError::Permanent(format!(
            "dpkg -i {what} on {} exited with {}: {}",
            device.id,
            out.exit_code,
            tail(&out.stderr)
        )));
    }
    Ok(())
}

/// The device read through `exec`, as `guest_debian::scan` reads it (under its root).
fn read_device(device: &Device) -> Result<guest_debian::Scan, PluginError> {
    guest_debian::scan(
        root(device),
        |program, args| {
            run(program, args).map(|o| guest_debian::Output {
                exit_code: o.exit_code,
                stdout: o.stdout,
                stderr: o.stderr,
            })
        },
        |out| {
            PluginError::Permanent(format!(
                "dpkg-query -W on {} exited with {}: {}",
                device.id,
                out.exit_code,
                tail(&out.stderr)
            ))
        },
    )
}

guest_debian::wit_conversions!();

impl Guest for DpkgInstaller {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "dpkg-installer".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "installs Debian packages with dpkg over the local or ssh transport"
                .into(),
        }
    }

    fn preflight(device: Device, patch: Patch) -> Result<Readiness, PluginError> {
        if let Some(other) = patch.scheme.filter(|s| *s != VersionScheme::Deb) {
            return Ok(Readiness::Blocked(format!(
                "patch {} is for {} versions, and dpkg installs Debian packages (deb versions)",
                patch.id,
                match other {
                    VersionScheme::Deb => "deb",
                    VersionScheme::Rpm => "rpm",
                    VersionScheme::Apk => "apk",
                    VersionScheme::Semver => "semver",
                    VersionScheme::Vendor => "vendor",
                }
            )));
        }
        match query(&device, &patch.component)? {
            None => {
                return Ok(Readiness::Blocked(format!(
                    "package {} is not installed on {}",
                    patch.component, device.id
                )));
            }
            Some((version, status)) if version == patch.fixed_version && status == "ii" => {
                return Ok(Readiness::AlreadyInstalled(version));
            }
            Some(_) => {}
        }
        let path = match path_of(&patch.artifact) {
            Ok(path) => path,
            Err(why) => return Ok(Readiness::Blocked(why)),
        };
        Ok(match check_sum(&patch.artifact, path)? {
            Ok(()) => Readiness::Ready,
            Err(why) => Readiness::Blocked(why),
        })
    }

    fn install(device: Device, patch: Patch) -> Result<InstallOutcome, PluginError> {
        if let Some((version, status)) = query(&device, &patch.component)?
            && version == patch.fixed_version
            && status == "ii"
        {
            // Called again after a restart: already done.
            return Ok(InstallOutcome {
                installed_version: version,
                reboot_pending: false,
                detail: "already installed".into(),
            });
        }
        let path = path_of(&patch.artifact).map_err(PluginError::Permanent)?;
        check_sum(&patch.artifact, path)?.map_err(PluginError::Permanent)?;
        dpkg_install(
            &device,
            path,
            &patch.id,
            &patch.component,
            &patch.fixed_version,
        )?;
        let version = query(&device, &patch.component)?
            .map(|(v, _)| v)
            .unwrap_or_default();
        log(
            Level::Info,
            &format!("{} {} installed on {}", patch.component, version, device.id),
        );
        Ok(InstallOutcome {
            installed_version: version,
            reboot_pending: patch.reboot_required,
            detail: path.into(),
        })
    }

    fn verify(device: Device, patch: Patch) -> Result<VerifyReport, PluginError> {
        let state = query(&device, &patch.component)?;
        let (version, status) = match state {
            Some((v, s)) => (Some(v), s),
            None => (None, String::new()),
        };
        let ok = status == "ii";
        Ok(VerifyReport {
            installed_version: version,
            health: HealthReport {
                healthy: ok,
                checks: vec![HealthCheck {
                    name: "dpkg-status".into(),
                    ok,
                    detail: if ok {
                        "installed and configured".into()
                    } else {
                        format!(
                            "dpkg status `{status}` (not `ii`: the package is not fully configured)"
                        )
                    },
                }],
            },
        })
    }

    fn rollback(
        device: Device,
        patch: Patch,
        target: RollbackTarget,
    ) -> Result<InstallOutcome, PluginError> {
        if let Some((version, status)) = query(&device, &patch.component)?
            && version == target.version
            && status == "ii"
        {
            return Ok(InstallOutcome {
                installed_version: version,
                reboot_pending: false,
                detail: "already at the rollback version".into(),
            });
        }
        let Some(artifact) = target.artifact else {
            return Err(PluginError::Permanent(format!(
                "no package of {} {} to roll {} back to",
                patch.component, target.version, device.id
            )));
        };
        let path = path_of(&artifact).map_err(PluginError::Permanent)?;
        check_sum(&artifact, path)?.map_err(PluginError::Permanent)?;
        dpkg_install(
            &device,
            path,
            &format!("{} {}", patch.component, target.version),
            &patch.component,
            &target.version,
        )?;
        let version = query(&device, &patch.component)?
            .map(|(v, _)| v)
            .unwrap_or_default();
        Ok(InstallOutcome {
            installed_version: version,
            reboot_pending: false,
            detail: format!("rolled back with {path}"),
        })
    }

    fn scan(device: Device) -> Result<DeviceScan, PluginError> {
        read_device(&device).map(device_scan)
    }

    fn boot_state(device: Device) -> Result<BootState, PluginError> {
        read_device(&device).map(|s| boot_state(s.boot))
    }

    fn reboot(device: Device) -> Result<String, PluginError> {
        if let Some(root) = root(&device) {
            return Err(PluginError::Permanent(format!(
                "{} is the directory tree {root} (its dpkg root), not a system of its own: it cannot restart",
                device.id
            )));
        }
        let out = match run("systemctl", vec!["reboot".into()]) {
            Err(PluginError::Transient(why)) if guest_debian::cut_by_the_restart(&why) => {
                return Ok(format!(
                    "systemctl reboot on {}: the connection closed as it went down",
                    device.id
                ));
            }
            out => out?,
        };
        if out.exit_code != 0 {
            return Err(PluginError::Permanent(format!(
                "systemctl reboot on {} exited with {}: {}",
                device.id,
                out.exit_code,
                tail(&out.stderr)
            )));
        }
        Ok(format!("systemctl reboot on {}", device.id))
    }
}

export!(DpkgInstaller);
