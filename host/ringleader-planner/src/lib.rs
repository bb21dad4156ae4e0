//! Ringleader's planner: which device gets which patch, in which ring, in which order,
//! no earlier than when, and why (or why not). Deterministic and free of I/O beyond
//! reading its input files.

pub mod inventory;
pub mod policy;
pub mod version;
