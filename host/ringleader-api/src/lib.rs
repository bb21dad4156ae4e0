//! Ringleader's stable JSON: every document scripts read from the CLI (`--json`) and the
//! daemon's HTTP API, and the CLI's exit codes.
//!
//! Each document is a `*V1` type carrying its `schema` key ([`Schema`], checked when
//! read); its published JSON Schema is `docs/schemas/NAME.v1.json`. The types derive both
//! `Serialize` (the daemon and the CLI write them) and `Deserialize` (the CLI's client
//! and scripts in Rust read them), and say states with enums, never with strings
//! compared by their readers.
//!
//! The modules follow the document families:
//!
//! | module | documents |
//! |---|---|
//! | [`rollout`] | `status`, `rollouts`, `accepted`, `health`, and the body of a rollout start |
//! | [`schedule`] | `schedules`, `schedule-runs`: standing schedules and their next runs |
//! | [`event`] | `event`, `events`, `stall` |
//! | [`device`] | `devices`, `device` |
//! | [`fleet`] | `fleet`, `fleet-device`, `fleet-scan`, and the body of a scan |
//! | [`compliance`] | `compliance` |
//! | [`plan`] | `plan`, `explain` |
//! | [`demo`] | `demo`, `demo-continuous` |
//! | [`catalog`] | `catalog-check` |
//! | [`source`] | `publications`: what the sources published, as first seen |
//! | [`plugin`] | `patch` (a file), `plugin-run`, `plugin-check`, `plugin-list` |
//! | [`token`] | `tokens` |
//! | [`error`] | `error` |
//! | [`exit`] | the CLI's exit codes |
//!
//! Architecture invariant: this crate knows nothing of the engine, the runtime or the
//! daemon (no wasmtime, tokio or axum): the binary builds these types from its domain
//! types, beside where it uses them.

/// A unit enum whose JSON form is its name: serde's name, `as_str` and `Display`
/// come from one list, so they cannot disagree.
macro_rules! named {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)*
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The name JSON gives it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The value named `text` (as JSON names it), if there is one.
            pub fn from_name(text: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| v.as_str() == text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }
    };
}

pub mod catalog;
pub mod compliance;
pub mod demo;
pub mod device;
pub mod error;
pub mod event;
pub mod exit;
pub mod fleet;
pub mod notification;
pub mod plan;
pub mod plugin;
pub mod report;
pub mod rollout;
pub mod schedule;
mod schema;
pub mod source;
pub mod token;

pub use schema::{Document, Schema};
