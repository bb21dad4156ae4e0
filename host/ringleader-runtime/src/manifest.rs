//! The plugin manifest, `<name>.plugin.toml` (or `plugin.toml`) beside the component.
//!
//! Parsed in two steps: a raw serde layer that refuses unknown keys, then validation
//! into [`Manifest`], so that every error names the file, the line and column, the key,
//! what was wrong and how to fix it.

use crate::limits::{self, Limits};
use ringleader_diag::Diagnostics;
use serde::Deserialize;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The newest WIT package version this host implements.
pub const WIT_VERSION: semver::Version = semver::Version::new(0, 2, 0);

/// Every WIT package version this host implements (each links the earlier patch
/// levels of its minor version: 0.1.0 components run on 0.1.1).
pub const WIT_VERSIONS: [semver::Version; 3] = [
    semver::Version::new(0, 1, 1),
    semver::Version::new(0, 2, 0),
    semver::Version::new(0, 3, 0),
];

/// [`WIT_VERSIONS`] as people read them.
pub const WIT_VERSIONS_TEXT: &str = "0.1.1, 0.2.0 and 0.3.0";

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
    /// Hosts the plugin may send HTTP requests to: `name`, `name:port`, `{device}` (the
    /// hostname of the device the call is about), or `{setting:KEY}` (the host and port
    /// of the URL the operator sets as the plugin's setting `KEY`).
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
    /// What is valid but probably not as meant (warnings only), located in the file.
    diagnostics: Diagnostics,
}

impl Manifest {
    /// Its warnings, each `file:line:col: warning: `key`: what (hint: how to fix it)`:
    /// from validation, and those found when its component was loaded.
    pub fn warnings(&self) -> Vec<String> {
        self.diagnostics
            .warnings()
            .map(|d| self.diagnostics.format(d))
            .collect()
    }

    /// Records a warning about the value at `path` of the manifest.
    pub(crate) fn warn_at(
        &mut self,
        path: &[ringleader_diag::Seg<'_>],
        message: String,
        hint: &str,
    ) {
        self.diagnostics.warning_at(path, message, hint);
        self.diagnostics.sort();
    }
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
        let mut manifest = validate(path, raw, &mut problems);
        if problems.has_errors() {
            Err(ManifestError::Invalid(problems))
        } else {
            problems.sort();
            manifest.diagnostics = problems;
            Ok(manifest)
        }
    }
}

/// The manifest as the runtime reads it, every problem recorded in `p`: each part is
/// checked by its own function.
fn validate(path: &Path, raw: RawManifest, p: &mut Diagnostics) -> Manifest {
    let (name, version, world, wit_version) = identity(&raw, p);
    let component = component_path(path, raw.component.as_ref(), &name, p);
    let sha256 = sha256_of(raw.sha256.as_ref(), p);
    let capabilities = capabilities(&raw, p);
    let limits = limits_of(&raw.limits, p);

    Manifest {
        path: path.to_owned(),
        name,
        version,
        description: raw.description,
        world,
        wit_version,
        component,
        sha256,
        capabilities,
        limits,
        diagnostics: Diagnostics::new(path, ""),
    }
}

/// Who the plugin says it is: `name`, `version`, `world`, `wit`, each checked.
fn identity(
    raw: &RawManifest,
    p: &mut Diagnostics,
) -> (String, semver::Version, World, semver::Version) {
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
                format!("WIT package version {v} is not supported by this host, which implements {WIT_VERSIONS_TEXT}"),
                "build the plugin against a 0.1.x, 0.2.x or 0.3.x version of the ringleader:plugin WIT package",
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
    (name, version, world, wit_version)
}

/// Where the component is: `component` beside the manifest, else `NAME.wasm`.
fn component_path(
    path: &Path,
    raw: Option<&Spanned<String>>,
    name: &str,
    p: &mut Diagnostics,
) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    match raw {
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
    }
}

/// The component's SHA-256 as sealed: 64 hex digits, lower-cased.
fn sha256_of(raw: Option<&Spanned<String>>, p: &mut Diagnostics) -> String {
    match raw {
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
    }
}

