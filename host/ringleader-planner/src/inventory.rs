//! The inventory: devices, where they are, how to reach them, what is installed.
//!
//! One schema, two syntaxes: TOML (`.toml`) and JSON (`.json`). Format documented in
//! `docs/inventory.md`. Parsed raw (unknown keys refused), then validated into
//! [`Inventory`] with every problem reported with file, line and column.

use crate::small_map::SmallMap;
use crate::version::{AnyVersion, Scheme, Version};
use ringleader_diag::{Diagnostics, Format, Seg};
use ringleader_types::{Component, Credential, Device as PluginDevice, Route};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

/// An installed component's version, read in its scheme.
#[derive(Debug, Clone)]
pub struct Installed {
    pub version: AnyVersion,
    /// Whether the inventory named the scheme (on the component, the device or the
    /// whole inventory). When it did not, `version` is read as `vendor` and a patch
    /// that names its scheme reads the same text in that one (docs/policies.md,
    /// "Versions").
    pub declared: bool,
    /// The source package the component (a binary package) was built from, when the
    /// inventory says (`{ version = "...", source = "glibc" }`); shown to plugins on
    /// WIT 0.3.0 and later.
    pub source: Option<Box<str>>,
}

impl Installed {
    /// A version whose scheme the inventory named.
    pub fn declared(version: AnyVersion) -> Installed {
        Installed {
            version,
            declared: true,
            source: None,
        }
    }

    /// The scheme the inventory named, if it did.
    pub fn declared_scheme(&self) -> Option<Scheme> {
        self.declared.then(|| self.version.scheme())
    }

    pub fn as_str(&self) -> &str {
        self.version.as_str()
    }
}

/// A vendor version nobody named the scheme of (today's rule, the default).
impl From<Version> for Installed {
    fn from(v: Version) -> Installed {
        Installed {
            version: AnyVersion::Vendor(v),
            declared: false,
            source: None,
        }
    }
}

/// Equal to a vendor version when read as `vendor` and equal by its order.
impl PartialEq<Version> for Installed {
    fn eq(&self, other: &Version) -> bool {
        matches!(&self.version, AnyVersion::Vendor(v) if v == other)
    }
}

impl fmt::Display for Installed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the host reaches a device for installers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A simulated device (demo, tests).
    Sim,
    /// This machine; `root` confines package tools to a directory (e.g. `dpkg --root`).
    Local { root: Option<String> },
    /// HTTP(S), e.g. a Redfish BMC at `address`; `credentials` names an operator secret.
    Http {
        address: String,
        credentials: Option<String>,
    },
    /// SSH to `address` (`host[:port]`) as `user`; `credentials` names an operator key.
    Ssh {
        address: String,
        user: Option<String>,
        credentials: Option<String>,
    },
}

impl Transport {
    /// How the host reaches the device: this transport with the operator's credentials
    /// (`[credentials.NAME]` of the config). An unknown credentials name is an error
    /// naming it. The files credentials name are not looked at here (the planner does
    /// no I/O): whoever builds the routes checks them.
    pub fn route(&self, credentials: &BTreeMap<String, Credential>) -> Result<Route, String> {
        let lookup = |name: &Option<String>| -> Result<Option<&Credential>, String> {
            match name {
                None => Ok(None),
                Some(name) => credentials.get(name).map(Some).ok_or_else(|| {
                    format!(
                        "credentials `{name}` are not defined in the operator's config (add a [credentials.{name}] table)"
                    )
                }),
            }
        };
        Ok(match self {
            Transport::Sim => Route::Sim,
            Transport::Local { .. } => Route::Local,
            Transport::Http { credentials, .. } => {
                let basic = lookup(credentials)?
                    .and_then(|c| Some((c.username.clone()?, c.password_file.clone()?)));
                let ca = lookup(credentials)?.and_then(|c| c.ca_file.clone());
                Route::Http { basic, ca }
            }
            Transport::Ssh {
                address,
                user,
                credentials,
            } => {
                let credential = lookup(credentials)?;
                let (host, port) = match address.rsplit_once(':') {
                    Some((host, port)) if !host.contains(':') || host.starts_with('[') => (
                        host.trim_start_matches('[')
                            .trim_end_matches(']')
                            .to_string(),
                        Some(
                            port.parse::<u16>()
                                .map_err(|_| format!("`{address}` has no valid port after `:`"))?,
                        ),
                    ),
                    _ => (address.clone(), None),
                };
                Route::Ssh {
                    host,
                    port,
                    user: user.clone(),
                    key: credential.and_then(|c| c.ssh_key.clone()),
                    known_hosts: credential.and_then(|c| c.known_hosts.clone()),
                }
            }
        })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Transport::Sim => "sim",
            Transport::Local { .. } => "local",
            Transport::Http { .. } => "http",
            Transport::Ssh { .. } => "ssh",
        }
    }
}

