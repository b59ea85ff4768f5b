//! The label-selector string syntax (`tier=frontend,env in (prod,qa),!canary,k8s:app=web`) used by
//! CLI flags such as `trace -s/-d`, parsed with an lalrpop grammar (`grammar.lalrpop`) into
//! [`ir::Selector`], and the plain label-list form (`id.curl,k8s:app=web`) into [`ir::LabelSet`].

// A `SelectorError` carries its input for the miette report, so it is large; it is returned at
// most once per command-line flag, where its size costs nothing.
#![allow(clippy::result_large_err)]

mod error;
mod raw;
mod validate;

lalrpop_util::lalrpop_mod!(
    #[allow(clippy::all, unused_parens)]
    grammar,
    "/labelsel/grammar.rs"
);

pub use error::{SelectorError, SelectorErrorKind};

use ir::{Label, LabelKey, LabelSet, LabelSource, Operator, Requirement, Selector};
use lalrpop_util::ParseError;
use raw::{RawReq, Word};

/// Parses a Kubernetes label-selector string into an [`ir::Selector`].
///
/// Syntax (comma-separated requirements, whitespace ignored): `key` (exists), `!key` (does not
/// exist), `key=value` / `key==value` (in), `key!=value` (not in), `key in (a,b)`,
/// `key notin (a,b)`. A key may carry a Cilium source prefix (`k8s:app`, `any:id`,
/// `reserved:host`); without one it matches labels of any source, as in Cilium policies.
/// The empty string is the selector that selects everything.
///
/// Errors are typed ([`SelectorErrorKind`]), carry the byte offset into `input`, and render as a
/// miette report pointing into the string.
pub fn parse_selector(input: &str) -> Result<Selector, SelectorError> {
    let raw = grammar::SelectorParser::new()
        .parse(input)
        .map_err(|e| syntax_error(input, e))?;
    let mut reqs = Vec::with_capacity(raw.len());
    for r in raw {
        let (key, op, values) = match r {
            RawReq::Exists(k) => (k, Operator::Exists, vec![]),
            RawReq::DoesNotExist(k) => (k, Operator::DoesNotExist, vec![]),
            RawReq::Equals(k, v) => (k, Operator::In, vec![v]),
            RawReq::NotEquals(k, v) => (k, Operator::NotIn, vec![v]),
            RawReq::In(k, vs) => (k, Operator::In, vs),
            RawReq::NotIn(k, vs) => (k, Operator::NotIn, vs),
        };
        let key = label_key(input, &key)?;
        let values = values
            .iter()
            .map(|v| value(input, v))
            .collect::<Result<Vec<_>, _>>()?;
        reqs.push(Requirement::new(key, op, values));
    }
    Ok(Selector::new(reqs))
}

/// Parses a plain label list (`id.curl`, `k8s:app=web,env=prod`) into a [`LabelSet`], the form
/// `cilium policy trace -s/-d` takes (seed §5.3). A label without a value has the empty value;
/// a key without a source prefix gets the `any` source.
pub fn parse_labels(input: &str) -> Result<LabelSet, SelectorError> {
    let raw = grammar::LabelsParser::new()
        .parse(input)
        .map_err(|e| syntax_error(input, e))?;
    let mut labels = Vec::with_capacity(raw.len());
    for l in raw {
        let key = label_key(input, &l.key)?;
        let value = match &l.value {
            Some(v) => value(input, v)?,
            None => String::new(),
        };
        labels.push(Label::new(key.source, key.key, value));
    }
    Ok(LabelSet::new(labels))
}

fn label_key(input: &str, w: &Word) -> Result<LabelKey, SelectorError> {
    let key = LabelKey::parse_with_default(&w.text, LabelSource::Any);
    validate::key(&key.key).map_err(|reason| {
        let kind = SelectorErrorKind::InvalidKey {
            key: w.text.clone(),
            reason,
        };
        SelectorError::new(kind, input, w.start, w.end - w.start)
    })?;
    Ok(key)
}

fn value(input: &str, w: &Word) -> Result<String, SelectorError> {
    validate::value(&w.text).map_err(|reason| {
        let kind = SelectorErrorKind::InvalidValue {
            value: w.text.clone(),
            reason,
        };
        SelectorError::new(kind, input, w.start, w.end - w.start)
    })?;
    Ok(w.text.clone())
}

type GrammarError<'a> = ParseError<usize, grammar::Token<'a>, &'static str>;

fn syntax_error(input: &str, e: GrammarError<'_>) -> SelectorError {
    match e {
        ParseError::InvalidToken { location } => {
            let ch = input[location..].chars().next().unwrap_or('\0');
            SelectorError::new(
                SelectorErrorKind::InvalidCharacter(ch),
                input,
                location,
                ch.len_utf8(),
            )
        }
        ParseError::UnrecognizedEof { location, expected } => {
            let kind = SelectorErrorKind::UnexpectedEnd {
                expected: describe_expected(&expected),
            };
            SelectorError::new(kind, input, location, 0)
        }
        ParseError::UnrecognizedToken {
            token: (l, t, r),
            expected,
        } => {
            let kind = SelectorErrorKind::UnexpectedToken {
                found: format!("{:?}", t.1),
                expected: describe_expected(&expected),
            };
            SelectorError::new(kind, input, l, r - l)
        }
        ParseError::ExtraToken { token: (l, t, r) } => {
            let kind = SelectorErrorKind::UnexpectedToken {
                found: format!("{:?}", t.1),
                expected: "the end".into(),
            };
            SelectorError::new(kind, input, l, r - l)
        }
        ParseError::User { error } => {
            let kind = SelectorErrorKind::UnexpectedToken {
                found: error.to_string(),
                expected: "a selector".into(),
            };
            SelectorError::new(kind, input, 0, input.len())
        }
    }
}

/// Turns lalrpop's terminal names (`"\",\""`, `WORD`) into words for humans.
fn describe_expected(expected: &[String]) -> String {
    let mut names: Vec<String> = expected
        .iter()
        .map(|t| match t.as_str() {
            "WORD" => "a label key or value".to_string(),
            other => format!("`{}`", other.trim_matches('"').replace("\\\"", "\"")),
        })
        .collect();
    names.dedup();
    match names.len() {
        0 => "nothing more".to_string(),
        1 => names.remove(0),
        _ => {
            let last = names.pop().unwrap_or_default();
            format!("{} or {last}", names.join(", "))
        }
    }
}

#[cfg(test)]
mod tests;
