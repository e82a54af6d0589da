//! Node results: the shared model (latency over time in [`latency`]), its XML writer and its
//! streaming reader.

pub mod latency;
pub mod model;
pub mod pack;
pub mod read;
pub mod threshold;
pub mod write;

pub use latency::{LatencyInterval, LatencySeries, LatencySum, Packed};
pub use model::*;
pub use threshold::Threshold;
