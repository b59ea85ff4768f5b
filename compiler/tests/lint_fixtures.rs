//! Lints every fixture in `testdata/lint/` (one per diagnostic code; the file name starts with
//! the code it demonstrates) and snapshots the human and JSON output.

use compiler::diag::codes;
use compiler::front::{parse_sources, Source};
use compiler::render::{self, Format, SourceMap};
use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every fixture: a file, or a directory linted as one input.
fn fixtures() -> Vec<PathBuf> {
    let dir = repo_root().join("testdata/lint");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    out.sort();
    out
}

/// The fixture's files with repository-relative paths, so snapshots do not depend on the checkout.
fn sources(fixture: &Path) -> Vec<Source> {
    let mut files = vec![];
    if fixture.is_dir() {
        for e in std::fs::read_dir(fixture).expect("fixture directory") {
            files.push(e.expect("directory entry").path());
        }
        files.sort();
    } else {
        files.push(fixture.to_path_buf());
    }
    let root = repo_root();
    files
        .into_iter()
        .map(|p| Source {
            path: p
                .strip_prefix(&root)
                .expect("inside the repository")
                .to_string_lossy()
                .into_owned(),
            text: std::fs::read(&p).expect("readable fixture"),
        })
        .collect()
}

#[test]
fn every_fixture_reports_its_code() {
    let fixtures = fixtures();
    assert!(!fixtures.is_empty(), "no fixtures in testdata/lint");
    for fixture in fixtures {
        let name = fixture
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        let code = name.get(..6).unwrap_or_default();
        assert!(
            codes::find(code).is_some(),
            "{name}: the name must start with a registered code"
        );
        let front = parse_sources(sources(&fixture));
        let diags = compiler::lint::run(&front);
        assert!(
            diags.iter().any(|d| d.code.code == code),
            "{name} does not produce {code}; it produced: {:#?}",
            diags.iter().map(ToString::to_string).collect::<Vec<_>>()
        );
        let map: SourceMap<'_> = front
            .sources
            .iter()
            .map(|s| (s.path.as_str(), s.text.as_slice()))
            .collect();
        let opts = |format| render::Options {
            format,
            sources: &map,
            terminal: None,
        };
        let stem = name
            .trim_end_matches(".yaml")
            .trim_end_matches(".json")
            .trim_end_matches(".yml");
        insta::assert_snapshot!(
            format!("{stem}.human"),
            render::render(&diags, &opts(Format::Human))
        );
        insta::assert_snapshot!(
            format!("{stem}.json"),
            render::render(&diags, &opts(Format::Json))
        );
    }
}

#[test]
fn every_code_has_a_fixture() {
    let names: Vec<String> = fixtures()
        .iter()
        .map(|p| {
            p.file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let missing: Vec<&str> = codes::ALL
        .iter()
        .map(|c| c.code)
        .filter(|c| !names.iter().any(|n| n.starts_with(c)))
        .collect();
    assert!(
        missing.is_empty(),
        "codes without a fixture in testdata/lint: {missing:?}"
    );
}

/// The lint rules' fixtures together, in the formats CI pipelines consume.
#[test]
fn sarif_and_github_of_the_rule_fixtures() {
    let sources: Vec<Source> = fixtures()
        .iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("CP2"))
        })
        .flat_map(|p| sources(p))
        .collect();
    let front = parse_sources(sources);
    let diags = compiler::lint::run(&front);
    let map = SourceMap::new();
    let opts = |format| render::Options {
        format,
        sources: &map,
        terminal: None,
    };
    insta::assert_snapshot!(
        "rule_fixtures.github",
        render::render(&diags, &opts(Format::Github))
    );
    let sarif: serde_json::Value =
        serde_json::from_str(&render::render(&diags, &opts(Format::Sarif))).expect("SARIF is JSON");
    let run = &sarif["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), codes::ALL.len());
    let mut results = run["results"].clone();
    for r in results.as_array_mut().expect("results") {
        let i = r["ruleIndex"].as_u64().expect("ruleIndex") as usize;
        assert_eq!(rules[i]["id"], r["ruleId"]);
        r.as_object_mut().expect("result").remove("ruleIndex");
    }
    insta::assert_json_snapshot!("rule_fixtures.sarif_results", results);
}
