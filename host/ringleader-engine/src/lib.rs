//! Ringleader's rollout engine.
//!
//! - [`core`]: the deterministic rollout state machine (events and time in, decisions
//!   out; no I/O, no clock).

pub mod core;
pub mod demo;
pub mod executor;
pub mod spec;
