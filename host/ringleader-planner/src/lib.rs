//! Ringleader's planner.
