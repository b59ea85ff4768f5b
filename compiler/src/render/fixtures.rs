//! Hand-built diagnostics over a small policy file, shared by the renderers' snapshot tests.

use super::SourceMap;
use crate::declare_code;
use crate::diag::{Diagnostic, Severity};
use ir::Span;

declare_code!(
    TEST_ERROR,
    "CP9901",
    "test-error",
    Error,
    "An error used by renderer tests."
);
declare_code!(
    TEST_WARNING,
    "CP9902",
    "test-warning",
    Warning,
    "A warning used by renderer tests."
);

pub const POLICY: &str = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: \"l4, rule: 1\"\nspec:\n  endpointSelector:\n    matchLabels:\n      app: web\n  ingress:\n  - toPorts:\n    - ports:\n      - port: \"70000\"\n        protocol: TCP\n";

/// The files (path, text) the diagnostics point into.
pub fn files() -> Vec<(String, Vec<u8>)> {
    vec![
        (
            "policies/web, 100%.yaml".to_string(),
            POLICY.as_bytes().to_vec(),
        ),
        ("policies/bad.yaml".to_string(), vec![0xff, 0xfe, b'\n']),
    ]
}

pub fn sources(files: &[(String, Vec<u8>)]) -> SourceMap<'_> {
    files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_slice()))
        .collect()
}

fn span_of(needle: &str) -> Span {
    let offset = POLICY.find(needle).expect("needle in POLICY");
    let before = &POLICY[..offset];
    let line = before.matches('\n').count() + 1;
    let column = offset - before.rfind('\n').map_or(0, |p| p + 1) + 1;
    Span {
        offset: offset as u32,
        len: needle.len() as u32,
        line: line as u32,
        column: column as u32,
    }
}

/// Diagnostics of every severity, with and without help, path, snippet and file.
pub fn diagnostics() -> (Vec<Diagnostic>, Vec<(String, Vec<u8>)>) {
    let file = "policies/web, 100%.yaml";
    let diags = vec![
        Diagnostic::new(
            &TEST_ERROR,
            file,
            span_of("\"70000\""),
            "spec.ingress[0].toPorts[0].ports[0].port",
            "port 70000 is outside 1-65535",
        )
        .with_help("use a port from 1 to 65535, or 0 for every port"),
        Diagnostic::new(
            &TEST_WARNING,
            file,
            span_of("- toPorts"),
            "spec.ingress[0]",
            "100% of traffic: a rule, with commas\nand a second line",
        ),
        Diagnostic::new(
            &TEST_WARNING,
            file,
            span_of("app: web"),
            "",
            "an informational note",
        )
        .with_severity(Severity::Info),
        Diagnostic::new(
            &TEST_ERROR,
            "policies/bad.yaml",
            Span {
                offset: 0,
                len: 1,
                line: 1,
                column: 1,
            },
            "",
            "invalid UTF-8",
        ),
    ];
    (diags, files())
}
