//! Integration tests of the plugin runtime with real components built from `plugins/`.
//!
//! - `plugins`: the simulated-vendor plugins do their job through the runtime.
//! - `sandbox`: hostile plugins get a typed error naming the limit or capability, and
//!   the host (and the next call to a good plugin) carries on.
//! - `loading`: manifests, checksums, worlds, WIT versions and the compile cache.
//! - `cache`: the compile cache trusts only what it wrote: tampered, planted, wrong
//!   owner, writable by others.
//! - `csaf`: the CSAF advisory source, data-driven over `tests/cases/csaf/`, served on 127.0.0.1.
//! - `lvfs`: the LVFS firmware source, data-driven over `tests/cases/lvfs/`, served on
//!   127.0.0.1.
//! - `dpkg`: the dpkg installer against real dpkg, locally and over a real SSH server.
//! - `apt`: the apt installer against real Debian roots over real SSH servers, installing
//!   from a signed APT repository on 127.0.0.1.
//! - `engine`: whole rollouts through the executor, the real plugins and simulated
//!   devices.

mod apt;
mod cache;
mod csaf;
mod dpkg;
mod engine;
mod loading;
mod lvfs;
mod plugins;
mod redfish;
mod sandbox;

use ringleader_runtime::{Grants, Plugin, Runtime, RuntimeConfig, Services};
use ringleader_types::{Artifact, Component, Device, Patch, PatchKind, Severity};
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

/// The case folders of a data-driven test (`tests/cases/KIND/`), sorted; fails when
/// fewer than `at_least` are there (cases went missing).
pub fn case_names(dir: &std::path::Path, at_least: usize) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= at_least, "cases went missing: {names:?}");
    names
}

/// What `tracing` prints on this thread while a test runs.
///
/// One global subscriber (set once, at INFO) routes each line to the buffer of the
/// thread that logged it. Scoped subscribers per test would be simpler, but tracing
/// caches per call site whether anyone listens, and two threads racing to register a
/// call site while scoped subscribers come and go can cache "nobody" and lose lines.
#[derive(Debug, Clone, Default)]
pub struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

thread_local! {
    static SINK: std::cell::RefCell<Option<Logs>> = const { std::cell::RefCell::new(None) };
}

/// Routes a log line to the current thread's [`Logs`], if it has one.
struct Router;

impl std::io::Write for Router {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        SINK.with(|sink| {
            if let Some(logs) = &*sink.borrow() {
                logs.0.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Stops capturing on this thread when dropped.
#[derive(Debug)]
pub struct Capture;

impl Drop for Capture {
    fn drop(&mut self) {
        SINK.with(|sink| *sink.borrow_mut() = None);
    }
}

impl Logs {
    /// Captures this thread's log lines (INFO and above) until the guard drops.
    pub fn capture() -> (Logs, Capture) {
        static INIT: std::sync::Once = std::sync::Once::new();
        INIT.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_writer(|| Router)
                .with_ansi(false)
                .with_max_level(tracing::Level::INFO)
                .finish();
            let _ = tracing::subscriber::set_global_default(subscriber);
        });
        let logs = Logs::default();
        SINK.with(|sink| *sink.borrow_mut() = Some(logs.clone()));
        (logs, Capture)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}
