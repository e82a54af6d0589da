//! The master: deploy, start, follow and collect a distributed run.
