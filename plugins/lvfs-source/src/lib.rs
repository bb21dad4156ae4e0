//! LVFS firmware source: reads the firmware catalog that the Linux Vendor Firmware
//! Service publishes for fwupd (AppStream metadata, `firmware.xml.gz`) and reports, per
//! firmware component and release, the cabinet archive that updates a device to it.
//!
//! # Settings
//!
//! `[plugins.lvfs-source] settings = { metadata = "..." }` in the operator's config:
//! `metadata` is the URL of the metadata file, e.g.
//! `https://cdn.fwupd.org/downloads/firmware.xml.gz` (LVFS's stable remote), a vendor's
//! own fwupd remote, or a local mirror. Its host must be granted (see `plugin.toml`).
//! The body may be plain XML, gzip or zstd (`firmware.xml.zst`), told apart by its
//! magic bytes, up to the host's response limit (16 MiB) and [`body::MAX_XML_BYTES`]
//! once decompressed. Redirects are not followed: give the URL that answers 200.
//!
//! # Naming: the AppStream id
//!
//! A firmware component is named by its AppStream `<id>`, e.g.
//! `com.hughski.ColorHug2.firmware`, and inventories must name the device's component
//! the same way: `components = { "com.hughski.ColorHug2.firmware" = "2.0.6" }`
//! (`fwupdmgr get-updates --json` shows it as `AppstreamId` of a device's releases).
//! `discover` returns patches only for ids some given device has; the host decides
//! which device needs which version.
//!
//! # Mapping
//!
//! One patch per release (`<component type="firmware">` / `<releases>` / `<release>`)
//! of a component some device has. LVFS lists each uploaded firmware as a component of
//! its own with one release; releases of every component with the same id are taken
//! together.
//! - `id` `lvfs:<component id>/<version>`; `component` the `<id>`; `fixed-version` the
//!   release's `version`; `kind` firmware.
//! - `vendor` the `<developer_name>` (or AppStream 1.0's `<developer><name>`), else
//!   `lvfs`; `title` `<name> <version>` (the untranslated name, else the summary).
//! - `severity` from `urgency` (`low`, `medium`, `high`, `critical`; else unknown);
//!   `cves` from `<issues><issue type="cve">`.
//! - `released` from `timestamp` (seconds), else `date` (`YYYY-MM-DD` at 00:00 UTC, or
//!   an RFC 3339 time).
//! - `artifact`: the release's `<location>` (resolved against the metadata URL when
//!   relative: `./fakedevice124.cab` is in the metadata file's directory), the
//!   `<checksum type="sha256" target="container">` (the cabinet's, not the payload's)
//!   and `<size type="download">` (0 when absent). When the release itself has no
//!   location with a SHA-256, the first `<artifacts><artifact type="binary">` that has
//!   both (AppStream 1.0's form) is used.
//! - `supersedes` the ids of the component's older releases that are reported too,
//!   ordered by version (numeric dotted parts), not by their order in the file.
//! - `applies-to`: empty (any version below the fixed one) unless the component or the
//!   release `<requires>` a version of the device's own firmware,
//!   `<firmware compare="OP" version="V"/>` with no text: `ge`, `gt`, `le`, `lt`, `eq`
//!   and `ne` become `>=V`, `>V`, `<=V`, `<V`, `=V` and `<V || >V`, each with
//!   `, <FIXED`. `compare="any"` and `<id>org.freedesktop.fwupd</id>` (the fwupd
//!   daemon's version) are no condition.
//! - `reboot-required` when the component is in category `X-System` (system firmware,
//!   flashed as a UEFI capsule at the next boot); `prerequisites` empty.
//!
//! # Skipped, with a warning in the host's log naming the component and the line
//!
//! - A release without `<checksum type="sha256" target="container">` (older metadata
//!   has sha1 only): Ringleader verifies every artifact by SHA-256.
//! - A release whose SHA-256 is not 64 hex digits, or without an `http(s)` location.
//! - A release with a requirement a version range cannot express, which is left to
//!   fwupd on a desktop but which Ringleader cannot check: another device's firmware
//!   (a GUID, `bootloader`, `depth`), a `glob` or `regex` comparison, `<hardware>`,
//!   `<client>`, another component's `<id>`.
//! - A malformed component (no `version` on a release, no `timestamp` or `date`, a
//!   size that is not a number): the whole component; the rest of the file is read.
//! - A second release of the same component and version: the first is used.
//!
//! At most [`MAX_WARNINGS`] warnings are logged per call, then one line counts the rest.
//! Components no device has are not checked at all. A file that is not well-formed XML,
//! or whose root is not `<components>` (or a single `<component>`), fails the call with
//! `plugin-error::permanent` naming the URL, the line and column, and what was expected.

