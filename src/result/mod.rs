//! Node results: the shared model, its XML writer and its streaming reader.

pub mod model;
pub mod read;
pub mod threshold;
pub mod write;

pub use model::*;
pub use threshold::Threshold;
