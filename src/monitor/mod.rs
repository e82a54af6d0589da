//! Host resources (CPU, load, memory, network): [`proc`] reads and parses /proc into snapshots
//! and samples; [`local`] is the node's own sampler, once a second while it runs.

pub mod local;
pub mod proc;
