//! Fuzz target: the per-node progress lines (`ProgressEvent::parse`) on arbitrary text.
//!
//! An event that parses must print (`to_line`) as one line that parses to the same event.
#![no_main]

use benchmaster::engine::progress::ProgressEvent;
use libfuzzer_sys::fuzz_target;

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
        assert_eq!(
            ProgressEvent::parse(&printed),
            Some(event),
            "`{line}` printed as `{printed}` reads back differently"
        );
    }
});
