//! Typed label-selector errors that carry the byte range they point at and render with miette.

use miette::{NamedSource, SourceSpan};
use thiserror::Error;

/// What is wrong with a label-selector string.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SelectorErrorKind {
    #[error("unexpected {found}, expected {expected}")]
    UnexpectedToken { found: String, expected: String },
    #[error("the selector ends too early, expected {expected}")]
    UnexpectedEnd { expected: String },
    #[error("invalid character {0:?}")]
    InvalidCharacter(char),
    #[error("invalid label key {key:?}: {reason}")]
    InvalidKey { key: String, reason: String },
    #[error("invalid label value {value:?}: {reason}")]
    InvalidValue { value: String, reason: String },
}

impl SelectorErrorKind {
    fn label(&self) -> &'static str {
        match self {
            SelectorErrorKind::UnexpectedToken { .. } => "unexpected here",
            SelectorErrorKind::UnexpectedEnd { .. } => "ends here",
            SelectorErrorKind::InvalidCharacter(_) => "not allowed in a label selector",
            SelectorErrorKind::InvalidKey { .. } => "this key",
            SelectorErrorKind::InvalidValue { .. } => "this value",
        }
    }
}

/// A label-selector string that could not be parsed: the reason, the input, and the byte range
/// (`offset`, `len`) it points at. Renders as a miette report with the string and a label.
#[derive(Debug, Error, miette::Diagnostic)]
#[error("invalid label selector: {kind}")]
#[diagnostic(
    code(cilium_policy::label_selector),
    help("syntax: key, !key, key=value, key!=value, key in (a,b), key notin (a,b), separated by commas; keys may carry a source prefix such as k8s: or any:")
)]
pub struct SelectorError {
    pub kind: SelectorErrorKind,
    pub offset: usize,
    pub len: usize,
    #[source_code]
    input: NamedSource<String>,
    #[label("{}", kind.label())]
    span: SourceSpan,
}

impl SelectorError {
    pub(crate) fn new(kind: SelectorErrorKind, input: &str, offset: usize, len: usize) -> Self {
        SelectorError {
            kind,
            offset,
            len,
            input: NamedSource::new("label selector", input.to_string()),
            span: (offset, len).into(),
        }
    }

    /// Names the source in reports, e.g. the flag the string came from (`--src`).
    pub fn with_source_name(mut self, name: &str) -> Self {
        let text = self.input.inner().clone();
        self.input = NamedSource::new(name, text);
        self
    }
}
