//! SARIF 2.1.0 output for GitHub code scanning: one run, `tool.driver` with every code as a rule
//! (name, descriptions and help from its documentation), one result per diagnostic located by a
//! relative artifact URI and a 1-based start line and column.

use crate::diag::{codes, Code, Diagnostic, Severity};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Where the tool's documentation lives. The project has no public home page of its own; its
/// codes document checks of the Cilium policy language, whose reference this points at.
pub const INFORMATION_URI: &str = "https://docs.cilium.io/en/stable/security/policy/";

/// The SARIF log, pretty-printed.
pub fn render(diags: &[Diagnostic]) -> String {
    // Every registered code is a rule (a stable rule list), plus any code only a test uses.
    let mut rules: BTreeMap<&str, &Code> = codes::ALL.iter().map(|c| (c.code, *c)).collect();
    for d in diags {
        rules.entry(d.code.code).or_insert(d.code);
    }
    let index: BTreeMap<&str, usize> = rules.keys().enumerate().map(|(i, k)| (*k, i)).collect();
    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "cilium-policy",
                    "version": env!("CARGO_PKG_VERSION"),
                    "informationUri": INFORMATION_URI,
                    "rules": rules.values().map(|c| rule(c)).collect::<Vec<_>>(),
                }
            },
            "columnKind": "unicodeCodePoints",
            "results": diags.iter().map(|d| result(d, index[d.code.code])).collect::<Vec<_>>(),
        }]
    });
    let mut s = serde_json::to_string_pretty(&log).unwrap_or_default();
    s.push('\n');
    s
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

fn rule(c: &Code) -> Value {
    let short = c
        .doc
        .split(". ")
        .next()
        .unwrap_or(c.doc)
        .trim_end_matches('.');
    json!({
        "id": c.code,
        "name": c.name,
        "shortDescription": { "text": format!("{short}.") },
        "fullDescription": { "text": c.doc },
        "help": { "text": c.doc, "markdown": c.doc },
        "defaultConfiguration": { "level": level(c.severity) },
    })
}

fn result(d: &Diagnostic, rule_index: usize) -> Value {
    let mut text = d.message.clone();
    if !d.path.is_empty() {
        text.push_str(&format!(" (at {})", d.path));
    }
    if let Some(h) = &d.help {
        text.push_str(&format!("\nhelp: {h}"));
    }
    let mut physical = json!({
        "artifactLocation": { "uri": uri(&d.file), "uriBaseId": "%SRCROOT%" },
    });
    if d.span.line > 0 {
        physical["region"] =
            json!({ "startLine": d.span.line, "startColumn": d.span.column.max(1) });
    }
    json!({
        "ruleId": d.code.code,
        "ruleIndex": rule_index,
        "level": level(d.severity),
        "message": { "text": text },
        "locations": [{ "physicalLocation": physical }],
    })
}

/// A relative URI reference for a path: relative to the current directory when absolute and
/// inside it, `/`-separated, with characters outside RFC 3986's unreserved set percent-encoded.
fn uri(path: &str) -> String {
    let p = std::path::Path::new(path);
    let rel = std::env::current_dir()
        .ok()
        .and_then(|cwd| {
            p.strip_prefix(cwd)
                .ok()
                .map(|r| r.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| path.to_string());
    let rel = rel.strip_prefix("./").unwrap_or(&rel).replace('\\', "/");
    let mut out = String::new();
    for b in rel.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;

    #[test]
    fn uris_are_relative_and_encoded() {
        assert_eq!(super::uri("./a b/c%.yaml"), "a%20b/c%25.yaml");
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            super::uri(&cwd.join("x/y.yaml").to_string_lossy()),
            "x/y.yaml"
        );
    }

    #[test]
    fn sarif_snapshot() {
        let (diags, _) = fixtures::diagnostics();
        let out = super::render(&diags);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["version"], "2.1.0");
        let results = v["runs"][0]["results"].as_array().unwrap();
        assert_eq!(results.len(), diags.len());
        // Every result's ruleIndex points at its rule.
        for r in results {
            let i = r["ruleIndex"].as_u64().unwrap() as usize;
            assert_eq!(
                v["runs"][0]["tool"]["driver"]["rules"][i]["id"],
                r["ruleId"]
            );
        }
        // Only the results, without rule indexes: those change whenever a code is added.
        let mut results = v["runs"][0]["results"].clone();
        for r in results.as_array_mut().unwrap() {
            r.as_object_mut().unwrap().remove("ruleIndex");
        }
        insta::assert_json_snapshot!(results);
    }
}
