//! The HTTP rules of one map key compiled into a matcher. Each of `method`, `path` and `host` is
//! one `RegexSet` over the distinct anchored patterns of the rules (the patterns
//! `compiler::trace::anchored_pattern` gives, so the proxy and `trace` read a rule the same way).
//! A request runs each set once; only the rules whose path pattern matched (plus the rules
//! without a path) are then checked, so the cost of a request does not grow with the number of
//! rules that cannot match it.

use compiler::trace::anchored_pattern;
use ir::{HeaderMatch, HttpRule, RuleId};
use regex::{RegexSet, RegexSetBuilder};
use std::collections::HashMap;

/// Bounds on what one pattern may cost to compile.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest accepted pattern, in bytes.
    pub max_pattern_len: usize,
    /// Largest compiled program of one pattern (the regex crate's `size_limit`), in bytes.
    pub max_compiled_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_pattern_len: 16 * 1024,
            max_compiled_size: 1 << 20,
        }
    }
}

/// One rule's pattern that was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} pattern `{pattern}` of rule {rule_id:?} refused: {reason}")]
pub struct PatternError {
    pub rule_id: RuleId,
    pub field: &'static str,
    pub pattern: String,
    pub reason: String,
}

/// The request fields the rules look at.
#[derive(Clone, Copy, Debug)]
pub struct RequestView<'a> {
    pub method: &'a str,
    /// The request target's path and query, as sent.
    pub path: &'a str,
    /// The `Host` header (empty when absent).
    pub host: &'a str,
    pub headers: &'a hyper::HeaderMap,
}

/// Distinct anchored patterns of one field, compiled together.
#[derive(Debug)]
struct FieldSet {
    set: RegexSet,
}

impl FieldSet {
    fn matches(&self, value: &str) -> Vec<bool> {
        let m = self.set.matches(value);
        let mut out = vec![false; self.set.len()];
        for i in m.iter() {
            out[i] = true;
        }
        out
    }
}

#[derive(Debug)]
struct CompiledRule {
    /// The IR rule it comes from.
    id: RuleId,
    method: Option<usize>,
    host: Option<usize>,
    headers: Vec<HeaderMatch>,
}

/// The HTTP rules that apply at one map key.
#[derive(Debug)]
pub struct HttpMatcher {
    /// Some rule matches every request (no field, no header, or no HTTP rule at all).
    allow_all: bool,
    method: FieldSet,
    path: FieldSet,
    host: FieldSet,
    rules: Vec<CompiledRule>,
    /// Rules by path pattern index; `no_path` lists the rules without a path.
    by_path: Vec<Vec<usize>>,
    no_path: Vec<usize>,
}

/// Interns the patterns of one field.
#[derive(Default)]
struct Patterns {
    list: Vec<String>,
    index: HashMap<String, usize>,
    /// The first rule using each pattern, for errors.
    owner: Vec<RuleId>,
}

impl Patterns {
    fn intern(&mut self, pattern: Option<&str>, rule: RuleId) -> Option<usize> {
        let p = anchored_pattern(pattern)?;
        if let Some(i) = self.index.get(&p) {
            return Some(*i);
        }
        self.list.push(p.clone());
        self.owner.push(rule);
        self.index.insert(p, self.list.len() - 1);
        Some(self.list.len() - 1)
    }

    /// Checks every pattern alone (so an error names its rule), then builds the set.
    fn compile(
        &self,
        field: &'static str,
        limits: &Limits,
        errors: &mut Vec<PatternError>,
    ) -> Option<FieldSet> {
        let before = errors.len();
        for (p, rule) in self.list.iter().zip(&self.owner) {
            let err = |reason: String| PatternError {
                rule_id: *rule,
                field,
                pattern: shorten(&p[4..p.len() - 2]),
                reason,
            };
            if p.len() - 6 > limits.max_pattern_len {
                errors.push(err(format!(
                    "longer than {} bytes ({} bytes)",
                    limits.max_pattern_len,
                    p.len() - 6
                )));
                continue;
            }
            if let Err(e) = regex::RegexBuilder::new(p)
                .size_limit(limits.max_compiled_size)
                .build()
            {
                errors.push(err(match e {
                    regex::Error::CompiledTooBig(n) => {
                        format!("compiles to more than {n} bytes")
                    }
                    e => e
                        .to_string()
                        .lines()
                        .last()
                        .unwrap_or("")
                        .trim()
                        .to_string(),
                }));
            }
        }
        if errors.len() > before {
            return None;
        }
        // Each pattern fits alone; the set is at most their sum.
        let total = limits
            .max_compiled_size
            .saturating_mul(self.list.len().max(1));
        match RegexSetBuilder::new(&self.list).size_limit(total).build() {
            Ok(set) => Some(FieldSet { set }),
            Err(e) => {
                errors.push(PatternError {
                    rule_id: self.owner.first().copied().unwrap_or(RuleId(0)),
                    field,
                    pattern: String::new(),
                    reason: format!("the combined {field} patterns do not compile: {e}"),
                });
                None
            }
        }
    }
}

