//! The plugins in `plugins/`, built from source by this crate's build script.
//!
//! Every plugin of the product is embedded in the binary ([`EMBEDDED`]: the real
//! installers and sources, and the simulated-vendor pair that drives `ringleader demo`),
//! component and sealed manifest, so that a user names it (`--installer dpkg-installer`)
//! instead of looking for files. Every plugin, hostile test plugins included, also sits
//! on disk in [`DIR`] as `<name>.wasm` beside its sealed manifest `<name>.plugin.toml`.

use std::path::{Path, PathBuf};

/// Directory holding every built plugin and its sealed manifest.
pub const DIR: &str = concat!(env!("OUT_DIR"), "/plugins");

/// A plugin embedded in the binary: its sealed manifest and its component bytes.
#[derive(Debug, Clone, Copy)]
pub struct Embedded {
    pub name: &'static str,
    pub manifest: &'static str,
    pub component: &'static [u8],
}

impl Embedded {
    /// The path messages use for this plugin's manifest: `bundled:NAME/NAME.plugin.toml`.
    pub fn origin(&self) -> PathBuf {
        PathBuf::from(format!("bundled:{0}/{0}.plugin.toml", self.name))
    }
}

macro_rules! embed {
    ($name:literal) => {
        Embedded {
            name: $name,
            manifest: include_str!(concat!(env!("OUT_DIR"), "/plugins/", $name, ".plugin.toml")),
            component: include_bytes!(concat!(env!("OUT_DIR"), "/plugins/", $name, ".wasm")),
        }
    };
}

/// The simulated-vendor patch source's name (one of [`EMBEDDED`]).
pub const SIM_VENDOR_SOURCE: &str = "sim-vendor-source";
/// The simulated-vendor installer's name (one of [`EMBEDDED`]).
pub const SIM_VENDOR_INSTALLER: &str = "sim-vendor-installer";

/// The plugins embedded in the binary, by name: the real installers and sources and the
/// simulated vendor's pair. Not the test components (`test-*`), which are not part of
/// the product.
///
/// A `static`, not a `const`: a constant's bytes are copied into every place that uses
/// it (the simulated pair alone was in the debug binary 5 and 9 times over), a
/// static's are there once.
pub static EMBEDDED: &[Embedded] = &[
    embed!("apt-installer"),
    embed!("catalog-source"),
    embed!("csaf-source"),
    embed!("debian-security-source"),
    embed!("dpkg-installer"),
    embed!("lvfs-source"),
    embed!("redfish-firmware"),
    embed!("sim-vendor-installer"),
    embed!("sim-vendor-source"),
];

/// The embedded plugin named `name`.
pub fn embedded(name: &str) -> Option<Embedded> {
    EMBEDDED.iter().find(|p| p.name == name).copied()
}

/// Every plugin built from `plugins/`, by name (each has a sealed manifest).
pub const ALL: &[&str] = &[
    "sim-vendor-source",
    "sim-vendor-installer",
    "dpkg-installer",
    "apt-installer",
    "redfish-firmware",
    "csaf-source",
    "lvfs-source",
    "debian-security-source",
    "catalog-source",
    "test-hostile-source",
    "test-hostile-installer",
];

/// Test components that are deliberately not valid plugins (no manifest): one built
/// against an unsupported WIT major version, one for another world (a WASI command).
pub const NOT_PLUGINS: &[&str] = &["test-future-wit", "test-cli-command"];

/// Path of the sealed manifest of the plugin `name` (one of [`ALL`]).
pub fn manifest_path(name: &str) -> PathBuf {
    Path::new(DIR).join(format!("{name}.plugin.toml"))
}

/// Path of the component of the plugin `name` (one of [`ALL`]).
pub fn component_path(name: &str) -> PathBuf {
    Path::new(DIR).join(format!("{name}.wasm"))
}
