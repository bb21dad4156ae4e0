//! CSAF 2.0 advisory source: reads a provider's security advisories (OASIS CSAF 2.0,
//! as Red Hat, SUSE, Siemens, Cisco and others publish them) and reports, per advisory
//! and package, the version that fixes it.
//!
//! Settings (`[plugins.csaf-source] settings = { index = "..." }` in the operator's
//! config): `index` is the URL of the provider's `index.txt` (CSAF's directory-based
//! distribution), one advisory path per line, relative to the index.
//!
//! From each advisory:
//! - every product listed as `fixed` in a vulnerability's `product_status` is resolved
//!   through the product tree (relationships, then the product version) to a package
//!   name and version: from its purl (`pkg:rpm/...@VERSION?epoch=E`, `pkg:deb/...`) when
//!   it has one, else from an RPM-style name `NAME-[EPOCH:]VERSION-RELEASE.ARCH`;
//! - the version's scheme from the purl's type (WIT 0.2.0): `pkg:deb` is `deb`,
//!   `pkg:rpm` `rpm`, `pkg:apk` `apk`; others, and RPM file names, name none;
//! - a patch per package: id `ADVISORY/PACKAGE` (`ADVISORY/PACKAGE/VERSION` when the
//!   advisory fixes the package at several versions, for several platforms), the
//!   advisory's CVEs, its severity (`aggregate_severity`, else the highest CVSS base
//!   score), its release date, and the vendor-fix URL as the artifact.
//!
//! A document that cannot be fetched or read is reported in the host's log (a
//! warning), naming the document and the place in it, and the other advisories are
//! read on. A document read that gives no patch says why at `info`: no `fixed`
//! product status (only `known_affected`, perhaps with a workaround), or fixed products
//! without a package and version (named by CPE only).

wit_bindgen::generate!({
    path: "../../wit/ringleader-plugin@0.2.0",
    world: "patch-source",
});

mod csaf;

use exports::ringleader::plugin::patch_source_api::Guest;
use ringleader::plugin::http::{self, Method, Request};
use ringleader::plugin::log::{Level, log};
use ringleader::plugin::settings;
use ringleader::plugin::types::{Device, Patch, PluginError, PluginInfo};
use std::collections::BTreeSet;

struct CsafSource;

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
        headers: vec![("accept".into(), "application/json, text/plain".into())],
        body: vec![],
        timeout_ms: Some(60_000),
    })?;
    if response.status != 200 {
        return Err(PluginError::Transient(format!(
            "{url} answered HTTP {}",
            response.status
        )));
    }
    if response.truncated {
        return Err(PluginError::Permanent(format!(
            "{url} is larger than the host's response limit"
        )));
    }
    Ok(response.body)
}

/// Why a fetch failed, as a sentence for the log (a `PluginError`'s `Debug` is Rust's).
fn why(error: &PluginError) -> String {
    match error {
        PluginError::Transient(m) => format!("{m} (transient error, tried twice)"),
        PluginError::Permanent(m) => m.clone(),
        PluginError::Denied(m) => format!("denied: {m}"),
    }
}

/// `relative` resolved against the URL of the index it was listed in.
fn resolve(index: &str, relative: &str) -> String {
    if relative.starts_with("http://") || relative.starts_with("https://") {
        return relative.to_string();
    }
    let base = index.rsplit_once('/').map_or(index, |(base, _)| base);
    format!("{base}/{}", relative.trim_start_matches('/'))
}

impl Guest for CsafSource {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "csaf-source".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "security advisories in CSAF 2.0 from a provider's index.txt".into(),
        }
    }

    fn discover(devices: Vec<Device>) -> Result<Vec<Patch>, PluginError> {
        let Some(index) = settings::get("index") else {
            return Err(PluginError::Permanent(
                "no advisory index configured: set `settings = { index = \"https://.../index.txt\" }` under [plugins.csaf-source] in the operator's config".into(),
            ));
        };
        // Only packages some device has are worth reporting.
        let installed: BTreeSet<&str> = devices
            .iter()
            .flat_map(|d| d.components.iter().map(|c| c.name.as_str()))
            .collect();
        let listing = String::from_utf8_lossy(&get(&index)?).into_owned();
        let mut patches = Vec::new();
        let (mut read, mut refused) = (0, 0);
        for line in listing
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let url = resolve(&index, line);
            let document = match get(&url) {
                Ok(bytes) => bytes,
                Err(e) => {
                    refused += 1;
                    log(
                        Level::Warn,
                        &format!("advisory {url} could not be fetched: {}", why(&e)),
                    );
                    continue;
                }
            };
            match csaf::patches(&document) {
                Ok(found) => {
                    read += 1;
                    if let Some(nothing) = &found.nothing {
                        log(
                            Level::Info,
                            &format!("advisory {url} gives no patch: {nothing}"),
                        );
                    }
                    patches.extend(
                        found
                            .patches
                            .into_iter()
                            .filter(|p| installed.contains(p.component.as_str())),
                    );
                }
                Err(why) => {
                    refused += 1;
                    log(
                        Level::Warn,
                        &format!("advisory {url} is not valid CSAF 2.0: {why}"),
                    );
                }
            }
        }
        log(
            Level::Info,
            &format!(
                "read {read} advisories ({refused} refused), {} patches for the devices' packages",
                patches.len()
            ),
        );
        Ok(patches)
    }
}

export!(CsafSource);
