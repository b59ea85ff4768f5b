//! The one diagnostic type. Front ends, lowering and lint rules all produce [`Diagnostic`]s;
//! renderers (`crate::render`) turn a list of them into human, JSON, SARIF or GitHub output.

pub mod codes;

use ir::Span;
use serde::Serialize;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A stable diagnostic code with its documentation. Every code is declared once, as a `static`,
/// next to the check that emits it (see `declare_code!`), and listed in `crate::diag::codes::ALL`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Code {
    /// Stable identifier, e.g. `CP1001`. Never reused, never renumbered.
    pub code: &'static str,
    /// Kebab-case name, e.g. `unknown-field`.
    pub name: &'static str,
    pub severity: Severity,
    /// What the check finds, why it matters, how to fix it (Markdown).
    pub doc: &'static str,
}

/// Declares a diagnostic code: `declare_code!(UNKNOWN_FIELD, "CP1003", "unknown-field", Error, "doc");`
#[macro_export]
macro_rules! declare_code {
    ($(#[$m:meta])* $ident:ident, $code:literal, $name:literal, $sev:ident, $doc:expr) => {
        $(#[$m])*
        pub static $ident: $crate::diag::Code = $crate::diag::Code {
            code: $code,
            name: $name,
            severity: $crate::diag::Severity::$sev,
            doc: $doc,
        };
    };
}

/// One finding, located in a file (when there is one) with a 1-based line and column, and the
/// field path of the offending node (e.g. `spec.ingress[0].toPorts[0].ports[1].port`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    #[serde(serialize_with = "ser_code")]
    pub code: &'static Code,
    pub severity: Severity,
    /// Path as the user gave it (`-` for stdin); empty when not about a file.
    pub file: String,
    pub span: Span,
    pub path: String,
    pub message: String,
    pub help: Option<String>,
}

fn ser_code<S: serde::Serializer>(c: &&'static Code, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(c.code)
}

impl Diagnostic {
    pub fn new(
        code: &'static Code,
        file: impl Into<String>,
        span: Span,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            code,
            severity: code.severity,
            file: file.into(),
            span,
            path: path.into(),
            message: message.into(),
            help: None,
        }
    }
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}[{}]: {}",
            self.file,
            self.span.line,
            self.span.column,
            self.severity,
            self.code.code,
            self.message
        )?;
        if !self.path.is_empty() {
            write!(f, " (at {})", self.path)?;
        }
        Ok(())
    }
}

/// Sorts diagnostics by file, position, then code — the order every renderer prints.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (&a.file, a.span.offset, a.code.code, &a.message).cmp(&(
            &b.file,
            b.span.offset,
            b.code.code,
            &b.message,
        ))
    });
}
