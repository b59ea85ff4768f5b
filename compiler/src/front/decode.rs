//! A small decoding toolkit over [`Node`] trees: typed accessors that report wrong types,
//! unknown fields (with did-you-mean) and missing fields at the offending node, with field paths
//! like `spec.ingress[0].toPorts[0].ports[1].port`.

use super::codes;
use super::node::{parse_bool, parse_int, Key, Node, NodeKind, ScalarStyle};
use crate::diag::{Code, Diagnostic};
use ir::Span;

/// A node together with its field path.
#[derive(Clone, Debug)]
pub struct Field<'n> {
    pub node: &'n Node,
    pub path: String,
}

impl<'n> Field<'n> {
    pub fn root(node: &'n Node) -> Self {
        Field {
            node,
            path: String::new(),
        }
    }
    pub fn span(&self) -> Span {
        self.node.span
    }
    pub fn child(&self, node: &'n Node, name: &str) -> Field<'n> {
        let path = if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.path)
        };
        Field { node, path }
    }
    pub fn item(&self, node: &'n Node, i: usize) -> Field<'n> {
        Field {
            node,
            path: format!("{}[{i}]", self.path),
        }
    }
}

/// How to treat fields outside the known set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unknown {
    Error,
    /// Schemas only partly read (workloads): ignore.
    Ignore,
}

/// A mapping whose keys were checked against a known set.
#[derive(Clone, Debug)]
pub struct Map<'n> {
    pub field: Field<'n>,
    entries: &'n [(Key, Node)],
}

impl<'n> Map<'n> {
    /// The entry `name` unless absent or null.
    pub fn get(&self, name: &str) -> Option<Field<'n>> {
        let (_, v) = self.entries.iter().find(|(k, _)| k.text == name)?;
        (!v.is_null()).then(|| self.field.child(v, name))
    }
    pub fn key(&self, name: &str) -> Option<&'n Key> {
        self.entries
            .iter()
            .find(|(k, _)| k.text == name)
            .map(|(k, _)| k)
    }
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
    pub fn span(&self) -> Span {
        self.field.span()
    }
    pub fn path(&self) -> &str {
        &self.field.path
    }
    pub fn child_path(&self, name: &str) -> String {
        self.field.child(self.field.node, name).path
    }
    pub fn entries(&self) -> impl Iterator<Item = (&'n Key, Field<'n>)> + '_ {
        self.entries
            .iter()
            .map(|(k, v)| (k, self.field.child(v, &k.text)))
    }
}

/// The closest of `known` to `name`, if close enough to suggest.
pub fn did_you_mean<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| {
            (
                strsim::jaro_winkler(&name.to_ascii_lowercase(), &k.to_ascii_lowercase()),
                k,
            )
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// Decoding context for one file: collects diagnostics and counts errors.
pub struct Cx<'f> {
    pub file: &'f str,
    pub diags: Vec<Diagnostic>,
    errors: usize,
}

impl<'f> Cx<'f> {
    pub fn new(file: &'f str) -> Self {
        Cx {
            file,
            diags: Vec::new(),
            errors: 0,
        }
    }
    pub fn errors(&self) -> usize {
        self.errors
    }
    pub fn emit(&mut self, d: Diagnostic) {
        if d.is_error() {
            self.errors += 1;
        }
        self.diags.push(d);
    }
    /// Reports `code` at `span`/`path`, with optional help.
    pub fn report(
        &mut self,
        code: &'static Code,
        span: Span,
        path: &str,
        msg: impl Into<String>,
        help: Option<String>,
    ) {
        let mut d = Diagnostic::new(code, self.file, span, path, msg);
        d.help = help;
        self.emit(d);
    }
    pub fn at(&mut self, code: &'static Code, f: &Field<'_>, msg: impl Into<String>) {
        self.report(code, f.span(), &f.path, msg, None);
    }
    pub fn at_help(
        &mut self,
        code: &'static Code,
        f: &Field<'_>,
        msg: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.report(code, f.span(), &f.path, msg, Some(help.into()));
    }

    fn wrong_type(&mut self, f: &Field<'_>, expected: &str) {
        let msg = format!("expected {expected}, found {}", f.node.kind_name());
        self.at(&codes::WRONG_TYPE, f, msg);
    }

