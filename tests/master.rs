//! master tests.
