//! The plugin manifest, `<name>.plugin.toml` (or `plugin.toml`) beside the component.
//!
//! Parsed in two steps: a raw serde layer that refuses unknown keys, then validation
//! into [`Manifest`], so that every error names the file, the line and column, the key,
//! what was wrong and how to fix it.

use crate::limits::{self, Limits};
use ringleader_diag::Diagnostics;
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The WIT package version this host implements.
pub const WIT_VERSION: semver::Version = semver::Version::new(0, 1, 1);

/// Which world a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum World {
    /// Turns a vendor's feed into patches (`discover`).
    PatchSource,
    /// Installs, verifies and rolls back patches on devices.
    Installer,
}

impl World {
    pub const ALL: [World; 2] = [World::PatchSource, World::Installer];

    /// The world's name in WIT and in manifests.
    pub fn name(self) -> &'static str {
        match self {
            World::PatchSource => "patch-source",
            World::Installer => "installer",
        }
    }

    /// The interface a component of this world exports.
    pub fn export_interface(self) -> &'static str {
        match self {
            World::PatchSource => "patch-source-api",
            World::Installer => "installer-api",
        }
    }

    pub fn from_name(name: &str) -> Option<World> {
        World::ALL.into_iter().find(|w| w.name() == name)
    }

    pub fn from_export_interface(name: &str) -> Option<World> {
        World::ALL
            .into_iter()
            .find(|w| w.export_interface() == name)
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a plugin asks to be allowed to do. The operator's grants narrow it further.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Hosts the plugin may send HTTP requests to: `name`, `name:port`, or `{device}`
    /// (the hostname of the device the call is about).
    pub http: Vec<String>,
    /// Programs the plugin may run on the device through `exec`.
    pub exec: Vec<String>,
    /// Whether the plugin uses its key/value store.
    pub kv: bool,
}

/// A validated plugin manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Where it was read from.
    pub path: PathBuf,
    pub name: String,
    pub version: semver::Version,
    pub description: String,
    pub world: World,
    /// Version of the `ringleader:plugin` WIT package it was built against.
    pub wit_version: semver::Version,
    /// The component file, resolved against the manifest's directory.
    pub component: PathBuf,
    /// Expected lower-case hex SHA-256 of the component.
    pub sha256: String,
    pub capabilities: Capabilities,
    pub limits: Limits,
}

/// A manifest that could not be read or is not valid.
pub type ManifestError = ringleader_diag::FileError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: Spanned<String>,
    version: Spanned<String>,
    world: Spanned<String>,
    wit: Spanned<String>,
    #[serde(default)]
    description: String,
    component: Option<Spanned<String>>,
    sha256: Option<Spanned<String>>,
    #[serde(default)]
    capabilities: RawCapabilities,
    #[serde(default)]
    limits: RawLimits,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCapabilities {
    #[serde(default)]
    http: Vec<Spanned<String>>,
    #[serde(default)]
    exec: Vec<Spanned<String>>,
    #[serde(default)]
    kv: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    timeout: Option<Spanned<String>>,
    memory: Option<Spanned<String>>,
    hostcalls: Option<Spanned<u64>>,
}

impl Manifest {
    /// Reads and validates the manifest at `path`.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = ringleader_diag::read_file("plugin manifest", path)?;
        Manifest::parse(path, &text)
    }

    /// Validates manifest `text` read from `path` (used to resolve `component`).
    pub fn parse(path: &Path, text: &str) -> Result<Manifest, ManifestError> {
        let mut problems = Diagnostics::new(path, text);
        let raw: RawManifest = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                problems.toml_error(&e, "see docs/plugin-authors.md for the manifest format");
                return Err(ManifestError::Invalid(problems));
            }
        };
        let manifest = validate(path, raw, &mut problems);
        if problems.has_errors() {
            Err(ManifestError::Invalid(problems))
        } else {
            Ok(manifest)
        }
    }
}

