//! Ringleader's plugin runtime: loads vendor plugins (WebAssembly components built
//! against `wit/ringleader-plugin@0.1.1`, or any 0.1.x: a 0.1.0 component links too)
//! and runs their calls in a sandbox.
//!
//! - [`Runtime`] owns the engine and the linker; [`Runtime::load`] checks a plugin's
//!   manifest and checksum, compiles (or loads from [`cache`]) and pre-instantiates it.
//! - [`Plugin`] runs calls (`discover`, `install`, ...), each in a fresh store under the
//!   plugin's [`limits`], with only the capabilities its manifest declares and the
//!   operator [`grants`] (read from the operator's [`config`] file).
//! - [`bindings`] is where `bindgen!` runs; its generated types stay in this crate.
//!   Calls take and return `ringleader_types` (`Device`, `Patch`, `Readiness`, ...),
//!   converted at the boundary; only `PluginError` and `PluginInfo` are used as
//!   generated.

pub mod bindings;
pub mod cache;
mod caps;
pub mod config;
pub mod durable;
pub mod error;
pub mod grants;
pub mod http_client;
pub mod limits;
pub mod manifest;
mod measure;
mod runtime;
pub mod services;
pub mod sim_device;
mod state;
pub mod transport;

pub use config::OperatorConfig;
pub use error::{CallError, CallErrorKind, LoadError, RuntimeError};
pub use grants::{Grant, Grants};
pub use manifest::{Manifest, World};
pub use runtime::{ComponentSummary, Plugin, Runtime, RuntimeConfig, engine_config, new_engine};
pub use services::Services;
