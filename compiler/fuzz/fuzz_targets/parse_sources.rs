//! Fuzzes the whole front end: arbitrary bytes as a policy file never panic.
#![no_main]

use compiler::front::{parse_sources, Source};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let out = parse_sources(vec![Source { path: "fuzz.yaml".into(), text: data.to_vec() }]);
    assert!(out.diagnostics.len() <= data.len() + 1);
});