wit_bindgen::generate!({
    path: "../../wit/ringleader-plugin@0.1.1",
    world: "patch-source",
});

mod body;
mod catalog;

mod version;

use exports::ringleader::plugin::patch_source_api::Guest;
use ringleader::plugin::http::{self, Method, Request};
use ringleader::plugin::log::{Level, log};
use ringleader::plugin::settings;
use ringleader::plugin::types::{Device, Patch, PluginError, PluginInfo};
use std::collections::BTreeSet;

/// Most warnings logged per call: each is a host call, and a catalog a device fleet
/// barely touches must not flood the log. The rest are counted in one line.
const MAX_WARNINGS: usize = 50;

/// Most patches one `discover` may return (the WIT's limit, enforced by the host).
const MAX_PATCHES: usize = 100_000;

/// How long the metadata download may take: the LVFS catalog is several MiB.
const DOWNLOAD_TIMEOUT_MS: u32 = 120_000;

struct LvfsSource;

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
        headers: vec![(
            "accept".into(),
            "application/gzip, application/zstd, application/xml, text/xml, */*".into(),
        )],
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
                "{url} answered HTTP {} (a redirect to `{location}`, which the host does not follow): set `metadata` to the URL that answers 200",
                response.status
            )));
        }
        // Not there, or not allowed: asking again will not help.
        400..=499 if response.status != 408 && response.status != 429 => {
            return Err(PluginError::Permanent(format!(
                "{url} answered HTTP {}: check `metadata` under [plugins.lvfs-source]",
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
            "{url} is larger than the host's response limit: use the compressed metadata (firmware.xml.gz or .zst)"
        )));
    }
    Ok(response.body)
}

impl Guest for LvfsSource {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "lvfs-source".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "device firmware from LVFS / fwupd AppStream metadata".into(),
        }
    }

    fn discover(devices: Vec<Device>) -> Result<Vec<Patch>, PluginError> {
        let Some(url) = settings::get("metadata").filter(|u| !u.trim().is_empty()) else {
            return Err(PluginError::Permanent(
                "no LVFS metadata configured: set `settings = { metadata = \"https://cdn.fwupd.org/downloads/firmware.xml.gz\" }` under [plugins.lvfs-source] in the operator's config".into(),
            ));
        };
        let url = url.trim();
        // Only firmware some device has is worth reading.
        let installed: BTreeSet<&str> = devices
            .iter()
            .flat_map(|d| d.components.iter().map(|c| c.name.as_str()))
            .collect();
        let xml = body::xml(get(url)?, url).map_err(PluginError::Permanent)?;
        let catalog = catalog::read(&xml, url, &installed).map_err(PluginError::Permanent)?;
        for warning in catalog.warnings.iter().take(MAX_WARNINGS) {
            log(Level::Warn, warning);
        }
        if catalog.warnings.len() > MAX_WARNINGS {
            log(
                Level::Warn,
                &format!(
                    "{} more releases or components skipped (only the first {MAX_WARNINGS} are listed)",
                    catalog.warnings.len() - MAX_WARNINGS
                ),
            );
        }
        log(
            Level::Info,
            &format!(
                "read {url}: {} firmware components, {} of them on the devices, {} patches ({} skipped)",
                catalog.components,
                catalog.relevant,
                catalog.patches.len(),
                catalog.warnings.len()
            ),
        );
        if catalog.patches.len() > MAX_PATCHES {
            return Err(PluginError::Permanent(format!(
                "{url} has {} releases for these devices' firmware, more than the {MAX_PATCHES} patches one call may return: ask about fewer devices at a time",
                catalog.patches.len()
            )));
        }
        Ok(catalog.patches)
    }
}

export!(LvfsSource);
