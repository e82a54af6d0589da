//! The wire between the master and its nodes, both ends' spelling in one place: [`progress`]
//! (node → master, one JSON event a line) and [`mux`] (many nodes over one SSH channel).

pub mod mux;
pub mod progress;
