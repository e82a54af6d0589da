//! What `bench-node` does as a process beside its load: [`cli`] is its command line and
//! subcommands, [`control`] hears the master's words and signals, [`mux`] carries all the
//! nodes of a host over one SSH channel, [`limits`] raises the open-files limit for the users
//! asked.

pub mod cli;
pub mod control;
pub mod limits;
pub mod mux;