/// `capabilities`: hosts (`http`), programs (`exec`) and `kv`; a patch source
/// declaring `exec` is warned about.
fn capabilities(raw: &RawManifest, p: &mut Diagnostics) -> Capabilities {
    let mut http = Vec::new();
    for entry in &raw.capabilities.http {
        match http_pattern(entry.get_ref()) {
            Ok(pattern) => http.push(pattern),
            Err(HostProblem { message, hint }) => {
                p.error(entry.span(), "capabilities.http", message, hint);
            }
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
    // (Not for a world that is not known: that is its error.)
    if World::from_name(raw.world.get_ref()) == Some(World::PatchSource)
        && let Some(first) = raw.capabilities.exec.first()
    {
        p.warning(
            first.span(),
            "capabilities.exec",
            "a patch source has no device to run programs on: `exec` is always denied to it, whatever the operator grants",
            "remove `capabilities.exec`; installers run programs on devices",
        );
    }
    Capabilities {
        http,
        exec,
        kv: raw.capabilities.kv,
    }
}

/// `limits`: timeout, memory and host calls, each within the host's bounds.
fn limits_of(raw: &RawLimits, p: &mut Diagnostics) -> Limits {
    let mut limits = Limits::default();
    if let Some(t) = &raw.timeout {
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
    if let Some(m) = &raw.memory {
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
    if let Some(h) = &raw.hostcalls {
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
    limits
}

/// Whether a component built against WIT package `version` can run on this host:
/// semver-compatible, i.e. the same major, and for 0.x the same minor. Within that,
/// older and newer patch levels both load: wasmtime matches imports and exports by
/// semver, and a plugin that uses a function this host lacks fails to link, by name.
pub fn wit_compatible(version: &semver::Version) -> bool {
    WIT_VERSIONS.iter().any(|implemented| {
        version.major == implemented.major
            && (implemented.major != 0 || version.minor == implemented.minor)
    })
}

/// What is wrong with a `capabilities.http` entry.
pub(crate) struct HostProblem {
    pub(crate) message: String,
    pub(crate) hint: &'static str,
}

/// The `KEY` of a `{setting:KEY}` entry: the host of the URL the operator gives in the
/// setting `KEY` (a feed's, a mirror's). The manifest says which setting may name a
/// host; the operator's config says which host, and nothing else is reached.
pub fn setting_key(pattern: &str) -> Option<&str> {
    pattern.strip_prefix("{setting:")?.strip_suffix('}')
}

/// Whether `key` can be named in a `{setting:KEY}` entry: what a TOML bare key may be.
fn setting_key_valid(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

const HOST_HINT: &str = "write a host (`bmc.example.com`), a host and port (`10.0.0.5:8443`), an IPv6 address in brackets (`[fd00::5]:8443`) or `{device}`; no scheme, path or wildcard";

/// A `capabilities.http` entry, validated and normalized (lower case, IPv6 in its
/// canonical form): `{device}`, `{setting:KEY}`, `host` or `host:port`, where host is a
/// DNS name, a dotted-decimal IPv4 address or a bracketed IPv6 address that is not
/// special-purpose (see [`special_purpose`]).
pub(crate) fn http_pattern(entry: &str) -> Result<String, HostProblem> {
    if entry == "{device}" {
        return Ok(entry.to_owned());
    }
    if entry.starts_with("{setting:") {
        return match setting_key(entry) {
            Some(key) if setting_key_valid(key) => Ok(entry.to_owned()),
            _ => Err(HostProblem {
                message: format!("`{entry}` is not a setting's host"),
                hint: "write `{setting:KEY}`, KEY the setting that holds the URL (letters, digits, `-`, `_`, `.`), e.g. `{setting:index}`",
            }),
        };
    }
    let not_a_host = |why: &str| HostProblem {
        message: format!("`{entry}` is not a host name{why}"),
        hint: HOST_HINT,
    };
    let (host, port) = split_host_port(entry).ok_or_else(|| not_a_host(""))?;
    if let Some(p) = port
        && p.parse::<u16>().is_err()
    {
        let digits = !p.is_empty() && p.chars().all(|c| c.is_ascii_digit());
        return Err(not_a_host(if digits {
            ": the port is not a number from 0 to 65535"
        } else {
            ""
        }));
    }
    let port = port.map_or(String::new(), |p| format!(":{p}"));
    let ip = if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or_else(|| not_a_host(""))?;
        if inner.contains('%') {
            return Err(not_a_host(": IPv6 zone ids (`%eth0`) cannot be declared"));
        }
        let ip: Ipv6Addr = inner
            .parse()
            .map_err(|_| not_a_host(": not an IPv6 address between the brackets"))?;
        IpAddr::V6(ip)
    } else if host.contains(':') {
        return Err(HostProblem {
            message: format!("`{entry}` is an IPv6 address without brackets"),
            hint: "write IPv6 addresses in brackets, with the port after them: `[fd00::5]` or `[fd00::5]:8443`",
        });
    } else if looks_numeric(host) {
        // Resolvers read `2852039166`, `0251.254.169.254` or `0xa9.254.169.254` as
        // addresses (169.254.169.254): only the plain dotted-decimal form is declared.
        let ip: Ipv4Addr = host.parse().map_err(|_| HostProblem {
            message: format!("`{entry}` is not a dotted-decimal IPv4 address"),
            hint: "write IPv4 addresses as four decimal numbers without leading zeros (`10.0.0.5`); a name's last label is never all digits",
        })?;
        IpAddr::V4(ip)
    } else if !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Ok(format!("{}{port}", host.to_ascii_lowercase()));
    } else {
        return Err(not_a_host(""));
    };
    if let Some(what) = special_purpose(ip) {
        return Err(HostProblem {
            message: format!("`{entry}` is {what}, not a host a plugin may reach"),
            hint: "declare the vendor's host by name or its routable address; a device's own address (even a link-local one) is reached with `{device}`",
        });
    }
    Ok(match ip {
        IpAddr::V4(ip) => format!("{ip}{port}"),
        IpAddr::V6(ip) => format!("[{ip}]{port}"),
    })
}

/// `host` and the port text after its last `:`, with IPv6 hosts in brackets.
pub(crate) fn split_host_port(entry: &str) -> Option<(&str, Option<&str>)> {
    if entry.starts_with('[') {
        let end = entry.find(']')?;
        let (host, rest) = entry.split_at(end + 1);
        return match rest {
            "" => Some((host, None)),
            _ => Some((host, Some(rest.strip_prefix(':')?))),
        };
    }
    Some(match entry.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (entry, None),
    })
}

/// Whether a host is meant as an IPv4 address: its last label is all digits (no
/// top-level domain is), or a label is hexadecimal (`0x7f`).
fn looks_numeric(host: &str) -> bool {
    let last = host.rsplit('.').next().unwrap_or(host);
    (!last.is_empty() && last.chars().all(|c| c.is_ascii_digit()))
        || host
            .split('.')
            .any(|label| label.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("0x")))
}

/// What a special-purpose address is, when a plugin must not declare it: no HTTP
/// server is meant to be reached there (unspecified, broadcast, multicast, reserved),
/// or it is the host's own link (link-local, where cloud instance metadata and its
/// credentials are served). IPv4 addresses written as IPv6 (mapped, NAT64) count as
/// the IPv4 address they stand for. Loopback and private ranges are allowed: local
/// services and BMC networks live there.
pub fn special_purpose(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return special_v4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                // NAT64 well-known prefix (RFC 6052): the IPv4 address in the last 32 bits.
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return special_v4(Ipv4Addr::new(a, b, c, d));
            }
            if v6.is_unspecified() {
                Some("the unspecified address")
            } else if v6.is_multicast() {
                Some("a multicast address")
            } else if v6.is_unicast_link_local() {
                Some("a link-local address")
            } else if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some("the cloud instance metadata service (link-local)")
            } else {
                None
            }
        }
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) {
        Some("the cloud instance metadata service (link-local)")
    } else if ip.is_unspecified() {
        Some("the unspecified address")
    } else if a == 0 {
        Some("in 0.0.0.0/8 (\"this network\"), never a destination")
    } else if ip.is_broadcast() {
        Some("the broadcast address")
    } else if (a, b) == (169, 254) {
        Some("a link-local address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if a >= 240 {
        Some("a reserved address (240.0.0.0/4)")
    } else {
        None
    }
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
    fn a_patch_source_declaring_exec_is_valid_with_a_located_warning() {
        let m = parse(&GOOD.replace("\"installer\"", "\"patch-source\"")).unwrap();
        let warnings = m.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("/p/x.plugin.toml:")
                && warnings[0]
                    .contains(": warning: `capabilities.exec`: a patch source has no device"),
            "{warnings:?}"
        );
        assert!(parse(GOOD).unwrap().warnings().is_empty());
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
        assert!(wit_compatible(&v("0.2.0")));
        assert!(wit_compatible(&v("0.3.0")));
        assert!(!wit_compatible(&v("0.4.0")));
        assert!(!wit_compatible(&v("1.0.0")));
        assert!(
            wit_compatible(&v("0.1.99")),
            "patch levels are compatible both ways"
        );
    }

    #[test]
    fn host_patterns() {
        let ok = |e: &str| http_pattern(e).unwrap_or_else(|p| panic!("{e}: {}", p.message));
        let bad = |e: &str| match http_pattern(e) {
            Ok(p) => panic!("{e} accepted as {p}"),
            Err(p) => p.message,
        };
        assert_eq!(ok("10.0.0.5:8443"), "10.0.0.5:8443");
        assert_eq!(ok("BMC-1.Example.com"), "bmc-1.example.com");
        assert_eq!(ok("127.0.0.1:8080"), "127.0.0.1:8080");
        assert_eq!(ok("[::1]"), "[::1]");
        assert_eq!(ok("[0:0::1]:8443"), "[::1]:8443");
        assert_eq!(ok("[FD00::5]"), "[fd00::5]");
        assert_eq!(ok("[::ffff:10.0.0.5]"), "[::ffff:10.0.0.5]");
        assert_eq!(ok("{device}"), "{device}");
        for e in [
            "http://x",
            "*.example.com",
            "x:99999",
            "",
            ":80",
            "[::1",
            "[::1]x",
            "[x]",
        ] {
            assert!(bad(e).contains("is not a host name"), "{e}");
        }
        assert!(bad("::1").contains("without brackets"));
        assert!(bad("fd00::5:8443").contains("without brackets"));
        assert!(bad("[fe80::1%eth0]").contains("zone"));
    }

    #[test]
    fn setting_patterns_name_a_setting() {
        assert_eq!(
            http_pattern("{setting:index}").ok().as_deref(),
            Some("{setting:index}")
        );
        assert_eq!(
            http_pattern("{setting:feed.url-2_b}").ok().as_deref(),
            Some("{setting:feed.url-2_b}")
        );
        assert_eq!(setting_key("{setting:index}"), Some("index"));
        assert_eq!(setting_key("{device}"), None);
        assert_eq!(setting_key("index"), None);
        for entry in [
            "{setting:}",
            "{setting:a b}",
            "{setting:index",
            "{setting:x/y}",
        ] {
            match http_pattern(entry) {
                Ok(p) => panic!("{entry} accepted as {p}"),
                Err(p) => assert!(
                    p.message.contains("is not a setting's host"),
                    "{entry}: {}",
                    p.message
                ),
            }
        }
        assert!(http_pattern("{settings:index}").is_err());
        let m = parse(&GOOD.replace("\"{device}\", ", "\"{setting:catalog}\", ")).unwrap();
        assert_eq!(
            m.capabilities.http,
            ["{setting:catalog}", "downloads.acme.example:443"]
        );
    }

    #[test]
    fn special_purpose_addresses_are_refused_in_every_spelling() {
        let refused = |e: &str| match http_pattern(e) {
            Ok(p) => panic!("{e} accepted as {p}"),
            Err(p) => p.message,
        };
        for (entry, what) in [
            ("169.254.169.254", "metadata"),
            ("169.254.169.254:80", "metadata"),
            ("[::ffff:169.254.169.254]", "metadata"),
            ("[::ffff:a9fe:a9fe]", "metadata"),
            ("[64:ff9b::a9fe:a9fe]", "metadata"),
            ("[fd00:ec2::254]", "metadata"),
            ("169.254.10.1", "link-local"),
            ("[fe80::1]:443", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("0.0.0.0:8080", "unspecified"),
            ("[::]", "unspecified"),
            ("[::ffff:0.0.0.0]", "unspecified"),
            ("0.1.2.3", "this network"),
            ("255.255.255.255", "broadcast"),
            ("224.0.0.1", "multicast"),
            ("[ff02::1]", "multicast"),
            ("240.0.0.1", "reserved"),
        ] {
            let message = refused(entry);
            assert!(message.contains(what), "{entry}: {message}");
        }
        for entry in [
            "2852039166",
            "0251.254.169.254",
            "0xa9.254.169.254",
            "010.0.0.5",
            "1.2.3.999",
        ] {
            assert!(refused(entry).contains("dotted-decimal"), "{entry}");
        }
    }
}
