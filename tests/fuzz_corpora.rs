//! Replays the committed fuzz corpora (fuzz/corpus/*) through the same entry points as the
//! cargo-fuzz targets, on stable Rust, so that CI checks every input the long fuzz runs kept:
//! no panic, and the result XML's exact round trip. `scripts/fuzz.sh` fuzzes further.

use std::path::{Path, PathBuf};

use benchmaster::protocol::progress::ProgressEvent;
use benchmaster::result::{read, write};
use benchmaster::test_def::{self, Overrides};

use crate::util::tempdir;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let data = std::fs::read(&p).unwrap();
            (p, data)
        })
        .collect();
    inputs.sort();
    assert!(
        inputs.len() > 50,
        "{}: {} inputs",
        dir.display(),
        inputs.len()
    );
    println!("{target}: {} inputs", inputs.len());
    inputs
}

#[test]
fn result_xml_corpus_reads_or_is_refused_and_round_trips() {
    let mut read_ok = 0;
    for (path, data) in corpus("result_xml") {
        let Ok(result) = read::from_reader(&data[..], "fuzz.xml") else {
            continue;
        };
        read_ok += 1;
        let mut xml = Vec::new();
        write::to_writer(&result, &mut xml).unwrap();
        let again = read::from_reader(&xml[..], "again.xml").unwrap_or_else(|e| {
            panic!("{}: written back, it no longer reads: {e}", path.display())
        });
        assert!(
            again == result,
            "{}: changed through write and read",
            path.display()
        );
    }
    println!("result_xml: {read_ok} inputs read and round-tripped");
}

#[test]
fn nodes_corpus_parses_or_is_refused() {
    for (_, data) in corpus("nodes") {
        let text = String::from_utf8_lossy(&data);
        let _ = benchmaster::nodes::parse(&text, Path::new("fuzz.pssh"));
    }
}

#[test]
fn progress_corpus_parses_and_prints_back() {
    for (path, data) in corpus("progress") {
        let line = String::from_utf8_lossy(&data);
        if let Some(event) = ProgressEvent::parse(&line) {
            let printed = event.to_line();
            assert!(!printed.contains('\n'), "{}", path.display());
            assert!(
                ProgressEvent::parse(&printed).is_some(),
                "{}",
                path.display()
            );
        }
    }
}

#[test]
fn test_def_corpus_loads_or_is_refused() {
    let dir = tempdir();
    let file = dir.path().join("fuzz.toml");
    let mut loaded = 0;
    for (_, data) in corpus("test_def") {
        std::fs::write(&file, &data).unwrap();
        if let Ok(plan) = test_def::load(&file, &Overrides::default()) {
            loaded += 1;
            let _ = plan.describe();
        }
    }
    println!("test_def: {loaded} inputs loaded");
}
