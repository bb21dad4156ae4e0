//! Catalog source: an operator's own catalog of patches, a plain TOML or JSON file
//! (internal packages, the MSP's own agent, a one-off firmware hotfix), read from the
//! URL the operator sets and validated by the host's own `ringleader-catalog` (the
//! parser of `ringleader catalog check`).
//!
//! # Settings
//!
//! `[plugins.catalog-source] http = ["{setting:catalog}"], settings = { catalog =
//! "file:///etc/ringleader/catalog.toml" }`: `catalog` is a `file:///PATH` on the host
//! (read by the host only because it is exactly this setting) or an `https://` /
//! `http://` URL. JSON when the name ends in `.json`, TOML otherwise. The host answers
//! an unchanged file from what it kept (`ETag` / `Last-Modified`; a `304` from a web
//! server), so the `discover` of every chunk of devices reads it once.
//!
//! # What it returns
//!
//! The catalog's patches for components the devices have (by name), with the
//! prerequisites they name (whatever their component: the planner orders them). A
//! catalog with any problem fails `discover` with `plugin-error::permanent` carrying
//! every problem, one a line, each `FILE:LINE:COL: `key`: what (hint: how)`: a
//! half-right catalog is never half used.

wit_bindgen::generate!({
    path: "../../wit/ringleader-plugin@0.3.0",
    world: "patch-source",
});

use exports::ringleader::plugin::patch_source_api::Guest;
use ringleader::plugin::http::{self, Method, Request};
use ringleader::plugin::log::{Level, log};
use ringleader::plugin::settings;
use ringleader::plugin::types::{
    Artifact, Device, Patch, PatchKind, PluginError, PluginInfo, Severity, VersionScheme,
};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// Most patches one `discover` may return (the WIT's limit, enforced by the host).
const MAX_PATCHES: usize = 100_000;
/// How long reading the catalog may take.
const READ_TIMEOUT_MS: u32 = 20_000;

struct CatalogSource;

/// The catalog's URL as its problems name it: a file's path, or the URL without its
/// query (where a token may be).
fn shown(url: &str) -> &str {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    match url.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("file://") => &url[7..],
        _ => url,
    }
}

fn get(url: &str) -> Result<Vec<u8>, PluginError> {
    let response = http::send(&Request {
        method: Method::Get,
        url: url.into(),
        headers: vec![(
            "accept".into(),
            "application/toml, application/json, text/plain, */*".into(),
        )],
        body: vec![],
        timeout_ms: Some(READ_TIMEOUT_MS),
    })?;
    let place = shown(url);
    match response.status {
        200 => {}
        400..=499 if response.status != 408 && response.status != 429 => {
            return Err(PluginError::Permanent(format!(
                "{place} answered HTTP {}: check `catalog` under [plugins.catalog-source]",
                response.status
            )));
        }
        300..=399 => {
            return Err(PluginError::Permanent(format!(
                "{place} answered HTTP {} (a redirect, which the host does not follow): set `catalog` under [plugins.catalog-source] to the URL that answers 200",
                response.status
            )));
        }
        status => {
            return Err(PluginError::Transient(format!(
                "{place} answered HTTP {status}"
            )));
        }
    }
    if response.truncated {
        return Err(PluginError::Permanent(format!(
            "{place} is larger than the host's response limit (16 MiB): split the catalog, or leave out what no device has"
        )));
    }
    Ok(response.body)
}

fn scheme(s: ringleader_types::Scheme) -> VersionScheme {
    use ringleader_types::Scheme as S;
    match s {
        S::Deb => VersionScheme::Deb,
        S::Rpm => VersionScheme::Rpm,
        S::Apk => VersionScheme::Apk,
        S::Semver => VersionScheme::Semver,
        S::Vendor => VersionScheme::Vendor,
    }
}

fn patch_of(p: ringleader_types::Patch) -> Patch {
    use ringleader_types::{PatchKind as K, Severity as S};
    Patch {
        id: p.id,
        vendor: p.vendor,
        title: p.title,
        component: p.component,
        fixed_version: p.fixed_version,
        applies_to: p.applies_to,
        scheme: p.scheme.map(scheme),
        kind: match p.kind {
            K::Security => PatchKind::Security,
            K::Bugfix => PatchKind::Bugfix,
            K::Feature => PatchKind::Feature,
            K::Firmware => PatchKind::Firmware,
        },
        severity: match p.severity {
            S::Unknown => Severity::Unknown,
            S::Low => Severity::Low,
            S::Medium => Severity::Medium,
            S::High => Severity::High,
            S::Critical => Severity::Critical,
        },
        cves: p.cves,
        prerequisites: p.prerequisites,
        supersedes: p.supersedes,
        reboot_required: p.reboot_required,
        artifact: Artifact {
            url: p.artifact.url,
            sha256: p.artifact.sha256,
            size: p.artifact.size,
        },
        released: p.released,
    }
}

/// The patches of `catalog` for components `devices` have, with the prerequisites
/// they name (transitively), in the catalog's order.
pub fn for_devices(
    catalog: Vec<ringleader_types::Patch>,
    components: &BTreeSet<String>,
) -> Vec<ringleader_types::Patch> {
    let index: HashMap<&str, usize> = catalog
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.as_str(), i))
        .collect();
    let mut wanted = vec![false; catalog.len()];
    let mut todo: Vec<usize> = catalog
        .iter()
        .enumerate()
        .filter(|(_, p)| components.contains(&p.component))
        .map(|(i, _)| i)
        .collect();
    while let Some(i) = todo.pop() {
        if std::mem::replace(&mut wanted[i], true) {
            continue;
        }
        todo.extend(
            catalog[i]
                .prerequisites
                .iter()
                .filter_map(|id| index.get(id.as_str()).copied()),
        );
    }
    catalog
        .into_iter()
        .zip(wanted)
        .filter_map(|(p, w)| w.then_some(p))
        .collect()
}

impl Guest for CatalogSource {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "catalog-source".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "An operator's own catalog of patches (TOML or JSON)".into(),
        }
    }

    fn discover(devices: Vec<Device>) -> Result<Vec<Patch>, PluginError> {
        // As set, not trimmed: the host reads a file:// URL only when it is exactly the
        // operator's setting.
        let url = settings::get("catalog")
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| {
                PluginError::Permanent(
                    "no catalog: set `catalog` under [plugins.catalog-source] in the operator's config (settings = { catalog = \"file:///etc/ringleader/catalog.toml\" }) and grant it (http = [\"{setting:catalog}\"])".into(),
                )
            })?;
        let body = get(&url)?;
        let catalog = ringleader_catalog::parse_bytes(Path::new(shown(&url)), &body)
            .map_err(|e| PluginError::Permanent(e.to_string()))?;
        drop(body);
        let components: BTreeSet<String> = devices
            .into_iter()
            .flat_map(|d| d.components.into_iter().map(|c| c.name))
            .collect();
        let all = catalog.len();
        let patches = for_devices(catalog, &components);
        log(
            Level::Info,
            &format!(
                "read {}: {all} patches, {} for components these devices have",
                shown(&url),
                patches.len()
            ),
        );
        if patches.len() > MAX_PATCHES {
            return Err(PluginError::Permanent(format!(
                "{} has {} patches for these devices, more than the {MAX_PATCHES} one call may return",
                shown(&url),
                patches.len()
            )));
        }
        Ok(patches.into_iter().map(patch_of).collect())
    }
}

export!(CatalogSource);
