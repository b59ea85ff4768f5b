//! Every real policy file of the shared corpus (`../shared/corpus` beside the repository:
//! Cilium and Kubernetes documentation examples) lints with no error.

use std::path::{Path, PathBuf};

/// `<repo>/../shared/corpus`; in a git worktree, beside the main checkout instead.
fn corpus() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut candidates = vec![root.join("../shared/corpus")];
    // A worktree's `.git` is a file `gitdir: <main>/.git/worktrees/<name>`.
    if let Ok(text) = std::fs::read_to_string(root.join(".git")) {
        if let Some(gitdir) = text.trim().strip_prefix("gitdir: ") {
            let main = Path::new(gitdir).ancestors().nth(3).map(Path::to_path_buf);
            candidates.extend(main.map(|m| m.join("../shared/corpus")));
        }
    }
    candidates
        .into_iter()
        .find(|p| p.is_dir())
        .expect("the shared corpus is missing: clone the repository with shared/ beside it")
}

#[test]
fn corpus_lints_without_errors() {
    let dir = corpus();
    let front = compiler::front::load(std::slice::from_ref(&dir)).expect("corpus readable");
    assert!(
        front.sources.len() >= 20,
        "only {} corpus files under {}",
        front.sources.len(),
        dir.display()
    );
    let diags = compiler::lint::run(&front);
    let errors: Vec<String> = diags
        .iter()
        .filter(|d| d.is_error())
        .map(ToString::to_string)
        .collect();
    assert!(
        errors.is_empty(),
        "corpus files with errors:\n{}",
        errors.join("\n")
    );
    // Every corpus file is a policy, and every one of them made it into the IR.
    for (i, src) in front.sources.iter().enumerate() {
        let lowered = front
            .policy
            .rules
            .iter()
            .any(|r| r.provenance.file.0 as usize == i);
        assert!(lowered, "{} contributed no rule", src.path);
    }
}
