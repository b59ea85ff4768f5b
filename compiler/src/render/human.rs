//! Human output: one miette graphical report per diagnostic, with the source snippet, a label
//! at the offending span naming the field path, the code and the help.

use super::SourceMap;
use crate::diag::{Diagnostic, Severity};
use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError, MietteSpanContents,
    SourceCode, SourceSpan, SpanContents,
};
use std::fmt;

/// How the terminal looks: colours on or off, and its width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Terminal {
    pub color: bool,
    pub width: usize,
}

/// Renders every diagnostic; `None` gives the deterministic form used in tests (no colour,
/// Unicode box drawing, 100 columns).
pub fn render(diags: &[Diagnostic], sources: &SourceMap<'_>, terminal: Option<Terminal>) -> String {
    let term = terminal.unwrap_or(Terminal {
        color: false,
        width: 100,
    });
    let theme = if term.color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(term.width)
        .with_links(false);
    let mut out = String::new();
    for (i, d) in diags.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let source = sources.get(&d.file).map(|text| Named {
            name: &d.file,
            text,
        });
        let report = Report { d, source };
        if handler.render_report(&mut out, &report).is_err() {
            // Rendering into a String only fails on a formatting bug; fall back to one line.
            out.push_str(&d.to_string());
            out.push('\n');
        }
    }
    out
}

/// A file's text with its name, borrowed (miette's `NamedSource` wants owned text).
struct Named<'a> {
    name: &'a str,
    text: &'a str,
}

impl SourceCode for Named<'_> {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let c = self.text.read_span(span, before, after)?;
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.to_string(),
            c.data(),
            *c.span(),
            c.line(),
            c.column(),
            c.line_count(),
        )))
    }
}

/// A diagnostic seen through miette's `Diagnostic` trait.
struct Report<'a> {
    d: &'a Diagnostic,
    source: Option<Named<'a>>,
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.d, f)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.source.is_none() && !self.d.file.is_empty() {
            // No snippet to show the place: say it in the message.
            let s = self.d.span;
            write!(f, "{}:{}:{}: ", self.d.file, s.line, s.column)?;
        }
        f.write_str(&self.d.message)
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(format!(
            "{}({})",
            self.d.code.code, self.d.code.name
        )))
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.d.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
            Severity::Info => miette::Severity::Advice,
        })
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.d
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display + 'a>)
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|s| s as &dyn SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let text = self.source.as_ref()?.text;
        let start = (self.d.span.offset as usize).min(text.len());
        let end = (start + self.d.span.len as usize).min(text.len());
        // A node spanning many lines (a whole rule) is labelled at its first line only.
        let end = text[start..end].find('\n').map_or(end, |n| start + n);
        // miette draws no label past the last character: point at that character instead.
        let at_eof = start == text.len() && !text.is_empty();
        let (start, end) = match text.char_indices().last() {
            Some((last, _)) if at_eof => (last, text.len()),
            _ => (start, end),
        };
        let label = if at_eof {
            "end of file".to_string()
        } else if self.d.path.is_empty() {
            "here".to_string()
        } else {
            self.d.path.clone()
        };
        Some(Box::new(std::iter::once(
            LabeledSpan::new_primary_with_span(Some(label), (start, end - start)),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;

    #[test]
    fn human_snapshot() {
        let (diags, files) = fixtures::diagnostics();
        let sources = fixtures::sources(&files);
        insta::assert_snapshot!(super::render(&diags, &sources, None));
    }
}
