//! Documentation/lint.md lists every diagnostic code with its documentation, generated from the
//! registry, so the page cannot fall behind the code. Regenerate with
//! `UPDATE_LINT_DOCS=1 cargo test -p compiler --test lint_docs`.

use std::path::Path;

const START: &str = "<!-- codes:start (generated from compiler::diag::codes::ALL) -->\n";
const END: &str = "<!-- codes:end -->";

#[test]
fn lint_md_lists_every_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Documentation/lint.md");
    let text = std::fs::read_to_string(&path).expect("Documentation/lint.md");
    let (head, rest) = text.split_once(START).expect("start marker");
    let (section, tail) = rest.split_once(END).expect("end marker");
    let want = compiler::diag::codes::markdown();
    if section != want {
        if std::env::var_os("UPDATE_LINT_DOCS").is_some() {
            std::fs::write(&path, format!("{head}{START}{want}{END}{tail}"))
                .expect("write lint.md");
            return;
        }
        panic!("Documentation/lint.md is out of date: run UPDATE_LINT_DOCS=1 cargo test -p compiler --test lint_docs");
    }
    for c in compiler::diag::codes::ALL.iter() {
        assert!(
            section.contains(c.code) && section.contains(c.doc),
            "{} missing",
            c.code
        );
    }
}
