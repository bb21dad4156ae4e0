//! Ringleader's rollout engine.
//!
//! - [`core`]: the deterministic rollout state machine (events and time in, decisions
//!   out; no I/O, no clock);
//! - [`spec`]: building a rollout's spec from a plan (and, with `runtime`, from an
//!   inventory and a policy, asking the patch sources first); devices joining;
//! - [`clock`]: virtual time, which plugins see too (the runtime's `SystemClock` is
//!   real time).
//!
//! With the `runtime` feature (the default), also what calls plugins and keeps a
//! rollout on disk:
//!
//! - `executor`: runs decisions through installer plugins, in virtual time
//!   (simulations) or real time (the daemon), and `replay`s a rollout from its log;
//! - `store`: the durable, append-only log a rollout is rebuilt from after a crash;
//! - `demo`: the simulated demo fleet.
//!
//! Without it (`--no-default-features`) the crate builds without wasmtime, sled or
//! tokio: the core, the spec from a plan, and the virtual clock's type.

pub mod clock;
pub mod core;
#[cfg(feature = "runtime")]
pub mod demo;
#[cfg(feature = "runtime")]
pub mod executor;
pub mod spec;
#[cfg(feature = "runtime")]
pub mod store;
