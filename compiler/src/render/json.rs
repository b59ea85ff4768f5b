//! JSON output: `{"diagnostics":[{"file","line","column","severity","code","message","path","help"}]}`.

use crate::diag::Diagnostic;
use serde::Serialize;

#[derive(Serialize)]
struct Output<'a> {
    diagnostics: Vec<Entry<'a>>,
}

#[derive(Serialize)]
struct Entry<'a> {
    file: &'a str,
    line: u32,
    column: u32,
    severity: &'static str,
    code: &'static str,
    message: &'a str,
    path: &'a str,
    help: Option<&'a str>,
}

/// Pretty-printed JSON, one entry per diagnostic, ending with a newline.
pub fn render(diags: &[Diagnostic]) -> String {
    let out = Output {
        diagnostics: diags
            .iter()
            .map(|d| Entry {
                file: &d.file,
                line: d.span.line,
                column: d.span.column,
                severity: d.severity.name(),
                code: d.code.code,
                message: &d.message,
                path: &d.path,
                help: d.help.as_deref(),
            })
            .collect(),
    };
    let mut s =
        serde_json::to_string_pretty(&out).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;

    #[test]
    fn json_snapshot() {
        let (diags, _) = fixtures::diagnostics();
        let out = super::render(&diags);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["diagnostics"][0]["line"], 12);
        insta::assert_snapshot!(out);
    }
}
