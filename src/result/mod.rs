//! Node results: the shared model, its XML writer and its streaming reader.

pub mod model;
pub mod read;
pub mod write;

pub use model::*;
