//! Open-files limit: each user holds a connection, so 10 000 users need 10 000 descriptors.
//! The node raises its soft limit to the hard limit and says when even that is too low.

/// Descriptors kept for everything but user connections (stdio, result file, runtime).
const RESERVED_FDS: u64 = 64;

/// Raises RLIMIT_NOFILE's soft limit to the hard limit. Returns a line for people when the
/// limit was raised or is still too low for `users` connections.
pub fn raise_open_files(users: u64) -> Option<String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    let needed = users + RESERVED_FDS;
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit reads the struct we own; raising the soft limit up to the hard one
        // is always allowed.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            lim.rlim_cur = before;
        }
    }
    if lim.rlim_cur < needed {
        Some(format!(
            "open-files limit {} (hard limit {}) is too low for {users} users: some connections \
             will fail; raise it (e.g. `ulimit -Hn {needed}` as root, or LimitNOFILE in systemd)",
            lim.rlim_cur, lim.rlim_max
        ))
    } else if lim.rlim_cur != before && needed > before {
        Some(format!(
            "raised the open-files limit from {before} to {} for {users} users",
            lim.rlim_cur
        ))
    } else {
        None
    }
}
