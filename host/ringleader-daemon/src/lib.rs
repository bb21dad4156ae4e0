//! The Ringleader daemon as a library, for the `ringleader` binary (`serve`, `demo`,
//! `plan`, the `plugin` and `token` commands) and for tests that drive the API
//! in-process.
//!
//! - [`serve`]: the daemon: [`serve::serve`] with its [`serve::Options`]; the rollouts in
//!   its data directory ([`serve::rollouts`]), the HTTP API ([`serve::api`]: axum routes
//!   building the `ringleader-api` documents), the connections (`listen`), tokens
//!   ([`serve::auth`]).
//! - [`session`]: the one path from a rollout's inputs to a running executor ("inputs ->
//!   runtime -> prepare -> replay -> executor"), used by the daemon's rollouts and by
//!   `ringleader demo`; [`session::Inputs`] is what `meta/inputs` holds
//!   (`ringleader.inputs/v1`).
//! - [`plugins`]: plugins as commands name them (bundled by name, or a path), the one
//!   place default plugins are chosen, granted and loaded.
//! - [`plan_view`]: the planner's plan and explanations as the API's documents.
//! - [`compliance`]: the fleet registry's compliance against the kept catalog.
//! - [`data_dir`]: a data directory owned by this process only.
//! - [`time_to_patch`]: time to patch from the publications and the rollouts' logs.

pub mod compliance;
pub mod continuous;
pub mod data_dir;
pub mod fleet;
pub mod plan_view;
pub mod plugins;
pub mod publications;
pub mod serve;
pub mod session;
pub mod time_to_patch;
