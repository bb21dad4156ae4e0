//! What the integration tests share: the peers they start ([`peers`]), the project's
//! plugins loaded into a runtime ([`guests`]), the checks of a rollout log ([`logs`])
//! and the daemon harness of the binary's own tests ([`daemon`]). The tests of this
//! crate are `it/`, `case-runner/` (the data cases of the source plugins) and `fuzz/`.

pub mod daemon;
pub mod guests;
pub mod logs;
pub mod peers;
