//! Integration tests of the plugin runtime with real components built from `plugins/`.
//!
//! - `plugins`: the simulated-vendor plugins do their job through the runtime.
//! - `sandbox`: hostile plugins get a typed error naming the limit or capability, and
//!   the host (and the next call to a good plugin) carries on.
//! - `loading`: manifests, checksums, worlds, WIT versions and the compile cache.
//! - `cache`: the compile cache trusts only what it wrote: tampered, planted, wrong
//!   owner, writable by others.
//! - `csaf`: the CSAF advisory source, served on 127.0.0.1: a broken feed, the
//!   operator's feed host (its data cases, `tests/cases/csaf/`, are the `cases` binary).
//! - `lvfs`: the LVFS firmware source, served on 127.0.0.1: settings, downloads (its
//!   data cases, `tests/cases/lvfs/`, are the `cases` binary).
//! - `dpkg`: the dpkg installer against real dpkg, locally and over a real SSH server.
//! - `apt`: the apt installer against real Debian roots over real SSH servers, installing
//!   from a signed APT repository on 127.0.0.1.
//! - `engine`: whole rollouts through the executor, the real plugins and simulated
//!   devices.

mod apt;
mod cache;
mod catalog;
mod csaf;
mod debsec;
mod dpkg;
mod engine;
mod loading;
mod lvfs;
mod plugins;
mod redfish;
mod sandbox;

use ringleader_runtime::{Grants, Plugin, Runtime, RuntimeConfig, Services};
use ringleader_types::{Artifact, Device, Patch, PatchKind, Severity};
use std::path::PathBuf;

// What these tests share with the data cases: loading the plugins, devices, patches,
// log capture.
use ringleader_tests::guests::{Logs, device, load, manifest, patch, runtime};
