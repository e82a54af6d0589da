//! Fuzz target: the test definition loader (`test_def::load`) on arbitrary file contents.
//!
//! A loaded plan must also describe itself, give its expected duration and resolve each step's
//! URL without panicking. Templates with tera blocks (`{% ... %}`) are not rendered: a loop in
//! a test file is the user's code, and may legitimately run long.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use benchmaster::test_def::{self, Overrides, Vars};
use libfuzzer_sys::fuzz_target;

/// One directory per fuzzing process; the test file is rewritten for each input.
fn test_path() -> &'static PathBuf {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = DIR.get_or_init(|| {
        // In memory when the machine has /dev/shm: one file write per input.
        let shm = std::path::Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("bm-fuzz-test-def-")
            .tempdir_in(base)
            .expect("a temp dir");
        // `body_file` is read relative to the test: give it what examples/full.toml names.
        std::fs::write(dir.path().join("full-upload.json"), b"{\"a\": 1}").expect("write body");
        let path = dir.path().join("test.toml");
        (dir, path)
    });
    path
}

fuzz_target!(|data: &[u8]| {
    // `body_file` may name any file: keep the fuzzer away from endless ones such as /dev/zero
    // (reading what the user names is the documented behaviour, not a bug).
    if data
        .windows(4)
        .any(|w| w == b"/dev" || w == b"/pro" || w == b"/sys")
    {
        return;
    }
    let path = test_path();
    std::fs::write(path, data).expect("write the test file");
    let Ok(plan) = test_def::load(path, &Overrides::default()) else {
        return;
    };
    let _ = plan.describe();
    let _ = plan.expected_duration();
    let vars = Vars {
        nodes: 1,
        ..Vars::default()
    };
    for step in &plan.steps {
        if !step.target.source().contains("{%") {
            let _ = step.url(&plan.url, &vars);
        }
    }
});
