//! Fuzzes the YAML and JSON readers: any UTF-8 text reads into trees or errors, within the limits.
#![no_main]

use compiler::front::json::read_json;
use compiler::front::yaml::{read_stream, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let limits = Limits::default();
        for doc in read_stream(text, limits).into_iter().chain(read_json(text, limits)) {
            if let Some(root) = doc.root {
                assert!(root.count() <= limits.max_nodes);
            }
            for e in doc.errors {
                assert!(e.span().offset as usize <= text.len());
            }
        }
    }
});
