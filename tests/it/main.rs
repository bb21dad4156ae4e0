//! Integration tests of the plugin runtime with real components built from `plugins/`.
//!
//! - `plugins`: the simulated-vendor plugins do their job through the runtime.
//! - `sandbox`: hostile plugins get a typed error naming the limit or capability, and
//!   the host (and the next call to a good plugin) carries on.
//! - `loading`: manifests, checksums, worlds, WIT versions and the compile cache.
//! - `dpkg`: the dpkg installer against real dpkg, locally and over a real SSH server.
//! - `engine`: whole rollouts through the executor, the real plugins and simulated
//!   devices.

mod dpkg;
mod engine;
mod loading;
mod plugins;
mod sandbox;

use ringleader_runtime::bindings::{Artifact, Component, Device, Patch, PatchKind, Severity};
use ringleader_runtime::{Grants, Plugin, Runtime, RuntimeConfig, Services};
use std::path::PathBuf;

/// The sealed manifest of a plugin built from `plugins/`.
pub fn manifest(name: &str) -> PathBuf {
    ringleader_bundled_plugins::manifest_path(name)
}

/// A runtime granting `grants`, with in-memory kv and no cache.
pub fn runtime(grants: Grants, services: Services) -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir: None,
        grants,
        services,
    })
    .expect("runtime")
}

/// Loads the plugin `name` into `runtime`.
pub async fn load(runtime: &Runtime, name: &str) -> Plugin {
    runtime
        .load(&manifest(name))
        .await
        .unwrap_or_else(|e| panic!("load {name}: {e}"))
}

pub fn device(id: &str, components: &[(&str, &str)]) -> Device {
    Device {
        id: id.into(),
        hostname: format!("{id}.example"),
        tags: vec![],
        facts: vec![],
        components: components
            .iter()
            .map(|(name, version)| Component {
                name: (*name).into(),
                version: (*version).into(),
            })
            .collect(),
    }
}

pub fn patch(id: &str, component: &str, fixed: &str) -> Patch {
    Patch {
        id: id.into(),
        vendor: "test".into(),
        title: String::new(),
        component: component.into(),
        fixed_version: fixed.into(),
        applies_to: String::new(),
        kind: PatchKind::Bugfix,
        severity: Severity::Unknown,
        cves: vec![],
        prerequisites: vec![],
        supersedes: vec![],
        reboot_required: false,
        artifact: Artifact {
            url: String::new(),
            sha256: String::new(),
            size: 0,
        },
        released: 0,
    }
}
