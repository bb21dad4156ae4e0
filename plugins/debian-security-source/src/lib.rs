//! Debian security source: reads the Debian Security Tracker's JSON
//! (<https://security-tracker.debian.org/tracker/data/json>) and reports, for the
//! releases and source packages the devices have, the versions that fix each issue, as
//! patches of the binary packages on the devices.
//!
//! # Settings
//!
//! `[plugins.debian-security-source] settings = { feed = "..." }` in the operator's
//! config: `feed` is the URL of the tracker's JSON; when not set, the tracker's own
//! (`https://security-tracker.debian.org/tracker/data/json`). Its host must be granted
//! (see `plugin.toml`). The plugin asks for `Accept-Encoding: gzip`; the body may be
//! plain JSON or gzip (told apart by its first bytes, so a mirror may serve
//! `json.gz`), up to the host's response limit (16 MiB), read as a stream. Redirects
//! are not followed: give the URL that answers 200. The host revalidates the GET
//! (`ETag` / `Last-Modified`, the tracker sends `Last-Modified`): an unchanged file
//! costs a `304`.
//!
//! # Devices
//!
//! - The release is the device's fact `os-codename` (the host adds it from a scan,
//!   WIT 0.3.0, where the inventory sets none), else `codename`; a device with neither
//!   is skipped with an info line saying how to set it, and one whose `os-id` is not
//!   `debian` is skipped too.
//! - Its packages are its components with scheme `deb` or none; each one's source
//!   package is `component.source` (`dpkg-query`'s `${source:Package}`, WIT 0.3.0) or,
//!   when none is given, the component's own name (right for `bash`, not for `libc6`:
//!   name the source in the inventory or scan the device).
//!
//! # Mapping
//!
//! For every (release, source package) of the devices, every issue of the source whose
//! entry for the release is `resolved` with a `fixed_version` (not `0`, "never
//! affected") gives a fixed version; for each fixed version, one patch per binary
//! package of that source on the devices of that release:
//! - `id` `debian:RELEASE:SOURCE:FIXED:BINARY`, `component` the binary package,
//!   `fixed-version` FIXED, `applies-to` `< FIXED`, scheme `deb`, kind `security`,
//!   vendor `debian`;
//! - `cves`: every CVE of the source fixed at FIXED or below in the release (`TEMP-`
//!   issues count, in the title, but are no CVEs); `severity` the highest of their
//!   urgencies (`mapping::severity`: `unimportant` and `low` low, `medium`, `high`, a
//!   `**` suffix read as the urgency itself, `not yet assigned` and `end-of-life`
//!   unknown);
//! - `supersedes` the same binary's patches at lower fixed versions of the release;
//!   `prerequisites` none: the binaries of one source fixed together are installed in
//!   one transaction by apt-installer, which upgrades every installed binary of the
//!   patch's source package at the same version together (the other patches of the
//!   group then find their version installed);
//! - `released` 0: the tracker's JSON has no dates; `artifact` empty: apt fetches the
//!   packages from the device's own repositories; `reboot-required` false.
//!
//! `open` and `undetermined` issues (no fix yet) are no patches: each is an info line
//! (`CVE-x open in bookworm for glibc (no fix yet): libc6 on db1`), at most
//! [`MAX_INFO`] per call, then one line counts the rest. Entries that cannot be used
//! (an unknown status, a `fixed_version` that is not a Debian version) are warnings. A
//! file that is not the tracker's JSON fails the call with `plugin-error::permanent`
//! naming the URL, the path of keys, the line and column, and what was expected.

wit_bindgen::generate!({
    path: "../../wit/ringleader-plugin@0.3.0",
    world: "patch-source",
});

pub mod feed;
pub mod mapping;

use exports::ringleader::plugin::patch_source_api::Guest;
use ringleader::plugin::http::{self, Method, Request};
use ringleader::plugin::log::{Level, log};
use ringleader::plugin::settings;
use ringleader::plugin::types::{
    Artifact, Device, Patch, PatchKind, PluginError, PluginInfo, Severity, VersionScheme,
};

/// The tracker's own file, when the operator sets no `feed`.
pub const DEFAULT_FEED: &str = "https://security-tracker.debian.org/tracker/data/json";

/// Most info lines per call (each a host call); the rest are counted in one line.
pub const MAX_INFO: usize = 200;
/// Most warnings per call.
const MAX_WARNINGS: usize = 50;
/// Most patches one `discover` may return (the WIT's limit, enforced by the host).
const MAX_PATCHES: usize = 100_000;
/// How long the download may take: the file is several MiB.
const DOWNLOAD_TIMEOUT_MS: u32 = 120_000;

struct DebianSecuritySource;

/// The body of `url`; a transient failure (a dropped connection) is tried once more.
fn get(url: &str) -> Result<Vec<u8>, PluginError> {
    match get_once(url) {
        Err(PluginError::Transient(_)) => get_once(url),
        other => other,
    }
}

