//! Renderers: one module per output format, each turning a sorted list of [`Diagnostic`]s into
//! text (`human` via miette, `json`, `sarif` for code scanning, `github` workflow commands).

pub mod github;
pub mod human;
pub mod json;
pub mod sarif;

#[cfg(test)]
mod fixtures;

use crate::diag::{Diagnostic, Severity};
use std::collections::HashMap;

/// The output formats of `cilium-policy lint -o`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
    Sarif,
    Github,
}

/// Source texts by path, so the human renderer can show snippets. Files that are not UTF-8
/// are left out (their diagnostics render without a snippet).
#[derive(Default)]
pub struct SourceMap<'a> {
    texts: HashMap<&'a str, &'a str>,
}

impl<'a> SourceMap<'a> {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn insert(&mut self, path: &'a str, text: &'a [u8]) {
        if let Ok(t) = std::str::from_utf8(text) {
            self.texts.insert(path, t);
        }
    }
    pub fn get(&self, path: &str) -> Option<&'a str> {
        self.texts.get(path).copied()
    }
}

impl<'a> FromIterator<(&'a str, &'a [u8])> for SourceMap<'a> {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a [u8])>>(iter: I) -> Self {
        let mut m = SourceMap::new();
        for (p, t) in iter {
            m.insert(p, t);
        }
        m
    }
}

/// Options of [`render`].
pub struct Options<'a> {
    pub format: Format,
    pub sources: &'a SourceMap<'a>,
    /// Colours and terminal width for `human` (tests use `None`: no colour, 100 columns).
    pub terminal: Option<human::Terminal>,
}

/// Renders `diags` (already sorted, see [`crate::diag::sort`]) in the chosen format.
pub fn render(diags: &[Diagnostic], opts: &Options<'_>) -> String {
    match opts.format {
        Format::Human => human::render(diags, opts.sources, opts.terminal),
        Format::Json => json::render(diags),
        Format::Sarif => sarif::render(diags),
        Format::Github => github::render(diags),
    }
}

/// Counts of diagnostics by severity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
}

impl Counts {
    pub fn of(diags: &[Diagnostic]) -> Counts {
        let mut c = Counts::default();
        for d in diags {
            match d.severity {
                Severity::Error => c.errors += 1,
                Severity::Warning => c.warnings += 1,
                Severity::Info => c.infos += 1,
            }
        }
        c
    }
}

/// The summary line for humans: `2 errors, 1 warning in 3 files`.
pub fn summary(diags: &[Diagnostic], files: usize) -> String {
    let c = Counts::of(diags);
    let plural = |n: usize, w: &str| {
        if n == 1 {
            format!("{n} {w}")
        } else {
            format!("{n} {w}s")
        }
    };
    format!(
        "{}, {} in {}",
        plural(c.errors, "error"),
        plural(c.warnings, "warning"),
        plural(files, "file")
    )
}
