//! The load engine: virtual users in cycles, measured (what `bench-node run` does).

pub mod progress;
