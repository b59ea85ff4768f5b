//! GitHub Actions workflow commands: `::error file=F,line=L,col=C,title=CODE::message`, with
//! `%`, CR and LF escaped everywhere and `:` and `,` escaped in properties, as GitHub specifies.

use crate::diag::{Diagnostic, Severity};
use std::fmt::Write;

/// One workflow command per diagnostic; the help follows the message on its own line.
pub fn render(diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diags {
        let command = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "notice",
        };
        let mut props = Vec::new();
        if !d.file.is_empty() {
            props.push(format!("file={}", property(&d.file)));
            if d.span.line > 0 {
                props.push(format!("line={}", d.span.line));
                props.push(format!("col={}", d.span.column));
            }
        }
        props.push(format!("title={}", property(d.code.code)));
        let mut message = d.message.clone();
        if !d.path.is_empty() {
            let _ = write!(message, " (at {})", d.path);
        }
        if let Some(h) = &d.help {
            let _ = write!(message, "\nhelp: {h}");
        }
        let _ = writeln!(out, "::{command} {}::{}", props.join(","), data(&message));
    }
    out
}

/// Escapes a command's data (the message).
fn data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a property value.
fn property(s: &str) -> String {
    data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;

    #[test]
    fn escaping() {
        assert_eq!(super::data("100%\r\nx"), "100%25%0D%0Ax");
        assert_eq!(super::property("a,b:c%"), "a%2Cb%3Ac%25");
    }

    #[test]
    fn github_snapshot() {
        let (diags, _) = fixtures::diagnostics();
        insta::assert_snapshot!(super::render(&diags));
    }
}
