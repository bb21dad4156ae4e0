//! Ringleader's rollout engine.
//!
//! - [`core`]: the deterministic rollout state machine (events and time in, decisions
//!   out; no I/O, no clock);
//! - [`executor`]: runs decisions through installer plugins, in virtual time;
//! - [`store`]: the durable, append-only log a rollout is rebuilt from after a crash;
//! - [`spec`], [`demo`]: building a rollout from a plan; the simulated demo fleet;
//! - [`clock`]: virtual time for plugins (the runtime's `SystemClock` is real time).

pub mod clock;
pub mod core;
pub mod demo;
pub mod executor;
pub mod spec;
pub mod store;