/// One device of the inventory.
#[derive(Debug, Clone)]
pub struct Device {
    pub id: String,
    pub hostname: String,
    pub site: String,
    /// IANA time zone name, as written.
    pub timezone_name: String,
    pub timezone: jiff::tz::TimeZone,
    pub tags: Vec<String>,
    pub facts: SmallMap<String>,
    pub transport: Transport,
    /// The installer plugin this device's patches go through (by its manifest's name);
    /// `None`: the rollout's default installer.
    pub installer: Option<String>,
    /// Installed components by name.
    pub components: SmallMap<Installed>,
}

impl Device {
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// Takes what a scan of the device found as its components (observed wins over
    /// declared, for planning): each read in its own scheme, else in the scheme the
    /// inventory gave the component of that name, else as a vendor version. The OS
    /// release becomes the facts `os-id`, `os-version-id` and `os-codename` where the
    /// inventory sets none. Returns a sentence per component whose version cannot be
    /// read (the declared version, if any, is kept for it).
    pub fn observe(
        &mut self,
        components: &[Component],
        os: Option<&ringleader_types::OsRelease>,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        let mut observed = SmallMap::new();
        for c in components {
            let declared = self.components.get(c.name.as_str());
            let scheme = c
                .scheme
                .or_else(|| declared.and_then(Installed::declared_scheme));
            let read = match scheme {
                Some(scheme) => AnyVersion::parse(scheme, &c.version).map(|version| Installed {
                    version,
                    declared: true,
                    source: None,
                }),
                None => Version::parse(&c.version).map(Installed::from),
            };
            match read {
                Ok(mut installed) => {
                    installed.source = c
                        .source
                        .as_deref()
                        .or(declared.and_then(|d| d.source.as_deref()))
                        .map(Into::into);
                    observed.insert(c.name.clone(), installed);
                }
                Err(e) => {
                    problems.push(format!(
                        "device {}: the scanned version `{}` of {} cannot be read as {}: {e}",
                        self.id,
                        c.version,
                        c.name,
                        scheme.map_or("a vendor version".to_string(), |s| format!("a {s} version"))
                    ));
                    if let Some(d) = declared {
                        observed.insert(c.name.clone(), d.clone());
                    }
                }
            }
        }
        self.components = observed;
        if let Some(os) = os {
            let mut set = |key: &str, value: Option<&str>| {
                if let Some(value) = value
                    && self.facts.get(key).is_none()
                {
                    self.facts.insert(key.to_string(), value.to_string());
                }
            };
            set("os-id", Some(os.id.as_str()));
            set("os-version-id", os.version_id.as_deref());
            set("os-codename", os.codename.as_deref());
        }
        problems
    }

    /// The device as plugins see it (site and time zone are added as facts).
    pub fn to_plugin(&self) -> PluginDevice {
        let mut facts: Vec<(String, String)> = self
            .facts
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        facts.push(("site".into(), self.site.clone()));
        facts.push(("timezone".into(), self.timezone_name.clone()));
        facts.push(("transport".into(), self.transport.kind().into()));
        match &self.transport {
            Transport::Local { root: Some(root) } => {
                facts.push(("local.root".into(), root.clone()));
            }
            Transport::Http { address, .. } => {
                facts.push(("http.address".into(), address.clone()));
            }
            _ => {}
        }
        if let Some(installer) = &self.installer {
            facts.push(("installer".into(), installer.clone()));
        }
        PluginDevice {
            id: self.id.clone(),
            hostname: self.hostname.clone(),
            tags: self.tags.clone(),
            facts,
            components: self
                .components
                .iter()
                .map(|(name, installed)| Component {
                    name: name.clone(),
                    version: installed.as_str().to_string(),
                    scheme: installed.declared_scheme(),
                    source: installed.source.as_deref().map(str::to_string),
                })
                .collect(),
        }
    }
}

