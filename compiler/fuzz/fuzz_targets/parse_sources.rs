//! Fuzzes the whole front end: arbitrary bytes as a policy file never panic.
#![no_main]

use compiler::front::{parse_sources, Source};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The same bytes as YAML and as JSON (the two readers), in one parallel run.
    let sources = ["fuzz.yaml", "fuzz.json"].map(|path| Source { path: path.into(), text: data.to_vec() });
    let out = parse_sources(sources.to_vec());
    assert!(out.diagnostics.len() <= 2 * (data.len() + 1));
});
