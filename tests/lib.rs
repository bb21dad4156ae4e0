//! Integration tests live in `it/`; the peers they start (and that the binary's own
//! tests share) in [`peers`].

pub mod logs;
pub mod peers;
