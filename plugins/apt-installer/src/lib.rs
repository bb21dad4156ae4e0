//! apt installer: brings Debian packages to a patch's version with apt, from the
//! device's own configured repositories, through the `exec` capability over whatever
//! transport the device has (this machine, or SSH).
//!
//! - The patch's `component` is the binary package and `fixed-version` its version; the
//!   artifact is not used (apt fetches and checks the package from the device's
//!   repositories, whose signatures it verifies).
//! - **One transaction per update of a source package.** A patch names one package,
//!   and the host installs a device's patches one at a time (prerequisites first), so a
//!   two-package update (`foo-tools` depending on `libfoo1 (= 2.0-1)`) would be two
//!   installs, the first of which apt cannot do alone. Debian ships security updates per
//!   source package, so the plugin upgrades, in the same `apt-get install`, every
//!   installed binary package built from the same source package as the patch's,
//!   at the same installed version, to the patch's version when the repositories have
//!   it. The patch of the other package then finds its version installed
//!   (`already-installed`). Rollback moves the same group back together.
//! - **Before anything else** an interrupted dpkg (packages left unpacked,
//!   half-configured or awaiting triggers, what `dpkg --audit` reports) is repaired with
//!   `dpkg --configure -a`, and the log says so: apt refuses to work on such a system.
//!   This is the one change `preflight` makes on a device.
//! - **Non-interactive.** The `exec` contract carries no environment (the host runs
//!   programs with `PATH` only, no terminal, empty standard input), so
//!   `DEBIAN_FRONTEND` cannot be set from here: debconf finds no terminal and falls
//!   back to a frontend reading the empty input. Conffiles: `--force-confdef
//!   --force-confold` (a conffile the operator never changed takes the package's new
//!   version; one the operator changed is kept, the package's version left beside it as
//!   `.dpkg-dist`). `--no-remove`: a transaction that would remove a package aborts.
//! - Built against WIT 0.3.0: a patch whose versions are of another scheme than `deb`
//!   is `blocked` at preflight, saying so; one that names no scheme is taken as a
//!   Debian package. `scan` reports every package dpkg has (with its source package),
//!   `/etc/os-release` and the boot state (guest-debian); `reboot` runs
//!   `systemctl reboot`.

wit_bindgen::generate!({
    path: "../../wit/ringleader-plugin@0.3.0",
    world: "installer",
});

use exports::ringleader::plugin::installer_api::Guest;
use guest_debian::{Package as Installed, state_name};
use ringleader::plugin::exec::{self, Command, Output};
use ringleader::plugin::log::{Level, log};
use ringleader::plugin::types::{
    BootState, Component, Device, DeviceScan, HealthCheck, HealthReport, InstallOutcome, OsRelease,
    Patch, PluginError, PluginInfo, Readiness, RollbackTarget, VerifyReport, VersionScheme,
};
use std::collections::BTreeMap;

struct AptInstaller;

/// `apt-get update` (every repository of the device).
const UPDATE_TIMEOUT_MS: u32 = 5 * 60 * 1000;
/// One install transaction: downloads, unpacking, maintainer scripts.
const INSTALL_TIMEOUT_MS: u32 = 30 * 60 * 1000;
/// Reading state: dpkg-query, apt-cache, a simulation.
const QUERY_TIMEOUT_MS: u32 = 2 * 60 * 1000;
/// How long apt waits for another apt or dpkg holding the lock.
const LOCK_TIMEOUT_S: u32 = 120;