fn get_once(url: &str) -> Result<Vec<u8>, PluginError> {
    let response = http::send(&Request {
        method: Method::Get,
        url: url.into(),
        headers: vec![
            (
                "accept".into(),
                "application/json, application/gzip, */*".into(),
            ),
            ("accept-encoding".into(), "gzip".into()),
        ],
        body: vec![],
        timeout_ms: Some(DOWNLOAD_TIMEOUT_MS),
    })?;
    match response.status {
        200 => {}
        300..=399 => {
            let location = response
                .headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("location"))
                .map_or("", |(_, value)| value.as_str());
            return Err(PluginError::Permanent(format!(
                "{url} answered HTTP {} (a redirect to `{location}`, which the host does not follow): set `feed` under [plugins.debian-security-source] to the URL that answers 200",
                response.status
            )));
        }
        400..=499 if response.status != 408 && response.status != 429 => {
            return Err(PluginError::Permanent(format!(
                "{url} answered HTTP {}: check `feed` under [plugins.debian-security-source]",
                response.status
            )));
        }
        status => {
            return Err(PluginError::Transient(format!(
                "{url} answered HTTP {status}"
            )));
        }
    }
    if response.truncated {
        return Err(PluginError::Permanent(format!(
            "{url} is larger than the host's response limit (16 MiB): serve it gzip-compressed (the tracker does when asked; a mirror may serve `json.gz`)"
        )));
    }
    Ok(response.body)
}

/// A device as the mapping reads it.
fn host_of(device: Device) -> mapping::Host {
    mapping::Host {
        id: device.id,
        facts: device.facts,
        packages: device
            .components
            .into_iter()
            .map(|c| mapping::Package {
                deb: matches!(c.scheme, None | Some(VersionScheme::Deb)),
                name: c.name,
                source: c.source,
            })
            .collect(),
    }
}

fn patch_of(fix: mapping::Fix) -> Patch {
    Patch {
        applies_to: format!("< {}", fix.fixed_version),
        id: fix.id,
        vendor: "debian".into(),
        title: fix.title,
        component: fix.binary,
        fixed_version: fix.fixed_version,
        scheme: Some(VersionScheme::Deb),
        kind: PatchKind::Security,
        severity: match fix.severity {
            mapping::Severity::Unknown => Severity::Unknown,
            mapping::Severity::Low => Severity::Low,
            mapping::Severity::Medium => Severity::Medium,
            mapping::Severity::High => Severity::High,
        },
        cves: fix.cves,
        prerequisites: vec![],
        supersedes: fix.supersedes,
        reboot_required: false,
        artifact: Artifact {
            url: String::new(),
            sha256: String::new(),
            size: 0,
        },
        released: 0,
    }
}

/// Logs `lines` at `level`, at most `max`, then one line counting the rest.
fn log_some(level: Level, lines: &[String], max: usize, what: &str) {
    for line in lines.iter().take(max) {
        log(level, line);
    }
    if lines.len() > max {
        log(
            level,
            &format!(
                "{} more {what} (only the first {max} are listed)",
                lines.len() - max
            ),
        );
    }
}

impl Guest for DebianSecuritySource {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "debian-security-source".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Debian security fixes from the Debian Security Tracker".into(),
        }
    }

    fn discover(devices: Vec<Device>) -> Result<Vec<Patch>, PluginError> {
        let url = settings::get("feed")
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| DEFAULT_FEED.to_string());
        let hosts: Vec<mapping::Host> = devices.into_iter().map(host_of).collect();
        let (wanted, fleet, skipped) = mapping::wanted(&hosts);
        log_some(Level::Info, &skipped, MAX_INFO, "devices skipped");
        if wanted.sources.is_empty() {
            log(
                Level::Info,
                "no device names a Debian release and has Debian packages: nothing to read",
            );
            return Ok(vec![]);
        }
        let body = get(&url)?;
        let feed = feed::read(&body, &url, &wanted).map_err(PluginError::Permanent)?;
        drop(body);
        let report = mapping::map(&fleet, &feed);
        log_some(Level::Info, &report.info, MAX_INFO, "issues without a fix");
        log_some(
            Level::Warn,
            &report.warnings,
            MAX_WARNINGS,
            "entries skipped",
        );
        log(
            Level::Info,
            &format!(
                "read {url}: {} source packages, {} of them on {} devices of {} ({}); {} patches, {} issues without a fix yet",
                feed.sources_read,
                feed.sources.len(),
                report.devices,
                if wanted.releases.len() == 1 {
                    "release"
                } else {
                    "releases"
                },
                wanted
                    .releases
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                report.fixes.len(),
                report.unfixed,
            ),
        );
        if report.fixes.len() > MAX_PATCHES {
            return Err(PluginError::Permanent(format!(
                "{url} has {} fixes for these devices' packages, more than the {MAX_PATCHES} patches one call may return: ask about fewer devices at a time",
                report.fixes.len()
            )));
        }
        Ok(report.fixes.into_iter().map(patch_of).collect())
    }
}

export!(DebianSecuritySource);