fn validate(path: &Path, raw: RawManifest, p: &mut Diagnostics) -> Manifest {
    let name = raw.name.get_ref().clone();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        p.error(
            raw.name.span(),
            "name",
            format!("`{name}` is not a valid plugin name"),
            "use lower-case letters, digits and `-`, e.g. `acme-bios`",
        );
    }

    let version = semver::Version::parse(raw.version.get_ref()).unwrap_or_else(|e| {
        p.error(
            raw.version.span(),
            "version",
            format!("`{}` is not a semver version: {e}", raw.version.get_ref()),
            "write it as MAJOR.MINOR.PATCH, e.g. `1.0.0`",
        );
        semver::Version::new(0, 0, 0)
    });

    let world = World::from_name(raw.world.get_ref()).unwrap_or_else(|| {
        p.error(
            raw.world.span(),
            "world",
            format!("unknown world `{}`", raw.world.get_ref()),
            "expected `patch-source` or `installer`",
        );
        World::PatchSource
    });

    let wit_version = match semver::Version::parse(raw.wit.get_ref()) {
        Ok(v) if wit_compatible(&v) => v,
        Ok(v) => {
            p.error(
                raw.wit.span(),
                "wit",
                format!("WIT package version {v} is not supported by this host, which implements {WIT_VERSION}"),
                "build the plugin against a 0.1.x version of the ringleader:plugin WIT package",
            );
            v
        }
        Err(e) => {
            p.error(
                raw.wit.span(),
                "wit",
                format!("`{}` is not a semver version: {e}", raw.wit.get_ref()),
                "write the WIT package version, e.g. `0.1.0`",
            );
            WIT_VERSION
        }
    };

    let dir = path.parent().unwrap_or(Path::new("."));
    let component = match &raw.component {
        Some(c) if !c.get_ref().is_empty() => dir.join(c.get_ref()),
        Some(c) => {
            p.error(
                c.span(),
                "component",
                "the component file name is empty",
                "name the .wasm file beside this manifest",
            );
            PathBuf::new()
        }
        None => {
            // Default: `<name>.wasm` beside the manifest.
            dir.join(format!("{name}.wasm"))
        }
    };

    let sha256 = match &raw.sha256 {
        Some(s) => {
            let v = s.get_ref().to_ascii_lowercase();
            if v.len() != 64 || !v.chars().all(|c| c.is_ascii_hexdigit()) {
                p.error(
                    s.span(),
                    "sha256",
                    format!("`{}` is not a SHA-256 digest", s.get_ref()),
                    "64 hex digits; `ringleader plugin seal MANIFEST` writes it for you",
                );
            }
            v
        }
        None => {
            p.error(
                0..0,
                "sha256",
                "the manifest has no `sha256` of its component",
                "run `ringleader plugin seal MANIFEST` to add it",
            );
            String::new()
        }
    };

    let mut http = Vec::new();
    for entry in &raw.capabilities.http {
        let host = entry.get_ref();
        if host == "{device}" || valid_host_pattern(host) {
            http.push(host.to_ascii_lowercase());
        } else {
            p.error(
                entry.span(),
                "capabilities.http",
                format!("`{host}` is not a host name"),
                "write a host (`bmc.example.com`), a host and port (`10.0.0.5:8443`) or `{device}`; no scheme, path or wildcard",
            );
        }
    }
    let mut exec = Vec::new();
    for entry in &raw.capabilities.exec {
        let program = entry.get_ref();
        if program.is_empty() || program.contains(['/', ' ', '\\']) {
            p.error(
                entry.span(),
                "capabilities.exec",
                format!("`{program}` is not a program name"),
                "write a bare program name such as `dpkg-query`: no path, no arguments",
            );
        } else {
            exec.push(program.clone());
        }
    }

    let mut limits = Limits::default();
    if let Some(t) = &raw.limits.timeout {
        match humantime::parse_duration(t.get_ref()) {
            Ok(d) if !d.is_zero() && d <= limits::MAX_CALL_TIMEOUT => limits.timeout = d,
            Ok(_) => p.error(
                t.span(),
                "limits.timeout",
                format!("`{}` is out of range", t.get_ref()),
                "between 1ms and 2h",
            ),
            Err(e) => p.error(
                t.span(),
                "limits.timeout",
                format!("`{}` is not a duration: {e}", t.get_ref()),
                "write e.g. `30s`, `5m` or `1h`",
            ),
        }
    }
    if let Some(m) = &raw.limits.memory {
        match limits::parse_size(m.get_ref()) {
            Some(b) if (1 << 20..=limits::MAX_MEMORY_BYTES).contains(&b) => limits.memory_bytes = b,
            Some(_) => p.error(
                m.span(),
                "limits.memory",
                format!("`{}` is out of range", m.get_ref()),
                "between 1MiB and 1GiB",
            ),
            None => p.error(
                m.span(),
                "limits.memory",
                format!("`{}` is not a size", m.get_ref()),
                "write e.g. `64MiB` or `1GiB` (binary units)",
            ),
        }
    }
    if let Some(h) = &raw.limits.hostcalls {
        let n = *h.get_ref();
        if (1..=limits::MAX_HOSTCALLS).contains(&n) {
            limits.hostcalls = n;
        } else {
            p.error(
                h.span(),
                "limits.hostcalls",
                format!("{n} is out of range"),
                "between 1 and 1000000",
            );
        }
    }

    Manifest {
        path: path.to_owned(),
        name,
        version,
        description: raw.description,
        world,
        wit_version,
        component,
        sha256,
        capabilities: Capabilities {
            http,
            exec,
            kv: raw.capabilities.kv,
        },
        limits,
    }
}

