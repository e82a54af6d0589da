//! The wire between the master and its nodes, both ends' spelling in one place: [`control`]
//! (the master's words to a node), [`progress`] (node → master, one JSON event a line), [`mux`]
//! (many nodes over one SSH channel), and [`lines`] (the bound on every line read from it).

pub mod control;
pub mod lines;
pub mod mux;
pub mod progress;
