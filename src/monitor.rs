//! Host resource samples (CPU, load, memory, network) parsed from /proc.
