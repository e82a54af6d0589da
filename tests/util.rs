//! util tests.
#![allow(dead_code)]