/// A validated inventory.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub devices: Vec<Device>,
}

/// An inventory that could not be read or is not valid.
pub type InventoryError = ringleader_diag::FileError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInventory {
    #[serde(rename = "version-scheme")]
    version_scheme: Option<String>,
    #[serde(default)]
    devices: Vec<RawDevice>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    id: String,
    hostname: Option<String>,
    site: Option<String>,
    timezone: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    facts: BTreeMap<String, String>,
    transport: Option<RawTransport>,
    installer: Option<String>,
    #[serde(rename = "version-scheme")]
    version_scheme: Option<String>,
    #[serde(default)]
    components: BTreeMap<String, RawComponent>,
}

/// A component's value: its version (`"2.19.1"`), or a table with its version,
/// scheme and source package (`{ version = "2.36-9+deb12u4", scheme = "deb",
/// source = "glibc" }`).
enum RawComponent {
    Version(String),
    Table(RawComponentTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponentTable {
    version: String,
    scheme: Option<String>,
    source: Option<String>,
}

impl<'de> Deserialize<'de> for RawComponent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RawComponent, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = RawComponent;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a version, or a table with `version`, `scheme` and `source`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawComponent, E> {
                Ok(RawComponent::Version(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawComponent, A::Error> {
                RawComponentTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(RawComponent::Table)
            }
        }
        d.deserialize_any(Visit)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransport {
    kind: String,
    address: Option<String>,
    user: Option<String>,
    credentials: Option<String>,
    root: Option<String>,
}

const HINT: &str = "see docs/inventory.md for the inventory format";

impl Inventory {
    /// Reads `path`: JSON when it ends in `.json`, TOML otherwise.
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let text = ringleader_diag::read_file("inventory", path)?;
        Inventory::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Inventory, InventoryError> {
        let format = if path.extension().is_some_and(|e| e == "json") {
            Format::Json
        } else {
            Format::Toml
        };
        let mut diags = Diagnostics::with_format(path, text, format);
        let raw: Result<RawInventory, ()> = match format {
            Format::Toml => toml::from_str(text).map_err(|e| diags.toml_error(&e, HINT)),
            Format::Json => serde_json::from_str(text).map_err(|e| diags.json_error(&e, HINT)),
        };
        let Ok(raw) = raw else {
            return Err(InventoryError::Invalid(diags));
        };
        let inventory = validate(raw, &mut diags);
        diags.sort();
        if diags.has_errors() {
            Err(InventoryError::Invalid(diags))
        } else {
            Ok(inventory)
        }
    }
}

/// The scheme named at `at` (`version-scheme`, a component's `scheme`), if valid.
fn scheme_at(text: &Option<String>, at: &[Seg<'_>], diags: &mut Diagnostics) -> Option<Scheme> {
    let text = text.as_ref()?;
    match text.parse::<Scheme>() {
        Ok(s) => Some(s),
        Err(e) => {
            diags.error_at(
                at,
                e.to_string(),
                "the scheme of the component's package manager (`deb` for dpkg and apt, `rpm`, `apk`), `semver`, or `vendor` for firmware",
            );
            None
        }
    }
}

fn validate(raw: RawInventory, diags: &mut Diagnostics) -> Inventory {
    let mut devices = Vec::with_capacity(raw.devices.len());
    let inventory_scheme = scheme_at(&raw.version_scheme, &[Seg::Key("version-scheme")], diags);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, d) in raw.devices.into_iter().enumerate() {
        let at = |key: &'static str| [Seg::Key("devices"), Seg::Index(i), Seg::Key(key)];
        if d.id.trim().is_empty() {
            diags.error_at(
                &at("id"),
                "the device id is empty",
                "give every device a unique id",
            );
        }
        if let Some(first) = seen.insert(d.id.clone(), i) {
            let (line, _) = diags.locate(
                diags
                    .span_of(&[Seg::Key("devices"), Seg::Index(first), Seg::Key("id")])
                    .start,
            );
            diags.error_at(
                &at("id"),
                format!("duplicate device id `{}` (first used on line {line})", d.id),
                "device ids must be unique",
            );
        }
        let timezone_name = d.timezone.unwrap_or_else(|| "UTC".into());
        let timezone = match jiff::tz::TimeZone::get(&timezone_name) {
            Ok(tz) => tz,
            Err(_) => {
                diags.error_at(
                    &at("timezone"),
                    format!("unknown time zone `{timezone_name}`"),
                    "use an IANA name such as `Europe/Amsterdam`, `America/New_York` or `UTC`",
                );
                jiff::tz::TimeZone::UTC
            }
        };
        let transport = match d.transport {
            None => Transport::Sim,
            Some(t) => transport(t, i, diags),
        };
        let device_scheme =
            scheme_at(&d.version_scheme, &at("version-scheme"), diags).or(inventory_scheme);
        let mut components = SmallMap::new();
        for (name, raw) in d.components {
            let place = [
                Seg::Key("devices"),
                Seg::Index(i),
                Seg::Key("components"),
                Seg::Key(&name),
            ];
            let (text, scheme, place, source) = match raw {
                RawComponent::Version(text) => (text, device_scheme, place.to_vec(), None),
                RawComponent::Table(t) => {
                    let mut at_scheme = place.to_vec();
                    at_scheme.push(Seg::Key("scheme"));
                    let scheme = scheme_at(&t.scheme, &at_scheme, diags).or(device_scheme);
                    let mut at_version = place.to_vec();
                    at_version.push(Seg::Key("version"));
                    (t.version, scheme, at_version, t.source)
                }
            };
            let read = match scheme {
                Some(scheme) => AnyVersion::parse(scheme, &text).map(Installed::declared),
                None => Version::parse(&text).map(Installed::from),
            };
            match read {
                Ok(mut installed) => {
                    installed.source = source.map(String::into_boxed_str);
                    components.insert(name, installed);
                }
                Err(e) => diags.error_at(
                    &place,
                    e.to_string(),
                    match scheme {
                        Some(Scheme::Vendor) | None => {
                            "write the version the device reports, starting with a number, e.g. `2.19.1` or `7.10.30.00`"
                        }
                        Some(_) => {
                            "write the version as the device's package manager reports it (`dpkg-query -W`, `rpm -q`, `apk info`), or name another scheme"
                        }
                    },
                ),
            }
        }
        devices.push(Device {
            hostname: d.hostname.unwrap_or_else(|| d.id.clone()),
            id: d.id,
            site: d.site.unwrap_or_else(|| "default".into()),
            timezone_name,
            timezone,
            tags: d.tags,
            facts: d.facts.into_iter().collect(),
            transport,
            installer: d.installer,
            components,
        });
    }
    Inventory { devices }
}

fn transport(t: RawTransport, i: usize, diags: &mut Diagnostics) -> Transport {
    let at = |key: &'static str| {
        [
            Seg::Key("devices"),
            Seg::Index(i),
            Seg::Key("transport"),
            Seg::Key(key),
        ]
    };
    let address = |diags: &mut Diagnostics, example: &str| match &t.address {
        Some(a) if !a.trim().is_empty() => a.clone(),
        _ => {
            diags.error_at(
                &at("kind"),
                format!("a `{}` transport needs an `address`", t.kind),
                example,
            );
            String::new()
        }
    };
    match t.kind.as_str() {
        "sim" => Transport::Sim,
        "local" => Transport::Local { root: t.root },
        "http" => Transport::Http {
            address: address(diags, "e.g. address = \"https://10.0.0.5\""),
            credentials: t.credentials,
        },
        "ssh" => Transport::Ssh {
            address: address(diags, "e.g. address = \"10.0.0.5:22\""),
            user: t.user,
            credentials: t.credentials,
        },
        other => {
            diags.error_at(
                &at("kind"),
                format!("unknown transport `{other}`"),
                "expected `sim`, `local`, `http` or `ssh`",
            );
            Transport::Sim
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[devices]]
id = "srv-ams-1"
hostname = "10.1.0.11"
site = "ams"
timezone = "Europe/Amsterdam"
tags = ["lab"]
transport = { kind = "http", address = "https://10.1.0.11", credentials = "bmc-ams" }
components = { bios = "2.10.0", bmc-firmware = "7.00.00.00" }

[[devices]]
id = "ws-nyc-1"
timezone = "America/New_York"
components = { openssl = "3.0.11" }
"#;

    #[test]
    fn a_good_inventory_validates() {
        let inv = Inventory::parse(Path::new("i.toml"), GOOD).unwrap();
        assert_eq!(inv.devices.len(), 2);
        let d = &inv.devices[0];
        assert_eq!(d.components["bmc-firmware"], Version::parse("7.0").unwrap());
        assert_eq!(d.transport.kind(), "http");
        assert_eq!(inv.devices[1].transport, Transport::Sim);
        assert_eq!(inv.devices[1].site, "default");
        let plugin = d.to_plugin();
        assert!(plugin.facts.contains(&("site".into(), "ams".into())));
    }

    /// A component's source package reaches plugins with the component.
    #[test]
    fn a_source_package_reaches_plugins() {
        let inv = Inventory::parse(
            Path::new("i.toml"),
            "version-scheme = \"deb\"\n[[devices]]\nid = \"d\"\ncomponents = { libc6 = { version = \"2.36-9+deb12u4\", source = \"glibc\" }, bash = \"5.2.15-2\" }\n",
        )
        .unwrap();
        let plugin = inv.devices[0].to_plugin();
        let of = |name: &str| plugin.components.iter().find(|c| c.name == name).unwrap();
        assert_eq!(of("libc6").source.as_deref(), Some("glibc"));
        assert_eq!(of("bash").source, None);
    }

    #[test]
    fn json_is_the_same_schema() {
        let json =
            r#"{"devices": [{"id": "a", "timezone": "UTC", "components": {"bios": "1.0"}}]}"#;
        let inv = Inventory::parse(Path::new("i.json"), json).unwrap();
        assert_eq!(inv.devices[0].id, "a");
    }

    #[test]
    fn every_problem_is_named_with_its_place() {
        let bad = GOOD
            .replace("\"ws-nyc-1\"", "\"srv-ams-1\"")
            .replace("America/New_York", "America/Gotham")
            .replace("\"3.0.11\"", "\"latest\"")
            .replace("kind = \"http\"", "kind = \"telnet\"");
        let err = Inventory::parse(Path::new("i.toml"), &bad)
            .unwrap_err()
            .to_string();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 4, "{err}");
        assert!(
            lines[0].starts_with(
                "i.toml:8:22: `devices[0].transport.kind`: unknown transport `telnet`"
            ),
            "{err}"
        );
        assert!(
            lines[1].contains(
                "`devices[1].id`: duplicate device id `srv-ams-1` (first used on line 3)"
            ),
            "{err}"
        );
        assert!(
            lines[2].contains("unknown time zone `America/Gotham`"),
            "{err}"
        );
        assert!(
            lines[3].contains("`devices[1].components.openssl`: `latest` is not a version"),
            "{err}"
        );
    }

    #[test]
    fn json_problems_have_lines_too() {
        let json = "{\"devices\": [\n  {\"id\": \"a\", \"timezone\": \"Nowhere/Land\"}\n]}";
        let err = Inventory::parse(Path::new("i.json"), json)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("i.json:2:27: `devices[0].timezone`: unknown time zone"),
            "{err}"
        );
        let err = Inventory::parse(
            Path::new("i.json"),
            "{\"devices\": [{\"id\": \"a\", \"colour\": 1}]}",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown field `colour`"), "{err}");
    }
}