fn run(program: &str, args: Vec<String>, timeout_ms: u32) -> Result<Output, PluginError> {
    exec::run(&Command {
        program: program.into(),
        args,
        stdin: vec![],
        timeout_ms: Some(timeout_ms),
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

/// apt's options for every run: quiet progress, no pty for dpkg (there is no
/// terminal), waiting for a lock another apt holds.
fn apt_args(rest: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "-q",
        "-o",
        "Dpkg::Use-Pty=0",
        "-o",
        &format!("DPkg::Lock::Timeout={LOCK_TIMEOUT_S}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(rest.iter().map(|s| s.to_string()));
    args
}

/// The options of a transaction that changes the device: yes to apt's question,
/// never a removal, the conffile policy of the module docs.
const TRANSACTION: &[&str] = &[
    "-y",
    "--no-remove",
    "-o",
    "Dpkg::Options::=--force-confdef",
    "-o",
    "Dpkg::Options::=--force-confold",
];

/// Every package dpkg knows on the device.
fn installed(device: &Device) -> Result<Vec<Installed>, PluginError> {
    let out = run(
        "dpkg-query",
        guest_debian::dpkg_query_args(None),
        QUERY_TIMEOUT_MS,
    )?;
    if out.exit_code != 0 {
        return Err(dpkg_query_failed(device, &out));
    }
    Ok(guest_debian::parse_packages(&String::from_utf8_lossy(
        &out.stdout,
    )))
}

fn dpkg_query_failed(device: &Device, out: &Output) -> PluginError {
    PluginError::Permanent(format!(
        "dpkg-query -W on {} exited with {}: {}",
        device.id,
        out.exit_code,
        tail(&text(&out.stderr))
    ))
}

fn find<'a>(installed: &'a [Installed], package: &str) -> Option<&'a Installed> {
    installed.iter().find(|p| p.package == package)
}

/// The last lines of `all`, for a message.
fn tail(all: &str) -> String {
    let lines: Vec<&str> = all.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(6)..].join(" | ")
}

/// Packages dpkg left half-way (what `dpkg --audit` reports): unpacked,
/// half-installed, half-configured, awaiting or pending triggers, or needing a
/// reinstall.
fn interrupted(installed: &[Installed]) -> Vec<&Installed> {
    installed.iter().filter(|p| p.interrupted()).collect()
}

fn half_way(packages: &[&Installed]) -> String {
    packages
        .iter()
        .map(|p| format!("{} {} ({})", p.package, p.version, state_name(&p.status)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What dpkg knows on the device, after repairing an interrupted dpkg (packages left
/// half-way, see [`interrupted`]) with `dpkg --configure -a`; with a sentence saying
/// what it repaired, if it did.
fn repair_dpkg(device: &Device) -> Result<(Vec<Installed>, Option<String>), PluginError> {
    let found = installed(device)?;
    let broken = interrupted(&found);
    if broken.is_empty() {
        return Ok((found, None));
    }
    let packages = half_way(&broken);
    log(
        Level::Warn,
        &format!(
            "dpkg on {} was interrupted ({packages} left half-way): repairing it with dpkg --configure -a before anything else",
            device.id
        ),
    );
    let out = run(
        "dpkg",
        vec![
            "--force-confdef".into(),
            "--force-confold".into(),
            "--configure".into(),
            "-a".into(),
        ],
        INSTALL_TIMEOUT_MS,
    )?;
    if out.exit_code != 0 {
        return Err(PluginError::Permanent(format!(
            "dpkg on {} was interrupted ({packages} left half-way) and dpkg --configure -a failed with {}: {}; repair it by hand",
            device.id,
            out.exit_code,
            tail(&format!("{}\n{}", text(&out.stdout), text(&out.stderr)))
        )));
    }
    let after = installed(device)?;
    let left = interrupted(&after);
    if !left.is_empty() {
        return Err(PluginError::Permanent(format!(
            "dpkg on {} was interrupted and dpkg --configure -a left {}; repair it by hand (apt-get -f install)",
            device.id,
            half_way(&left)
        )));
    }
    let names: Vec<&str> = broken.iter().map(|p| p.package.as_str()).collect();
    let summary = format!(
        "repaired an interrupted dpkg on {} first: dpkg --configure -a configured {}",
        device.id,
        names.join(", ")
    );
    log(Level::Warn, &summary);
    Ok((after, Some(summary)))
}

/// `apt-get update`, with what apt refused said plainly: a repository that is not
/// signed, or signed by a key the device does not trust, is permanent until an
/// operator acts; one that cannot be reached is transient.
fn apt_update(device: &Device) -> Result<(), PluginError> {
    let out = run("apt-get", apt_args(&["update"]), UPDATE_TIMEOUT_MS)?;
    let said = format!("{}\n{}", text(&out.stdout), text(&out.stderr));
    let lines: Vec<&str> = said.lines().map(str::trim).collect();
    let matching = |needles: &[&str]| -> Vec<&str> {
        lines
            .iter()
            .copied()
            .filter(|l| needles.iter().any(|n| l.contains(n)))
            .collect()
    };
    let untrusted = matching(&[
        "NO_PUBKEY",
        "EXPKEYSIG",
        "BADSIG",
        "signatures were invalid",
        "signatures couldn't be verified",
    ]);
    let unsigned = matching(&["is not signed", "is no longer signed"]);
    if !untrusted.is_empty() {
        return Err(PluginError::Permanent(format!(
            "apt-get update on {} refused a repository whose signature does not check out with the key it trusts (its sources' signed-by keyring): permanent until the repository is signed with that key or the device trusts the repository's key; apt said: {}",
            device.id,
            untrusted.join(" | ")
        )));
    }
    if !unsigned.is_empty() {
        return Err(PluginError::Permanent(format!(
            "apt-get update on {} refused an unsigned repository (no InRelease or Release.gpg): permanent until the repository is signed; apt said: {}",
            device.id,
            unsigned.join(" | ")
        )));
    }
    let failed = matching(&["Failed to fetch", "Could not connect", "Could not resolve"]);
    if !failed.is_empty() {
        let network = [
            "Could not connect",
            "Connection failed",
            "Connection refused",
            "timed out",
            "Temporary failure",
            "Could not resolve",
            "No route to host",
            "Network is unreachable",
        ];
        let message = format!(
            "apt-get update on {} could not fetch a repository's index: {}",
            device.id,
            failed.join(" | ")
        );
        return Err(
            if failed.iter().any(|l| network.iter().any(|n| l.contains(n))) {
                PluginError::Transient(format!("{message}; will retry"))
            } else {
                PluginError::Permanent(message)
            },
        );
    }
    if out.exit_code != 0 {
        return Err(error_of("apt-get update", device, &out));
    }
    Ok(())
}

/// A failed apt run as an error: apt's and dpkg's own error lines (the maintainer
/// script's output, `dpkg: error processing ...`, `E: ...`); transient when another apt
/// or dpkg held the lock past the wait.
fn error_of(what: &str, device: &Device, out: &Output) -> PluginError {
    let said = format!("{}\n{}", text(&out.stdout), text(&out.stderr));
    let wanted = |l: &str| {
        l.starts_with("E: ")
            || l.starts_with("dpkg: ")
            || l.contains("returned error exit status")
            || l.contains("unmet dependencies")
            || l.contains(" : Depends: ")
            || l.contains("Breaks: ")
            || l.contains("failed")
    };
    let mut errors: Vec<&str> = said.lines().map(str::trim).filter(|l| wanted(l)).collect();
    if errors.is_empty() {
        errors = said.lines().map(str::trim).collect();
    }
    errors.retain(|l| !l.is_empty());
    let errors = errors[errors.len().saturating_sub(8)..].join(" | ");
    let message = format!(
        "{what} on {} exited with {}: {errors}",
        device.id, out.exit_code
    );
    if said.contains("Could not get lock") || said.contains("Unable to acquire the dpkg") {
        PluginError::Transient(format!("{message}; will retry"))
    } else {
        PluginError::Permanent(message)
    }
}

/// Versions of packages, newest first, by package.
type Versions = BTreeMap<String, Vec<String>>;

/// The versions the device's repositories hold of each of `packages` (`apt-cache
/// madison`), newest first.
fn available(device: &Device, packages: &[&str]) -> Result<Versions, PluginError> {
    let mut args = vec!["madison".to_string()];
    args.extend(packages.iter().map(|p| p.to_string()));
    let out = run("apt-cache", args, QUERY_TIMEOUT_MS)?;
    if out.exit_code != 0 {
        return Err(error_of("apt-cache madison", device, &out));
    }
    let mut versions = Versions::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut fields = line.split('|').map(str::trim);
        let (Some(name), Some(version)) = (fields.next(), fields.next()) else {
            continue;
        };
        let list = versions.entry(name.to_string()).or_default();
        if !list.iter().any(|v| v == version) {
            list.push(version.to_string());
        }
    }
    Ok(versions)
}

/// `package=version` of the patch's package, and of every other installed package of
/// the same source at the same installed version that the repositories hold at
/// `version` too: the packages that move together.
fn group(
    device: &Device,
    installed: &[Installed],
    package: &Installed,
    version: &str,
) -> Result<(Vec<(String, String)>, Versions), PluginError> {
    let siblings: Vec<&Installed> = installed
        .iter()
        .filter(|p| {
            p.package != package.package
                && p.source == package.source
                && p.version == package.version
        })
        .collect();
    let mut names = vec![package.package.as_str()];
    names.extend(siblings.iter().map(|p| p.package.as_str()));
    let versions = available(device, &names)?;
    let mut pins = vec![(package.package.clone(), version.to_string())];
    for sibling in siblings {
        if versions
            .get(&sibling.package)
            .is_some_and(|list| list.iter().any(|v| v == version))
        {
            pins.push((sibling.package.clone(), version.to_string()));
        }
    }
    Ok((pins, versions))
}

fn pin_args(pins: &[(String, String)]) -> Vec<String> {
    pins.iter().map(|(p, v)| format!("{p}={v}")).collect()
}

fn pins_text(pins: &[(String, String)]) -> String {
    pin_args(pins).join(" ")
}

/// What apt would do: `Inst` and `Remv` lines of `apt-get -s`.
#[derive(Debug, Default)]
struct Simulation {
    /// (package, from, to); `from` empty for a new package.
    changes: Vec<(String, String, String)>,
    removals: Vec<String>,
    held: Vec<String>,
}

/// `apt-get -s install --only-upgrade PINS`: what apt would change, or why it cannot
/// (broken dependencies, a version it does not have).
fn simulate(
    device: &Device,
    pins: &[(String, String)],
) -> Result<Result<Simulation, String>, PluginError> {
    let mut rest = vec!["-s", "install", "--only-upgrade"];
    let pinned = pin_args(pins);
    rest.extend(pinned.iter().map(String::as_str));
    let out = run("apt-get", apt_args(&rest), QUERY_TIMEOUT_MS)?;
    if out.exit_code != 0 {
        return Ok(Err(match error_of("apt-get -s install", device, &out) {
            PluginError::Permanent(m) | PluginError::Transient(m) | PluginError::Denied(m) => m,
        }));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut simulation = Simulation::default();
    let mut in_held = false;
    for line in stdout.lines() {
        if line.starts_with("The following held packages will be changed") {
            in_held = true;
            continue;
        }
        if in_held {
            if line.starts_with(' ') {
                simulation
                    .held
                    .extend(line.split_whitespace().map(str::to_string));
                continue;
            }
            in_held = false;
        }
        // `Inst foo [1.0-1] (2.0-1 origin [all])`, `Inst bar (1.0 origin [all])`
        if let Some(rest) = line.strip_prefix("Inst ") {
            let name = rest.split_whitespace().next().unwrap_or("").to_string();
            let from = rest
                .split_once(" [")
                .filter(|(before, _)| !before.contains('('))
                .and_then(|(_, after)| after.split_once(']'))
                .map(|(v, _)| v.to_string())
                .unwrap_or_default();
            let to = rest
                .split_once('(')
                .and_then(|(_, after)| after.split_whitespace().next())
                .unwrap_or("")
                .to_string();
            simulation.changes.push((name, from, to));
        } else if let Some(rest) = line.strip_prefix("Remv ") {
            simulation
                .removals
                .push(rest.split_whitespace().next().unwrap_or("").to_string());
        }
    }
    Ok(Ok(simulation))
}

/// Bytes apt would download and the change in installed size (`apt-get install
/// --print-uris`, which installs nothing): `Need to get X[/Y] of archives.` and
/// `After this operation, Z of additional disk space will be used` (or `freed`).
fn sizes(device: &Device, pins: &[(String, String)]) -> Result<(u64, i64), PluginError> {
    let mut rest = vec!["--print-uris", "install", "--only-upgrade"];
    let pinned = pin_args(pins);
    rest.extend(pinned.iter().map(String::as_str));
    let out = run("apt-get", apt_args(&rest), QUERY_TIMEOUT_MS)?;
    if out.exit_code != 0 {
        return Err(error_of("apt-get --print-uris install", device, &out));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut download = 0;
    let mut after = 0;
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("Need to get ") {
            let amount = rest.split(" of archives").next().unwrap_or("");
            // `0 B/1588 B`: what is still to fetch comes first.
            download = parse_size(amount.split('/').next().unwrap_or("")).unwrap_or(0);
        } else if let Some(rest) = line.strip_prefix("After this operation, ") {
            let amount = rest
                .split(" of additional")
                .next()
                .unwrap_or("")
                .split(" disk space")
                .next()
                .unwrap_or("");
            let bytes = parse_size(amount).unwrap_or(0) as i64;
            after = if rest.contains("freed") {
                -bytes
            } else {
                bytes
            };
        }
    }
    Ok((download, after))
}

/// `1588 B`, `12.3 kB`, `1,234 MB` (apt's sizes, powers of 1000) as bytes.
fn parse_size(amount: &str) -> Option<u64> {
    let (number, unit) = amount.trim().split_once(' ')?;
    let number: f64 = number.replace(',', "").parse().ok()?;
    let scale = match unit.trim() {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => return None,
    };
    Some((number * scale) as u64)
}

/// Free bytes of the filesystem of `/var/cache/apt/archives`, where apt downloads.
fn free_bytes() -> Result<Option<u64>, PluginError> {
    let out = run(
        "df",
        vec!["-P".into(), "-B1".into(), "/var/cache/apt/archives".into()],
        QUERY_TIMEOUT_MS,
    )?;
    if out.exit_code != 0 {
        return Ok(None);
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok()))
}

fn bytes_text(bytes: u64) -> String {
    match bytes {
        b if b >= 10_000_000_000 => format!("{} GB", b / 1_000_000_000),
        b if b >= 10_000_000 => format!("{} MB", b / 1_000_000),
        b if b >= 10_000 => format!("{} kB", b / 1_000),
        b => format!("{b} B"),
    }
}

/// The versions of `pins`' packages read back after a transaction, as text.
fn read_back(
    device: &Device,
    before: &[Installed],
    pins: &[(String, String)],
) -> Result<(Vec<Installed>, String), PluginError> {
    let after = installed(device)?;
    let moved: Vec<String> = pins
        .iter()
        .map(|(package, _)| {
            let from = find(before, package).map_or("none", |p| p.version.as_str());
            let to = find(&after, package).map_or("none".to_string(), |p| {
                if p.healthy() {
                    p.version.clone()
                } else {
                    format!("{} ({})", p.version, state_name(&p.status))
                }
            });
            format!("{package} {from} -> {to}")
        })
        .collect();
    Ok((after, moved.join(", ")))
}

/// The patch's package as dpkg knows it, or why it cannot be changed.
fn target<'a>(
    device: &Device,
    installed: &'a [Installed],
    package: &str,
) -> Result<&'a Installed, String> {
    find(installed, package)
        .ok_or_else(|| format!("package {package} is not installed on {}", device.id))
}

guest_debian::wit_conversions!();

/// The device read through `exec`, as `guest_debian::scan` reads it.
fn read_device(device: &Device) -> Result<guest_debian::Scan, PluginError> {
    guest_debian::scan(
        None,
        |program, args| {
            run(program, args, QUERY_TIMEOUT_MS).map(|o| guest_debian::Output {
                exit_code: o.exit_code,
                stdout: o.stdout,
                stderr: o.stderr,
            })
        },
        |out| {
            dpkg_query_failed(
                device,
                &Output {
                    exit_code: out.exit_code,
                    stdout: out.stdout.clone(),
                    stderr: out.stderr.clone(),
                },
            )
        },
    )
}

impl Guest for AptInstaller {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "apt-installer".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "installs Debian packages with apt from the device's own repositories over the local or ssh transport".into(),
        }
    }

    fn preflight(device: Device, patch: Patch) -> Result<Readiness, PluginError> {
        if let Some(other) = patch.scheme.filter(|s| *s != VersionScheme::Deb) {
            return Ok(Readiness::Blocked(format!(
                "patch {} is for {} versions, and apt installs Debian packages (deb versions)",
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
        let (before, repaired) = match repair_dpkg(&device) {
            Ok(found) => found,
            Err(PluginError::Permanent(why)) => return Ok(Readiness::Blocked(why)),
            Err(e) => return Err(e),
        };
        let current = match target(&device, &before, &patch.component) {
            Ok(current) => current.clone(),
            Err(why) => return Ok(Readiness::Blocked(why)),
        };
        if current.version == patch.fixed_version && current.healthy() {
            return Ok(Readiness::AlreadyInstalled(current.version));
        }
        apt_update(&device)?;
        let (pins, versions) = group(&device, &before, &current, &patch.fixed_version)?;
        let held_by_repo = versions.get(&patch.component).cloned().unwrap_or_default();
        if !held_by_repo.iter().any(|v| v == &patch.fixed_version) {
            return Ok(Readiness::Blocked(format!(
                "the repositories of {} have no {} {} (they have: {})",
                device.id,
                patch.component,
                patch.fixed_version,
                if held_by_repo.is_empty() {
                    "none".to_string()
                } else {
                    held_by_repo.join(", ")
                }
            )));
        }
        let held: Vec<&str> = pins
            .iter()
            .filter_map(|(p, _)| find(&before, p))
            .filter(|p| p.status.starts_with('h'))
            .map(|p| p.package.as_str())
            .collect();
        if !held.is_empty() {
            return Ok(Readiness::Blocked(format!(
                "{} held on {} (apt-mark hold): apt will not change it; `apt-mark unhold {}` lets it",
                held.join(", "),
                device.id,
                held.join(" ")
            )));
        }
        let simulation = match simulate(&device, &pins)? {
            Ok(simulation) => simulation,
            Err(why) => {
                return Ok(Readiness::Blocked(format!(
                    "apt cannot install {}: {why}",
                    pins_text(&pins)
                )));
            }
        };
        if !simulation.held.is_empty() {
            return Ok(Readiness::Blocked(format!(
                "installing {} on {} would change held packages: {}",
                pins_text(&pins),
                device.id,
                simulation.held.join(", ")
            )));
        }
        if !simulation.removals.is_empty() {
            return Ok(Readiness::Blocked(format!(
                "installing {} on {} would remove {}: refused (the plugin never removes packages)",
                pins_text(&pins),
                device.id,
                simulation.removals.join(", ")
            )));
        }
        let (download, growth) = sizes(&device, &pins)?;
        let needed = download + growth.max(0) as u64;
        let free = free_bytes()?;
        if let Some(free) = free
            && free < needed
        {
            return Ok(Readiness::Blocked(format!(
                "not enough disk space on {} for {}: apt needs {} ({} to download, {} more installed) and /var/cache/apt/archives has {} free",
                device.id,
                pins_text(&pins),
                bytes_text(needed),
                bytes_text(download),
                bytes_text(growth.max(0) as u64),
                bytes_text(free)
            )));
        }
        let changes: Vec<String> = simulation
            .changes
            .iter()
            .map(|(p, from, to)| {
                if from.is_empty() {
                    format!("install {p} {to}")
                } else {
                    format!("{p} {from} -> {to}")
                }
            })
            .collect();
        log(
            Level::Info,
            &format!(
                "preflight on {}: apt would change, in one transaction: {}; {} to download, {} {} on disk, {} free in /var/cache/apt/archives{}",
                device.id,
                changes.join(", "),
                bytes_text(download),
                bytes_text(growth.unsigned_abs()),
                if growth < 0 { "freed" } else { "more" },
                free.map_or("unknown".to_string(), bytes_text),
                repaired.map_or(String::new(), |r| format!(" ({r})"))
            ),
        );
        Ok(Readiness::Ready)
    }

    fn install(device: Device, patch: Patch) -> Result<InstallOutcome, PluginError> {
        let (before, repaired) = repair_dpkg(&device)?;
        let current = target(&device, &before, &patch.component)
            .map_err(PluginError::Permanent)?
            .clone();
        if current.version == patch.fixed_version && current.healthy() {
            // Called again after a restart, or a package of the same source that an
            // earlier patch's transaction already brought here.
            return Ok(InstallOutcome {
                installed_version: current.version,
                reboot_pending: false,
                detail: "already installed".into(),
            });
        }
        apt_update(&device)?;
        let (pins, versions) = group(&device, &before, &current, &patch.fixed_version)?;
        if !versions
            .get(&patch.component)
            .is_some_and(|list| list.iter().any(|v| v == &patch.fixed_version))
        {
            return Err(PluginError::Permanent(format!(
                "the repositories of {} have no {} {}",
                device.id, patch.component, patch.fixed_version
            )));
        }
        let mut rest = vec!["install", "--only-upgrade"];
        rest.extend(TRANSACTION);
        let pinned = pin_args(&pins);
        rest.extend(pinned.iter().map(String::as_str));
        let out = run("apt-get", apt_args(&rest), INSTALL_TIMEOUT_MS)?;
        if out.exit_code != 0 {
            return Err(error_of(
                &format!("apt-get install {}", pins_text(&pins)),
                &device,
                &out,
            ));
        }
        let (after, moved) = read_back(&device, &before, &pins)?;
        let version = find(&after, &patch.component)
            .map(|p| p.version.clone())
            .unwrap_or_default();
        log(
            Level::Info,
            &format!("one apt transaction on {}: {moved}", device.id),
        );
        Ok(InstallOutcome {
            installed_version: version,
            reboot_pending: patch.reboot_required,
            detail: match repaired {
                Some(r) => format!("{r}; then one apt transaction: {moved}"),
                None => format!("one apt transaction: {moved}"),
            },
        })
    }

    fn verify(device: Device, patch: Patch) -> Result<VerifyReport, PluginError> {
        let installed = installed(&device)?;
        let package = find(&installed, &patch.component);
        let status = package.map(|p| {
            let ok = p.healthy();
            HealthCheck {
                name: "dpkg-status".into(),
                ok,
                detail: format!(
                    "{} {} is {} (`{}`)",
                    p.package,
                    p.version,
                    state_name(&p.status),
                    p.status.trim()
                ),
            }
        });
        let status = status.unwrap_or(HealthCheck {
            name: "dpkg-status".into(),
            ok: false,
            detail: format!("{} is not installed", patch.component),
        });
        let broken = interrupted(&installed);
        let audit = HealthCheck {
            name: "dpkg-state".into(),
            ok: broken.is_empty(),
            detail: if broken.is_empty() {
                "no package left half-way".into()
            } else {
                format!("left half-way: {}", half_way(&broken))
            },
        };
        Ok(VerifyReport {
            installed_version: package.map(|p| p.version.clone()),
            health: HealthReport {
                healthy: status.ok && audit.ok,
                checks: vec![status, audit],
            },
        })
    }

    fn rollback(
        device: Device,
        patch: Patch,
        target_version: RollbackTarget,
    ) -> Result<InstallOutcome, PluginError> {
        let version = target_version.version;
        if version.is_empty() {
            return Err(PluginError::Permanent(format!(
                "no version of {} to roll {} back to: the device's version before the patch is not known",
                patch.component, device.id
            )));
        }
        let before = installed(&device)?;
        let current = target(&device, &before, &patch.component)
            .map_err(PluginError::Permanent)?
            .clone();
        if current.version == version && current.healthy() {
            return Ok(InstallOutcome {
                installed_version: version,
                reboot_pending: false,
                detail: "already at the rollback version".into(),
            });
        }
        // No `dpkg --configure -a` first: the package that failed would fail again.
        // apt replaces a half-configured package as part of the downgrade.
        apt_update(&device)?;
        let (pins, versions) = group(&device, &before, &current, &version)?;
        let held = versions.get(&patch.component).cloned().unwrap_or_default();
        if !held.iter().any(|v| v == &version) {
            return Err(PluginError::Permanent(format!(
                "cannot roll {} back to {} {}: its repositories no longer have that version (they have: {}); publish it again or install it by hand",
                device.id,
                patch.component,
                version,
                if held.is_empty() {
                    "none".to_string()
                } else {
                    held.join(", ")
                }
            )));
        }
        let mut rest = vec!["install", "--allow-downgrades"];
        rest.extend(TRANSACTION);
        let pinned = pin_args(&pins);
        rest.extend(pinned.iter().map(String::as_str));
        let out = run("apt-get", apt_args(&rest), INSTALL_TIMEOUT_MS)?;
        if out.exit_code != 0 {
            return Err(error_of(
                &format!("apt-get install {} (rollback)", pins_text(&pins)),
                &device,
                &out,
            ));
        }
        let (after, moved) = read_back(&device, &before, &pins)?;
        log(
            Level::Info,
            &format!("rolled {} back in one apt transaction: {moved}", device.id),
        );
        Ok(InstallOutcome {
            installed_version: find(&after, &patch.component)
                .map(|p| p.version.clone())
                .unwrap_or_default(),
            reboot_pending: false,
            detail: format!("rolled back in one apt transaction: {moved}"),
        })
    }

    fn scan(device: Device) -> Result<DeviceScan, PluginError> {
        read_device(&device).map(device_scan)
    }

    fn boot_state(device: Device) -> Result<BootState, PluginError> {
        read_device(&device).map(|s| boot_state(s.boot))
    }

    fn reboot(device: Device) -> Result<String, PluginError> {
        let out = match run("systemctl", vec!["reboot".into()], QUERY_TIMEOUT_MS) {
            Err(PluginError::Transient(why)) if guest_debian::cut_by_the_restart(&why) => {
                return Ok(format!(
                    "systemctl reboot on {}: the connection closed as it went down",
                    device.id
                ));
            }
            out => out?,
        };
        if out.exit_code != 0 {
            return Err(error_of("systemctl reboot", &device, &out));
        }
        Ok(format!("systemctl reboot on {}", device.id))
    }
}

export!(AptInstaller);
