//! Ringleader's planner: which device gets which patch, in which ring, in which order,
//! no earlier than when, and why (or why not). Deterministic, and free of I/O beyond
//! reading its input files: the planning time is an input, never the wall clock.
//!
//! - [`inventory`]: devices (TOML or JSON);
//! - [`policy`]: the rollout policy language;
//! - [`catalog`]: patches from patch-source plugins, checked, with the prerequisite DAG;
//! - [`compliance`]: which devices lack which applicable fixes, by severity and age;
//! - [`version`]: the documented rule for vendor versions and ranges (the
//!   `ringleader-version` crate, re-exported);
//! - [`schedule`]: maintenance windows and freezes in each device's time zone;
//! - [`standing`]: standing schedules (`schedules.toml`): when each runs, through
//!   freezes;
//! - [`time_to_patch`]: from a patch's publication to its install, by severity;
//! - [`plan`]: ring assignment, applicability, supersedence, ordering, start times,
//!   and explanations.

pub mod catalog;
pub mod compliance;
pub mod continuous;
pub mod inventory;
pub mod plan;
pub mod policy;
pub mod schedule;
pub mod small_map;
pub mod standing;
pub mod time_to_patch;
pub use ringleader_version as version;