/// Whether a component built against WIT package `version` can run on this host:
/// semver-compatible, i.e. the same major, and for 0.x the same minor. Within that,
/// older and newer patch levels both load: wasmtime matches imports and exports by
/// semver, and a plugin that uses a function this host lacks fails to link, by name.
pub fn wit_compatible(version: &semver::Version) -> bool {
    version.major == WIT_VERSION.major
        && (WIT_VERSION.major != 0 || version.minor == WIT_VERSION.minor)
}

/// `host` or `host:port`, with a DNS name or IP address as host.
fn valid_host_pattern(pattern: &str) -> bool {
    let (host, port) = match pattern.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (pattern, None),
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok());
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(Path::new("/p/x.plugin.toml"), text)
    }

    const GOOD: &str = r#"
name = "acme-bios"
version = "1.2.0"
world = "installer"
wit = "0.1.0"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"

[capabilities]
http = ["{device}", "downloads.acme.example:443"]
exec = ["dpkg-query"]
kv = true

[limits]
timeout = "45m"
memory = "128MiB"
hostcalls = 5000
"#;

    #[test]
    fn a_good_manifest_validates() {
        let m = parse(GOOD).unwrap();
        assert_eq!(m.name, "acme-bios");
        assert_eq!(m.world, World::Installer);
        assert_eq!(m.component, Path::new("/p/acme-bios.wasm"));
        assert_eq!(
            m.capabilities.http,
            ["{device}", "downloads.acme.example:443"]
        );
        assert_eq!(m.limits.timeout, std::time::Duration::from_secs(45 * 60));
        assert_eq!(m.limits.memory_bytes, 128 << 20);
        assert_eq!(m.limits.hostcalls, 5000);
    }

    #[test]
    fn an_unknown_key_is_an_error_with_its_place() {
        let text = GOOD.replace("kv = true", "kv = true\nfilesystem = true");
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.starts_with("/p/x.plugin.toml:12:1: `filesystem`"),
            "{err}"
        );
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn every_problem_is_reported_not_only_the_first() {
        let text = GOOD
            .replace("\"installer\"", "\"installr\"")
            .replace("\"45m\"", "\"forever\"")
            .replace("\"dpkg-query\"", "\"/bin/sh -c\"");
        let err = parse(&text).unwrap_err();
        let ManifestError::Invalid(problems) = &err else {
            panic!("{err}")
        };
        let keys: Vec<_> = problems.list.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["world", "capabilities.exec", "limits.timeout"]);
        assert_eq!((problems.list[0].line, problems.list[0].column), (4, 9));
    }

    #[test]
    fn an_unsupported_wit_major_is_refused() {
        let err = parse(&GOOD.replace("wit = \"0.1.0\"", "wit = \"1.0.0\""))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("WIT package version 1.0.0 is not supported"),
            "{err}"
        );
    }

    #[test]
    fn wit_compatibility_follows_semver() {
        let v = |s| semver::Version::parse(s).unwrap();
        assert!(wit_compatible(&v("0.1.0")));
        assert!(!wit_compatible(&v("0.2.0")));
        assert!(!wit_compatible(&v("1.0.0")));
        assert!(
            wit_compatible(&v("0.1.99")),
            "patch levels are compatible both ways"
        );
    }

    #[test]
    fn host_patterns() {
        assert!(valid_host_pattern("10.0.0.5:8443"));
        assert!(valid_host_pattern("bmc-1.example.com"));
        assert!(!valid_host_pattern("http://x"));
        assert!(!valid_host_pattern("*.example.com"));
        assert!(!valid_host_pattern("x:99999"));
    }
}
