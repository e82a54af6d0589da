//! An OpenSSH server on a free loopback port for tests.
