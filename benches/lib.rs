//! Benchmarks live in `runtime.rs`.
