//! No input panics, hangs or balloons: random bytes, and corpus files with random mutations
//! (byte flips, insertions of YAML punctuation, truncation), go through `parse_sources`.

use compiler::front::{parse_sources, Source};
use proptest::prelude::*;
use std::path::PathBuf;

fn corpus_texts() -> Vec<Vec<u8>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut texts = Vec::new();
    for dir in [
        root.join("testdata/lint"),
        root.join("../shared/corpus"),
        root.join("../../shared/corpus"),
    ] {
        if let Ok(sources) = compiler::front::read_inputs(&[dir]) {
            texts.extend(sources.into_iter().map(|s| s.text));
        }
    }
    assert!(!texts.is_empty(), "no seed inputs found");
    texts
}

/// Output stays proportional to the input: at most a few diagnostics and rules per input byte.
fn check_bounded(text: Vec<u8>) {
    let len = text.len();
    let out = parse_sources(vec![Source {
        path: "fuzz.yaml".into(),
        text,
    }]);
    assert!(
        out.diagnostics.len() <= len + 1,
        "{} diagnostics for {len} bytes",
        out.diagnostics.len()
    );
    assert!(
        out.policy.rules.len() <= len + 1,
        "{} rules for {len} bytes",
        out.policy.rules.len()
    );
    for d in &out.diagnostics {
        assert!(
            d.span.line >= 1 && d.span.column >= 1,
            "unlocated diagnostic {d}"
        );
        assert!(d.span.offset as usize <= len, "span beyond the input: {d}");
    }
}

const PUNCT: &[u8] = b"{}[]:,-&*!|>'\"#%@`\n\t ?<";

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_do_not_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check_bounded(bytes);
    }

    #[test]
    fn random_yaml_punctuation_does_not_panic(idx in proptest::collection::vec(0..PUNCT.len(), 0..256)) {
        check_bounded(idx.into_iter().map(|i| PUNCT[i]).collect());
    }

    #[test]
    fn mutated_corpus_files_do_not_panic(
        file in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..3, 0..PUNCT.len(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let texts = corpus_texts();
        let mut text = texts[file.index(texts.len())].clone();
        for (at, op, p, byte) in edits {
            if text.is_empty() { break; }
            let i = at.index(text.len());
            match op {
                0 => text[i] = byte,
                1 => text.insert(i, PUNCT[p]),
                _ => { text.remove(i); }
            }
        }
        let keep = cut.index(text.len() + 1);
        text.truncate(keep.max(text.len() / 2));
        check_bounded(text);
    }
}
