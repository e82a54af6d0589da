//! The nodes file (pssh format).
