//! Fuzz target: the per-node progress lines (`ProgressEvent::parse`) on arbitrary text.
//!
//! An event that parses must print (`to_line`) as one line that parses to the same event, its
//! floating-point fields equal to the last bit or two: serde_json (without its
//! `float_roundtrip` feature) may read a long decimal one unit in the last place off, which is
//! nothing for a rate shown to people (found by this target; see docs/RELIABILITY.md).
#![no_main]

use benchmaster::engine::progress::ProgressEvent;
use libfuzzer_sys::fuzz_target;

/// Equal, or within a few units in the last place.
fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 4.0 * f64::EPSILON * a.abs().max(b.abs())
}

/// The same event, floats compared with [`close`].
fn same(a: &ProgressEvent, b: &ProgressEvent) -> bool {
    match (a, b) {
        (
            ProgressEvent::Progress {
                cycle,
                users,
                requests,
                failures,
                errors,
                rps,
                elapsed,
            },
            ProgressEvent::Progress {
                cycle: c2,
                users: u2,
                requests: r2,
                failures: f2,
                errors: e2,
                rps: rps2,
                elapsed: el2,
            },
        ) => {
            (cycle, users, requests, failures, errors) == (c2, u2, r2, f2, e2)
                && close(*rps, *rps2)
                && close(*elapsed, *el2)
        }
        _ => a == b,
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        let Some(event) = ProgressEvent::parse(line) else {
            continue;
        };
        let printed = event.to_line();
        assert!(
            !printed.contains('\n'),
            "a progress line spans lines: {printed}"
        );
        let again = ProgressEvent::parse(&printed)
            .unwrap_or_else(|| panic!("`{line}` printed as `{printed}`, which does not parse"));
        assert!(
            same(&again, &event),
            "`{line}` printed as `{printed}` reads back as {again:?}, not {event:?}"
        );
    }
});
