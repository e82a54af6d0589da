//! test_def tests.
