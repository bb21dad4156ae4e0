//! Errors of loading and calling plugins, named by the stage that failed.

use crate::bindings::PluginError;
use crate::limits::format_size;
use crate::manifest::{ManifestError, World};
use std::path::PathBuf;
use std::time::Duration;

/// A plugin call that did not return a result.
#[derive(Debug, thiserror::Error)]
#[error("plugin `{plugin}` failed in `{func}`: {kind}")]
pub struct CallError {
    pub plugin: String,
    /// The exported function called, e.g. `install`.
    pub func: &'static str,
    pub kind: CallErrorKind,
}

/// Why a plugin call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallErrorKind {
    /// The plugin returned its own error (the WIT `plugin-error`).
    #[error("{}", crate::bindings::describe(.0))]
    Plugin(PluginError),
    /// It ran past its deadline (`limits.timeout`) and was stopped.
    #[error("ran past its deadline of {} and was stopped (limits.timeout)", humantime::format_duration(*limit))]
    Timeout { limit: Duration },
    /// It tried to grow its memory past its cap (`limits.memory`).
    #[error("exceeded its memory limit of {} (it asked for {}; limits.memory)", format_size(*limit), format_size(*requested))]
    MemoryLimit { limit: u64, requested: u64 },
    /// It called the host more often than its budget allows (`limits.hostcalls`).
    #[error("made more than {limit} host calls and was stopped (limits.hostcalls)")]
    HostcallBudget { limit: u64 },
    /// Its wasm stack overflowed.
    #[error("overflowed its stack ({})", format_size(crate::limits::MAX_WASM_STACK_BYTES as u64))]
    StackOverflow,
    /// It returned something over the host's size caps.
    #[error("returned a result over the host's limits: {0}")]
    ResultTooLarge(String),
    /// It trapped (a panic, an `unreachable`, an out-of-bounds access).
    #[error("trapped: {0}")]
    Trap(String),
    /// A new instance could not be made for the call.
    #[error("could not be instantiated: {0}")]
    Instantiate(String),
    /// The plugin's contract has no such function (e.g. `scan` before WIT 0.3.0); the
    /// plugin was not called.
    #[error("does not support this: {0}")]
    Unsupported(String),
}

impl CallErrorKind {
    /// True when the same call may succeed later: a transient plugin error or a timeout.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            CallErrorKind::Plugin(PluginError::Transient(_)) | CallErrorKind::Timeout { .. }
        )
    }
}

/// A plugin that could not be loaded. Each message says what is wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("failed to read component {}: {error}; build the plugin, or fix `component` in its manifest", path.display())]
    ReadComponent {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("component {} does not match its manifest: its sha256 is {actual}, the manifest says {expected}; rebuild the plugin or re-seal the manifest with `ringleader plugin seal`", path.display())]
    ChecksumMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{} is not a WebAssembly file; a plugin is a component built for wasm32-wasip2 (see docs/plugin-authors.md)", path.display())]
    NotWasm { path: PathBuf },
    #[error("{} is a core WebAssembly module, not a component; build it for the wasm32-wasip2 target (or wrap it with `wasm-tools component new`)", path.display())]
    CoreModule { path: PathBuf },
    #[error("{} is a component but not a Ringleader plugin: it exports no `ringleader:plugin` interface (it exports: {}); build it against the `patch-source` or `installer` world in wit/", path.display(), if exports.is_empty() { "nothing".to_string() } else { exports.join(", ") })]
    NotAPlugin { path: PathBuf, exports: Vec<String> },
    #[error("{} is built for the `{found}` world but its manifest says `{expected}`; fix `world` in the manifest or build against the right world", path.display())]
    WrongWorld {
        path: PathBuf,
        expected: World,
        found: World,
    },
    #[error("{} is built against WIT package ringleader:plugin@{found}, which this host does not support (it implements {supported}); rebuild the plugin against a 0.1.x or 0.2.x version of wit/", path.display())]
    UnsupportedWit {
        path: PathBuf,
        found: semver::Version,
        supported: &'static str,
    },
    #[error("{} exports `{interface}`, which no Ringleader world has; build against the `patch-source` or `installer` world", path.display())]
    UnknownInterface { path: PathBuf, interface: String },
    #[error("failed to compile component {}: {message}", path.display())]
    Compile { path: PathBuf, message: String },
    #[error("component {} needs imports this host does not provide: {message}; a plugin may import only the ringleader:plugin capabilities of its world and WASI 0.2", path.display())]
    Link { path: PathBuf, message: String },
    #[error("plugin {} failed when asked for its info: {error}", path.display())]
    Info { path: PathBuf, error: CallError },
    #[error("plugin `{plugin}` cannot be given its operator settings: {}; fix `settings` under [plugins.{plugin}] in the operator's config", problems.join("; "))]
    Setting {
        plugin: String,
        problems: Vec<String>,
    },
    #[error("plugin {} says its name is `{reported}` but its manifest says `{manifest}`; make them agree", path.display())]
    NameMismatch {
        path: PathBuf,
        manifest: String,
        reported: String,
    },
}

/// The runtime could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("failed to set up the WebAssembly engine: {0}")]
    Engine(String),
    #[error("failed to link host capabilities: {0}")]
    Link(String),
}

/// Formats a wasmtime error with its causes, on one line.
pub(crate) fn chain(e: &wasmtime::Error) -> String {
    let mut parts: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    parts.dedup();
    parts.join(": ")
}