    /// A mapping (null reads as empty) with its keys checked against `known`.
    pub fn map<'n>(&mut self, f: &Field<'n>, known: &[&str], unknown: Unknown) -> Option<Map<'n>> {
        let entries: &'n [(Key, Node)] = match &f.node.kind {
            NodeKind::Mapping(e) => e,
            NodeKind::Null => &[],
            _ => {
                self.wrong_type(f, "a mapping");
                return None;
            }
        };
        if unknown != Unknown::Ignore {
            for (k, _) in entries
                .iter()
                .filter(|(k, _)| !known.contains(&k.text.as_str()))
            {
                let path = f.child(f.node, &k.text).path;
                let help = did_you_mean(&k.text, known.iter().copied())
                    .map(|s| format!("did you mean `{s}`?"));
                let msg = format!("unknown field `{}`", k.text);
                self.report(&codes::UNKNOWN_FIELD, k.span, &path, msg, help);
            }
        }
        Some(Map {
            field: f.clone(),
            entries,
        })
    }

    /// A required entry of `m`; reports `missing-field` at the mapping when absent.
    pub fn required<'n>(&mut self, m: &Map<'n>, name: &str) -> Option<Field<'n>> {
        let f = m.get(name);
        if f.is_none() {
            let msg = format!("missing required field `{name}`");
            self.report(
                &codes::MISSING_FIELD,
                m.span(),
                &m.child_path(name),
                msg,
                None,
            );
        }
        f
    }

    /// The items of the optional list `key` of `m` (absent or null reads as empty).
    pub fn seq_at<'n>(&mut self, m: &Map<'n>, key: &str) -> Vec<Field<'n>> {
        m.get(key).map(|f| self.seq(&f)).unwrap_or_default()
    }

    /// The items of a list (null reads as empty).
    pub fn seq<'n>(&mut self, f: &Field<'n>) -> Vec<Field<'n>> {
        match &f.node.kind {
            NodeKind::Sequence(items) => items
                .iter()
                .enumerate()
                .map(|(i, n)| f.item(n, i))
                .collect(),
            NodeKind::Null => Vec::new(),
            _ => {
                self.wrong_type(f, "a list");
                Vec::new()
            }
        }
    }

    /// A scalar's text (numbers and booleans read as their text).
    pub fn str<'n>(&mut self, f: &Field<'n>) -> Option<&'n str> {
        let s = f.node.as_str();
        if s.is_none() {
            self.wrong_type(f, "a string");
        }
        s
    }

    /// An unquoted integer.
    pub fn int(&mut self, f: &Field<'_>) -> Option<i64> {
        match &f.node.kind {
            NodeKind::Scalar {
                text,
                style: ScalarStyle::Plain,
            } if parse_int(text).is_some() => parse_int(text),
            _ => {
                self.wrong_type(f, "an integer");
                None
            }
        }
    }

    pub fn bool(&mut self, f: &Field<'_>) -> Option<bool> {
        match &f.node.kind {
            NodeKind::Scalar {
                text,
                style: ScalarStyle::Plain,
            } if parse_bool(text).is_some() => parse_bool(text),
            _ => {
                self.wrong_type(f, "a boolean");
                None
            }
        }
    }

    /// A list of strings.
    pub fn strings<'n>(&mut self, f: &Field<'n>) -> Vec<(Field<'n>, &'n str)> {
        let items = self.seq(f);
        items
            .into_iter()
            .filter_map(|i| self.str(&i).map(|s| (i, s)))
            .collect()
    }

    /// A mapping of string to string (labels, matchLabels): key fields carry the key's span.
    pub fn string_map<'n>(&mut self, f: &Field<'n>) -> Vec<(&'n Key, Field<'n>, &'n str)> {
        let Some(m) = self.map(f, &[], Unknown::Ignore) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in m.entries() {
            let s = if v.node.is_null() {
                Some("")
            } else {
                self.str(&v)
            };
            if let Some(s) = s {
                out.push((k, v, s));
            }
        }
        out
    }

    /// Warns that `f` is understood but not enforced by later stages.
    pub fn not_enforced(&mut self, f: &Field<'_>, what: &str) {
        let msg = format!("{what} is understood but not enforced by cilium-policy's datapath");
        self.at(&codes::NOT_ENFORCED, f, msg);
    }
}
