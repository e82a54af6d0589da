//! report tests.
