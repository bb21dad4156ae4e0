//! The one place `bindgen!` runs: Rust types and traits for the `ringleader:plugin`
//! WIT package, in each version the host links: 0.1.1 (0.1.0 components link to it
//! by semver-compatible import matching), 0.2.0 (a `version-scheme` on patches
//! and components) and 0.3.0 (components' source packages; `scan`, `boot-state` and
//! `reboot` for installers). A record that gains a field is another type to the
//! component model, so each minor version is generated on its own, beside the others.
//!
//! Within a version both worlds share one set of types and host imports: the
//! `patch-source` bindings reuse the `installer` bindings' modules (its imports are a
//! subset), so a `Patch` is the same Rust type whichever plugin produced it. Each
//! host capability is implemented once, for 0.1.1 (`caps`); the 0.2.0 and 0.3.0
//! imports, identical but for their Rust types, call those (`caps/v0_2.rs`,
//! `caps/v0_3.rs`).
//!
//! The generated records and variants (`wit`, `wit2`, `wit3`) stay inside this crate: the
//! runtime's API takes and returns `ringleader_types`, converted at each call
//! (`convert`, for every version). Only [`PluginError`] and [`PluginInfo`], about the
//! plugin and its calls rather than the fleet, are used as generated (0.1.1's; a
//! newer plugin's are converted to them).

mod installer {
    wasmtime::component::bindgen!({
        path: "../../wit/ringleader-plugin@0.1.1",
        world: "installer",
        // Host imports are async (HTTP, exec and sleep wait on I/O) and may trap
        // (an exhausted host-call budget stops the guest).
        imports: { default: async | trappable },
        exports: { default: async },
        additional_derives: [PartialEq, Eq],
    });
}

mod patch_source {
    wasmtime::component::bindgen!({
        path: "../../wit/ringleader-plugin@0.1.1",
        world: "patch-source",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "ringleader:plugin/types": super::installer::ringleader::plugin::types,
            "ringleader:plugin/log": super::installer::ringleader::plugin::log,
            "ringleader:plugin/http": super::installer::ringleader::plugin::http,
            "ringleader:plugin/kv": super::installer::ringleader::plugin::kv,
            "ringleader:plugin/clock": super::installer::ringleader::plugin::clock,
            "ringleader:plugin/settings": super::installer::ringleader::plugin::settings,
        },
    });
}

mod installer_v0_2 {
    wasmtime::component::bindgen!({
        path: "../../wit/ringleader-plugin@0.2.0",
        world: "installer",
        imports: { default: async | trappable },
        exports: { default: async },
        additional_derives: [PartialEq, Eq],
    });
}

mod patch_source_v0_2 {
    wasmtime::component::bindgen!({
        path: "../../wit/ringleader-plugin@0.2.0",
        world: "patch-source",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "ringleader:plugin/types": super::installer_v0_2::ringleader::plugin::types,
            "ringleader:plugin/log": super::installer_v0_2::ringleader::plugin::log,
            "ringleader:plugin/http": super::installer_v0_2::ringleader::plugin::http,
            "ringleader:plugin/kv": super::installer_v0_2::ringleader::plugin::kv,
            "ringleader:plugin/clock": super::installer_v0_2::ringleader::plugin::clock,
            "ringleader:plugin/settings": super::installer_v0_2::ringleader::plugin::settings,
        },
    });
}

mod installer_v0_3 {
    wasmtime::component::bindgen!({
        path: "../../wit/ringleader-plugin@0.3.0",
        world: "installer",
        imports: { default: async | trappable },
        exports: { default: async },
        additional_derives: [PartialEq, Eq],
    });
}

mod patch_source_v0_3 {
    wasmtime::component::bindgen!({
        path: "../../wit/ringleader-plugin@0.3.0",
        world: "patch-source",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "ringleader:plugin/types": super::installer_v0_3::ringleader::plugin::types,
            "ringleader:plugin/log": super::installer_v0_3::ringleader::plugin::log,
            "ringleader:plugin/http": super::installer_v0_3::ringleader::plugin::http,
            "ringleader:plugin/kv": super::installer_v0_3::ringleader::plugin::kv,
            "ringleader:plugin/clock": super::installer_v0_3::ringleader::plugin::clock,
            "ringleader:plugin/settings": super::installer_v0_3::ringleader::plugin::settings,
        },
    });
}

pub use installer::ringleader::plugin::types::{PluginError, PluginInfo};
pub use installer::{Installer, InstallerPre};
pub(crate) use installer_v0_2::{Installer as Installer2, InstallerPre as Installer2Pre};
pub(crate) use installer_v0_3::{Installer as Installer3, InstallerPre as Installer3Pre};
pub(crate) use patch_source_v0_2::{
    PatchSource as PatchSource2, PatchSourcePre as PatchSource2Pre,
};
pub(crate) use patch_source_v0_3::{
    PatchSource as PatchSource3, PatchSourcePre as PatchSource3Pre,
};

/// The contract's records and variants as `bindgen!` writes them, for the calls into
/// plugins; the host outside this crate uses `ringleader_types`, converted in
/// `convert`.
pub(crate) mod wit {
    pub(crate) use super::installer::ringleader::plugin::types::{
        Artifact, Component, Device, HealthCheck, HealthReport, InstallOutcome, Patch, PatchKind,
        Readiness, RollbackTarget, Severity, VerifyReport,
    };
}

/// The same, as 0.2.0's `bindgen!` writes them (`VersionScheme` and the `scheme`
/// fields are 0.2.0's own).
pub(crate) mod wit2 {
    pub(crate) use super::installer_v0_2::ringleader::plugin::types::{
        Artifact, Component, Device, HealthCheck, HealthReport, InstallOutcome, Patch, PatchKind,
        PluginInfo, Readiness, RollbackTarget, Severity, VerifyReport, VersionScheme,
    };
}

/// The same for 0.3.0 (`source` on components; what a scan and the boot state are).
pub(crate) mod wit3 {
    pub(crate) use super::installer_v0_3::ringleader::plugin::types::{
        Artifact, BootState, Component, Device, DeviceScan, HealthCheck, HealthReport,
        InstallOutcome, OsRelease, Patch, PatchKind, PluginInfo, Readiness, RollbackTarget,
        Severity, VerifyReport, VersionScheme,
    };
}

mod convert;
pub use patch_source::{PatchSource, PatchSourcePre};

/// Host-side traits and types of each capability interface.
pub(crate) mod host {
    pub use super::installer::ringleader::plugin::{clock, exec, http, kv, log, settings, types};
}

/// The same for 0.2.0.
pub(crate) mod host2 {
    pub use super::installer_v0_2::ringleader::plugin::{
        clock, exec, http, kv, log, settings, types,
    };
}

/// The same for 0.3.0.
pub(crate) mod host3 {
    pub use super::installer_v0_3::ringleader::plugin::{
        clock, exec, http, kv, log, settings, types,
    };
}

/// A plugin's error as a sentence (the generated `Display` is `Debug`-like).
pub fn describe(error: &PluginError) -> String {
    match error {
        PluginError::Transient(m) => format!("transient error (may be retried): {m}"),
        PluginError::Permanent(m) => format!("permanent error: {m}"),
        PluginError::Denied(m) => format!("denied: {m}"),
    }
}
