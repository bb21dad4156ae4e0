//! Ringleader's plugin runtime: loads vendor plugins (WebAssembly components built
//! against `wit/ringleader-plugin@0.1.0`) and runs their calls in a sandbox.
//!
//! - [`Runtime`] owns the engine and the linker; [`Runtime::load`] checks a plugin's
//!   manifest and checksum, compiles (or loads from [`cache`]) and pre-instantiates it.
//! - [`Plugin`] runs calls (`discover`, `install`, ...), each in a fresh store under the
//!   plugin's [`limits`], with only the capabilities its manifest declares and the
//!   operator [`grants`].
//! - [`bindings`] holds the contract's types (`Device`, `Patch`, ...), used by the
//!   whole host.

pub mod bindings;
pub mod cache;
mod caps;
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

pub use error::{CallError, CallErrorKind, LoadError, RuntimeError};
pub use grants::{Grant, Grants};
pub use manifest::{Manifest, World};
pub use runtime::{ComponentSummary, Plugin, Runtime, RuntimeConfig, engine_config, new_engine};
pub use services::Services;
