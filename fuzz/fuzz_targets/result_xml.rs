//! Fuzz target: the result XML reader (`result::read::from_reader`) on arbitrary bytes.
//!
//! A document that reads must write back (`result::write::to_writer`) as a document that reads
//! again to the same result, and writing that gives the same bytes: what the master accepts
//! from a node, it can store and report without losing or changing anything.
#![no_main]

use benchmaster::result::{read, write, NodeResult};
use libfuzzer_sys::fuzz_target;

fn to_xml(r: &NodeResult) -> Vec<u8> {
    let mut xml = Vec::new();
    write::to_writer(r, &mut xml).expect("a read result writes back");
    xml
}

fuzz_target!(|data: &[u8]| {
    let Ok(result) = read::from_reader(data, "fuzz.xml") else {
        return;
    };
    let xml = to_xml(&result);
    let again = read::from_reader(&xml[..], "rewritten.xml").unwrap_or_else(|e| {
        panic!(
            "a result read from the input does not read back once written: {e}\n{}",
            String::from_utf8_lossy(&xml)
        )
    });
    assert!(again == result, "the result changed through write and read");
    assert!(
        to_xml(&again) == xml,
        "writing a result read back from our own XML changes it"
    );
});
