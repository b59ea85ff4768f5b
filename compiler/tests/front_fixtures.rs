//! Every front-end code has a fixture `testdata/lint/<code>-<name>.*`, and each fixture triggers
//! exactly that one diagnostic (the lint harness snapshots their rendered output).

use compiler::front::{parse_sources, Source, FRONT_CODES};
use std::path::PathBuf;

fn fixtures() -> Vec<(String, PathBuf)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/lint");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("testdata/lint exists") {
        let path = entry.expect("readable directory").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if FRONT_CODES
            .iter()
            .any(|c| name.starts_with(&format!("{}-", c.code)))
        {
            out.push((name, path));
        }
    }
    out.sort();
    out
}

#[test]
fn every_front_code_has_a_fixture_named_after_it() {
    let names: Vec<String> = fixtures().into_iter().map(|(n, _)| n).collect();
    for code in FRONT_CODES {
        let prefix = format!("{}-{}.", code.code, code.name);
        assert!(
            names.iter().any(|n| n.starts_with(&prefix)),
            "no fixture {prefix}yaml|json for {}",
            code.code
        );
    }
}

#[test]
fn each_fixture_triggers_exactly_its_diagnostic() {
    for (name, path) in fixtures() {
        let text = std::fs::read(&path).expect("readable fixture");
        let out = parse_sources(vec![Source {
            path: name.clone(),
            text,
        }]);
        let got: Vec<String> = out.diagnostics.iter().map(|d| d.to_string()).collect();
        assert_eq!(out.diagnostics.len(), 1, "{name}: {got:#?}");
        let d = &out.diagnostics[0];
        assert!(
            name.starts_with(&format!("{}-{}.", d.code.code, d.code.name)),
            "{name}: {got:#?}"
        );
        assert!(
            d.span.line >= 1 && d.span.column >= 1,
            "{name}: unlocated {d}"
        );
        if d.is_error() {
            assert!(
                out.policy.rules.is_empty(),
                "{name}: an object with an error was lowered"
            );
        }
    }
}
