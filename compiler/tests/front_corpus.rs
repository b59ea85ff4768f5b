//! Every file of the shared corpus (`../shared/corpus` from the repository root) parses and
//! lowers with no error diagnostic, and its IR text is snapshotted.

use compiler::front::{load, parse_sources, read_inputs};
use std::path::PathBuf;

/// `shared/` lies beside the clone (CI, /work/main); a worktree under /work/wt/ is one level deeper.
fn corpus_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let candidates = [
        root.join("../shared/corpus"),
        root.join("../../shared/corpus"),
    ];
    candidates
        .iter()
        .find(|p| p.is_dir())
        .unwrap_or(&candidates[0])
        .clone()
}

fn corpus_files() -> Vec<PathBuf> {
    let dir = corpus_dir();
    assert!(dir.is_dir(), "corpus not found at {}", dir.display());
    let sources = read_inputs(&[dir]).expect("corpus is readable");
    sources.into_iter().map(|s| PathBuf::from(s.path)).collect()
}

/// A path relative to the corpus root, so snapshots do not depend on the checkout location.
fn relative(p: &std::path::Path) -> String {
    let root = corpus_dir();
    p.strip_prefix(&root).unwrap_or(p).display().to_string()
}

#[test]
fn every_corpus_file_lowers_without_errors() {
    let files = corpus_files();
    assert!(
        files.len() >= 25,
        "expected the whole corpus, found {} files",
        files.len()
    );
    let out = load(&[corpus_dir()]).expect("corpus is readable");
    let errors = out.error_messages();
    assert!(
        errors.is_empty(),
        "errors in the corpus:\n{}",
        errors.join("\n")
    );
    assert!(
        out.policy.rules.len() >= 30,
        "only {} rules lowered",
        out.policy.rules.len()
    );
}

#[test]
fn corpus_ir_snapshots() {
    for path in corpus_files() {
        let rel = relative(&path);
        let text = std::fs::read(&path).expect("readable");
        let out = parse_sources(vec![compiler::front::Source {
            path: rel.clone(),
            text,
        }]);
        let mut shown = ir::text::render(&out.policy);
        for d in &out.diagnostics {
            shown.push_str(&format!("diagnostic {d}\n"));
        }
        let name = rel.replace(['/', '.'], "_");
        insta::assert_snapshot!(name, shown);
    }
}

/// Files are parsed in parallel: the merged output is in input order and equals the per-file
/// results put together (selectors re-interned, rule ids renumbered).
#[test]
fn parallel_parsing_merges_in_input_order() {
    let sources = read_inputs(&[corpus_dir()]).expect("corpus is readable");
    let all = parse_sources(sources.clone());
    let mut expected = Vec::new();
    for src in sources {
        let path = src.path.clone();
        let one = parse_sources(vec![src]);
        for r in &one.policy.rules {
            expected.push((
                path.clone(),
                one.policy.selectors[r.subject].to_string(),
                r.provenance.span,
            ));
        }
    }
    let got: Vec<_> = all
        .policy
        .rules
        .iter()
        .map(|r| {
            (
                all.policy.file_path(r.provenance.file).to_string(),
                all.policy.selectors[r.subject].to_string(),
                r.provenance.span,
            )
        })
        .collect();
    assert_eq!(got, expected);
    assert!(all
        .policy
        .rules
        .iter()
        .enumerate()
        .all(|(i, r)| r.id.0 as usize == i));
}
