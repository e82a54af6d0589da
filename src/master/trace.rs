//! `BENCH_MASTER_TRACE=1`: each stage of a run as it happens, on stderr, with the time since
//! the master began (`trace +1234.5 ms (unix 1764...) host-3: mux started`), to find where a run's time goes
//! beyond its cycles. Off, a mark costs one load of a flag and builds no text.

use std::sync::OnceLock;
use std::time::Instant;

/// When the master began, once [`begin`] ran with the variable set; `None`: tracing is off.
static BEGAN: OnceLock<Option<Instant>> = OnceLock::new();

/// Starts the clock when `BENCH_MASTER_TRACE` is set (to anything but empty or `0`).
pub fn begin() {
    BEGAN.get_or_init(|| {
        let on = std::env::var_os("BENCH_MASTER_TRACE").is_some_and(|v| !v.is_empty() && v != "0");
        on.then(Instant::now)
    });
}

/// Says `what` with its time when tracing is on.
pub fn mark(what: impl FnOnce() -> String) {
    if let Some(Some(began)) = BEGAN.get() {
        eprintln!(
            "trace +{:.1} ms (unix {}) {}",
            began.elapsed().as_secs_f64() * 1e3,
            crate::result::unix_ms(std::time::SystemTime::now()),
            what()
        );
    }
}