impl HttpMatcher {
    /// Compiles the HTTP rules of a key, each with the IR rule it comes from. `rules` empty: no
    /// rule restricts the requests (an `http: []` block allows everything, as in `trace`).
    pub fn compile(
        rules: &[(RuleId, &HttpRule)],
        limits: &Limits,
    ) -> Result<Self, Vec<PatternError>> {
        let (mut m, mut p, mut h) = (
            Patterns::default(),
            Patterns::default(),
            Patterns::default(),
        );
        let mut compiled = Vec::new();
        let mut path_of = Vec::new();
        let mut allow_all = rules.is_empty();
        for (id, r) in rules {
            let rule = CompiledRule {
                id: *id,
                method: m.intern(r.method.as_deref(), *id),
                host: h.intern(r.host.as_deref(), *id),
                headers: r.headers.clone(),
            };
            let path = p.intern(r.path.as_deref(), *id);
            allow_all |= rule.method.is_none()
                && rule.host.is_none()
                && path.is_none()
                && rule.headers.is_empty();
            compiled.push(rule);
            path_of.push(path);
        }
        let mut errors = Vec::new();
        let method = m.compile("method", limits, &mut errors);
        let path = p.compile("path", limits, &mut errors);
        let host = h.compile("host", limits, &mut errors);
        let (Some(method), Some(path), Some(host)) = (method, path, host) else {
            return Err(errors);
        };
        let mut by_path = vec![Vec::new(); path.set.len()];
        let mut no_path = Vec::new();
        for (i, pi) in path_of.into_iter().enumerate() {
            match pi {
                Some(pi) => by_path[pi].push(i),
                None => no_path.push(i),
            }
        }
        Ok(HttpMatcher {
            allow_all,
            method,
            path,
            host,
            rules: compiled,
            by_path,
            no_path,
        })
    }

    /// Number of HTTP rules compiled.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Does some rule allow the request?
    pub fn allows(&self, req: &RequestView) -> bool {
        self.allow_all || self.first_match(req).is_some()
    }

    /// A rule that allows the request (those with a matching path first).
    pub fn first_match(&self, req: &RequestView) -> Option<RuleId> {
        let paths = self.path.set.matches(req.path);
        let mut candidates = paths
            .iter()
            .flat_map(|pi| self.by_path[pi].iter())
            .chain(self.no_path.iter())
            .peekable();
        candidates.peek()?;
        let methods = self.method.matches(req.method);
        let hosts = self.host.matches(req.host);
        candidates.map(|&i| &self.rules[i]).find_map(|r| {
            let ok = r.method.is_none_or(|m| methods[m])
                && r.host.is_none_or(|h| hosts[h])
                && r.headers.iter().all(|h| header_present(req.headers, h));
            ok.then_some(r.id)
        })
    }

    /// The IR rules whose HTTP rules are compiled here (what a denied request failed), sorted.
    pub fn rule_ids(&self) -> Vec<RuleId> {
        let mut ids: Vec<RuleId> = self.rules.iter().map(|r| r.id).collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// The pattern as written (without the anchoring), cut to 60 characters for messages.
fn shorten(p: &str) -> String {
    match p.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &p[..i]),
        None => p.to_string(),
    }
}

/// `trace`'s header semantics: a header with that name (any case) and, when the rule gives a
/// value, exactly that value.
fn header_present(headers: &hyper::HeaderMap, want: &HeaderMatch) -> bool {
    headers.iter().any(|(name, value)| {
        name.as_str().eq_ignore_ascii_case(&want.name)
            && want
                .value
                .as_ref()
                .is_none_or(|v| v.as_bytes() == value.as_bytes())
    })
}

#[cfg(test)]
mod tests;
