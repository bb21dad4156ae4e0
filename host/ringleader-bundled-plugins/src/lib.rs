//! The plugins in `plugins/`, built from source by this crate's build script.
//!
//! The simulated-vendor pair is embedded in the binary (it drives `ringleader demo`);
//! every plugin, hostile test plugins included, also sits on disk in [`DIR`] as
//! `<name>.wasm` beside its sealed manifest `<name>.plugin.toml`.

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

/// The simulated-vendor patch source.
pub const SIM_VENDOR_SOURCE: Embedded = embed!("sim-vendor-source");
/// The simulated-vendor installer.
pub const SIM_VENDOR_INSTALLER: Embedded = embed!("sim-vendor-installer");

/// The plugins embedded in the binary.
pub const EMBEDDED: &[Embedded] = &[SIM_VENDOR_SOURCE, SIM_VENDOR_INSTALLER];

/// Every plugin built from `plugins/`, by name (each has a sealed manifest).
pub const ALL: &[&str] = &[
    "sim-vendor-source",
    "sim-vendor-installer",
    "dpkg-installer",
    "redfish-firmware",
    "csaf-source",
    "lvfs-source",
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
