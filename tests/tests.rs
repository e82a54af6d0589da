//! Integration tests: each module starts real servers (HTTP on port 0, sshd on a free port).

mod util;

mod abort;
mod cli;
mod compression;
mod dashboard;
mod data;
mod diff;
mod engine;
mod export;
mod faults;
mod fuzz_corpora;
mod generator;
mod h1_conformance;
mod har;
mod http2;
mod live;
mod master;
mod master_faults;
mod nginx;
mod report;
mod resources;
mod scenarios;
mod security;
mod sshd;
mod templates;
mod test_def;
mod thresholds;
mod websocket;
