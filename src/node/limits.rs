//! Open-files limit: each user holds a connection, so 10 000 users need 10 000 descriptors.
//! The node raises its soft limit to the hard limit and says when even that is too low.

use rlimit::Resource;

/// Descriptors kept for everything but user connections (stdio, result file, runtime).
const RESERVED_FDS: u64 = 64;

/// Raises RLIMIT_NOFILE's soft limit to the hard limit. Returns a line for people when the
/// limit was raised or is still too low for `users` connections.
pub fn raise_open_files(users: u64) -> Option<String> {
    let (before, hard) = Resource::NOFILE.get().ok()?;
    let mut soft = before;
    // Raising the soft limit up to the hard one is always allowed; if it fails anyway, the
    // limit stays as it was and is reported below.
    if soft < hard && Resource::NOFILE.set(hard, hard).is_ok() {
        soft = hard;
    }
    let needed = users + RESERVED_FDS;
    if soft < needed {
        Some(format!(
            "open-files limit {soft} (hard limit {hard}) is too low for {users} users: some \
             connections will fail; raise it (e.g. `ulimit -Hn {needed}` as root, or LimitNOFILE \
             in systemd)"
        ))
    } else if soft != before && needed > before {
        Some(format!(
            "raised the open-files limit from {before} to {soft} for {users} users"
        ))
    } else {
        None
    }
}
