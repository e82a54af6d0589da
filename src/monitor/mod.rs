//! Host resources (CPU, load, memory, network): [`proc`] reads and parses /proc into snapshots
//! and samples; [`sampler`] is the one loop taking them every second, used by the node for its
//! own host and by the master (`master::monitor`) for `[monitor] hosts` over a transport.

pub mod proc;
pub mod sampler;
