//! `[generator]`: any program as the load generator. A test is either HTTP steps or a
//! generator; this validates the section, the `[bench]` keys that apply to it, and finds the
//! files the master deploys with the test.

use std::collections::HashSet;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use toml::Spanned;

use super::error::Source;
use super::raw::{RawBench, RawGenerator};
use super::{Generator, TestDefError};

/// Longest step name a generator may declare, bytes.
const MAX_STEP_NAME: usize = 200;

/// Keys of the rest of the file that only the engine's own users read, each with where it is
/// given (`None`: not given): a [`generator`] refuses them rather than ignore them.
pub(crate) type UsersOnly = [(&'static str, Option<Range<usize>>)];

/// Validates `[generator]` against the rest of the file: no `[[step]]`s or `[[scenario]]`s
/// (`steps`: which of them is given, and where), no `[bench]` key that only HTTP users use,
/// none of `users_only` (`[test] http`, `[[data]]`, ...).
pub(crate) fn generator(
    src: &Source<'_>,
    raw: Spanned<RawGenerator>,
    steps: Option<(&str, Range<usize>)>,
    bench: &RawBench,
    users_only: &UsersOnly,
) -> Result<Generator, TestDefError> {
    if let Some((what, span)) = steps {
        return Err(src.error(
            span,
            what.trim_end_matches('s'),
            format!(
                "a test is either {what} or a [generator], not both: move the steps into the \
                 program, or the program into another test"
            ),
        ));
    }
    check_bench(src, bench)?;
    if let Some((key, span)) = users_only.iter().find_map(|(k, s)| Some((*k, s.clone()?))) {
        return Err(src.error(
            span,
            key,
            "does nothing with a [generator]: the program makes its own requests and gets only \
             BENCH_URL, BENCH_NODE, BENCH_USERS and the other BENCH_* values; remove it (a \
             file the program reads goes in [generator] files)",
        ));
    }
    let raw = raw.into_inner();
    let command = raw.command.get_ref();
    if command.first().is_none_or(|p| p.trim().is_empty()) {
        return Err(src.error(
            raw.command.span(),
            "[generator] command",
            "give the program and its arguments, e.g. [\"python3\", \"load.py\"]",
        ));
    }
    let steps = step_names(src, &raw.steps)?;
    let dir = src.path.parent().unwrap_or(Path::new("."));
    let mut files = Vec::new();
    for file in raw.files.iter().flatten() {
        let fail = |m: String| src.error(file.span(), "[generator] files", m);
        let Some(path) = inside(file.get_ref()) else {
            return Err(fail(format!(
                "{:?} is not inside the test's directory: give a relative path without `..`",
                file.get_ref()
            )));
        };
        if !dir.join(&path).is_file() {
            return Err(fail(format!(
                "{:?} is not a file ({})",
                file.get_ref(),
                dir.join(&path).display()
            )));
        }
        if !files.contains(&path) {
            files.push(path);
        }
    }
    // The command's own words that name a file beside the test (the script it runs) go too.
    for word in command {
        if let Some(path) = inside(word) {
            if dir.join(&path).is_file() && !files.contains(&path) {
                files.push(path);
            }
        }
    }
    Ok(Generator {
        command: raw.command.into_inner(),
        steps,
        files,
    })
}

/// The declared step names: at least one, each non-empty and unique.
fn step_names(
    src: &Source<'_>,
    steps: &Spanned<Vec<Spanned<String>>>,
) -> Result<Vec<String>, TestDefError> {
    let key = "[generator] steps";
    if steps.get_ref().is_empty() {
        return Err(src.error(
            steps.span(),
            key,
            "declare the step names the program reports, e.g. [\"put\", \"get\"]",
        ));
    }
    let mut seen = HashSet::new();
    let mut names = Vec::new();
    for name in steps.get_ref() {
        let text = name.get_ref().trim();
        if text.is_empty() || text.len() > MAX_STEP_NAME {
            return Err(src.error(
                name.span(),
                key,
                format!("a step name has 1 to {MAX_STEP_NAME} characters"),
            ));
        }
        if !seen.insert(text) {
            return Err(src.error(
                name.span(),
                key,
                format!("step name {text:?} is declared twice"),
            ));
        }
        names.push(text.to_string());
    }
    Ok(names)
}

/// Refuses the `[bench]` keys that pace HTTP users: a program paces itself.
fn check_bench(src: &Source<'_>, b: &RawBench) -> Result<(), TestDefError> {
    let given = [
        ("startup_delay", b.startup_delay.as_ref().map(Spanned::span)),
        (
            "sleep_time_min",
            b.sleep_time_min.as_ref().map(Spanned::span),
        ),
        (
            "sleep_time_max",
            b.sleep_time_max.as_ref().map(Spanned::span),
        ),
        ("sleep_time", b.sleep_time.as_ref().map(Spanned::span)),
        ("ok_codes", b.ok_codes.as_ref().map(Spanned::span)),
        ("timeout", b.timeout.as_ref().map(Spanned::span)),
        ("insecure", b.insecure.as_ref().map(Spanned::span)),
        ("rate", b.rate.as_ref().map(Spanned::span)),
        ("max_users", b.max_users.as_ref().map(Spanned::span)),
        ("resources", b.resources.as_ref().map(Spanned::span)),
        (
            "resource_connections",
            b.resource_connections.as_ref().map(Spanned::span),
        ),
        ("seed", b.seed.as_ref().map(Spanned::span)),
        ("compression", b.compression.as_ref().map(Spanned::span)),
    ];
    match given.into_iter().find_map(|(k, s)| Some((k, s?))) {
        Some((key, span)) => Err(src.error(
            span,
            &format!("[bench] {key}"),
            "applies to [[step]]s, not to a [generator], which paces itself: only cycles, \
             duration, cycle_time and apdex_t apply",
        )),
        None => Ok(()),
    }
}

/// `path` without its `.` parts when it is relative and stays inside the test's directory
/// (no root, no `..`): the form deploy places beside the test.
fn inside(path: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}
