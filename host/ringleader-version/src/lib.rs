//! Version order: how Ringleader reads and compares the versions vendors write.
//!
//! - [`vendor`]: the documented rule for vendor versions (`2.19.1-a03`, `7.10.30.00`)
//!   and `applies-to` ranges. Its [`Version`], [`Range`] and [`VersionError`] keep
//!   their names at the crate's root (`ringleader_planner::version::Version`).

pub mod vendor;

pub use vendor::{MAX_PARTS, Range, Version, VersionError};
