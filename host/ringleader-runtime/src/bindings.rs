//! The one place `bindgen!` runs: Rust types and traits for the `ringleader:plugin`
//! WIT package.
//!
//! Both worlds share one set of types and host imports: the `patch-source` bindings
//! reuse the `installer` bindings' modules (its imports are a subset), so a `Patch`
//! is the same Rust type whichever plugin produced it, and each host capability is
//! implemented once.
//!
//! The generated records and variants (`wit`) stay inside this crate: the runtime's
//! API takes and returns `ringleader_types`, converted at each call (`convert`).
//! Only [`PluginError`] and [`PluginInfo`], about the plugin and its calls rather than
//! the fleet, are used as generated.

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

pub use installer::ringleader::plugin::types::{PluginError, PluginInfo};
pub use installer::{Installer, InstallerPre};

/// The contract's records and variants as `bindgen!` writes them, for the calls into
/// plugins; the host outside this crate uses `ringleader_types`, converted in
/// `convert`.
pub(crate) mod wit {
    pub(crate) use super::installer::ringleader::plugin::types::{
        Artifact, Component, Device, HealthCheck, HealthReport, InstallOutcome, Patch, PatchKind,
        Readiness, RollbackTarget, Severity, VerifyReport,
    };
}

mod convert;
pub use patch_source::{PatchSource, PatchSourcePre};

/// Host-side traits and types of each capability interface.
pub(crate) mod host {
    pub use super::installer::ringleader::plugin::{clock, exec, http, kv, log, settings, types};
}

/// A plugin's error as a sentence (the generated `Display` is `Debug`-like).
pub fn describe(error: &PluginError) -> String {
    match error {
        PluginError::Transient(m) => format!("transient error (may be retried): {m}"),
        PluginError::Permanent(m) => format!("permanent error: {m}"),
        PluginError::Denied(m) => format!("denied: {m}"),
    }
}
