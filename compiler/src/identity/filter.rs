//! The identity-relevant label filter (seed §3.7.1, agent `--labels`), matching Cilium's
//! default label prefix configuration and its longest-match rule.
//!
//! A prefix is `[source:]regex`, optionally starting with `!` to exclude. A prefix matches a label
//! when its source (if given) equals the label's and the regex matches at the start of the key;
//! the match length is what was matched. A label is identity-relevant when the longest
//! including match is longer than the longest excluding one, or, when the user configured no
//! including prefix of their own, when no excluding prefix matches.

use ir::{Label, LabelSet, LabelSource};
use regex::Regex;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LabelFilterError {
    #[error("invalid label prefix `{prefix}`: {source}")]
    #[diagnostic(
        code(identity::label_prefix),
        help("prefixes are `[source:]regex`, `!` to exclude")
    )]
    Regex {
        prefix: String,
        source: regex::Error,
    },
}

#[derive(Clone, Debug)]
struct Prefix {
    text: String,
    exclude: bool,
    source: Option<String>,
    regex: Regex,
}

impl Prefix {
    fn parse(s: &str) -> Result<Prefix, LabelFilterError> {
        let (exclude, rest) = match s.strip_prefix('!') {
            Some(r) => (true, r),
            None => (false, s),
        };
        let (source, pat) = match rest.split_once(':') {
            Some((src, pat)) if !src.contains(['.', '/', '\\']) => {
                ((!src.is_empty()).then(|| src.to_string()), pat)
            }
            _ => (None, rest),
        };
        let regex =
            Regex::new(&format!("^(?:{pat})")).map_err(|source| LabelFilterError::Regex {
                prefix: s.to_string(),
                source,
            })?;
        Ok(Prefix {
            text: s.to_string(),
            exclude,
            source,
            regex,
        })
    }
    fn match_len(&self, l: &Label) -> Option<usize> {
        if self
            .source
            .as_deref()
            .is_some_and(|s| s != l.source.as_str())
        {
            return None;
        }
        self.regex.find(&l.key).map(|m| m.end().max(1))
    }
}

/// Cilium's default prefixes: reserved labels, the namespace and namespace labels,
/// `app.kubernetes.io`, and exclusions for Kubernetes bookkeeping labels.
pub const DEFAULT_PREFIXES: &[&str] = &[
    r"reserved:.*",
    r":io\.kubernetes\.pod\.namespace",
    r":io\.cilium\.k8s\.namespace\.labels",
    r":io\.cilium\.k8s\.policy",
    r":app\.kubernetes\.io",
    r"!:io\.kubernetes",
    r"!:kubernetes\.io",
    r"!:statefulset\.kubernetes\.io/pod-name",
    r"!:apps\.kubernetes\.io/pod-index",
    r"!:batch\.kubernetes\.io/job-completion-index",
    r"!:batch\.kubernetes\.io/controller-uid",
    r"!:.*beta\.kubernetes\.io",
    r"!:k8s\.io",
    r"!:pod-template-generation",
    r"!:pod-template-hash",
    r"!:controller-revision-hash",
    r"!:annotation.*",
    r"!:etcd_node",
    r"!:controller-uid",
    r"!:job-name",
];

/// Decisions already taken, by label source and key (the value plays no part), shared by clones
/// of one filter: a cluster has few distinct label keys but many labels.
type Memo = Arc<RwLock<HashMap<LabelSource, HashMap<String, bool>>>>;

/// Which labels take part in an endpoint's identity.
#[derive(Clone, Debug)]
pub struct LabelFilter {
    prefixes: Vec<Prefix>,
    user_includes: bool,
    memo: Memo,
}

impl Default for LabelFilter {
    fn default() -> Self {
        LabelFilter::with_prefixes::<&str>(&[]).expect("default label prefixes are valid regexes")
    }
}

impl LabelFilter {
    /// The default prefixes plus the user's (agent `--labels`; e.g. `id.` keeps only labels
    /// starting with `id.` besides the always-relevant reserved and namespace labels).
    pub fn with_prefixes<S: AsRef<str>>(user: &[S]) -> Result<LabelFilter, LabelFilterError> {
        let mut prefixes = DEFAULT_PREFIXES
            .iter()
            .map(|p| Prefix::parse(p))
            .collect::<Result<Vec<_>, _>>()?;
        let mut user_includes = false;
        for p in user {
            let p = Prefix::parse(p.as_ref())?;
            user_includes |= !p.exclude;
            prefixes.push(p);
        }
        Ok(LabelFilter {
            prefixes,
            user_includes,
            memo: Memo::default(),
        })
    }

    /// Is `l` identity-relevant? Decided once per distinct (source, key).
    pub fn is_relevant(&self, l: &Label) -> bool {
        let known = |m: &HashMap<LabelSource, HashMap<String, bool>>| {
            m.get(&l.source).and_then(|k| k.get(&l.key)).copied()
        };
        if let Some(d) = self.memo.read().ok().and_then(|m| known(&m)) {
            return d;
        }
        let d = self.decide(l);
        if let Ok(mut m) = self.memo.write() {
            m.entry(l.source.clone())
                .or_default()
                .insert(l.key.clone(), d);
        }
        d
    }

    /// The longest-match rule, evaluated.
    fn decide(&self, l: &Label) -> bool {
        let (mut inc, mut exc) = (0, 0);
        for p in &self.prefixes {
            if let Some(n) = p.match_len(l) {
                let slot = if p.exclude { &mut exc } else { &mut inc };
                *slot = (*slot).max(n);
            }
        }
        inc > exc || (!self.user_includes && exc == 0)
    }

    /// The identity-relevant subset of `labels`.
    pub fn relevant(&self, labels: &LabelSet) -> LabelSet {
        let mut out = labels.clone();
        out.retain(|l| self.is_relevant(l));
        out
    }

    /// The configured prefixes, for display.
    pub fn prefixes(&self) -> impl Iterator<Item = &str> {
        self.prefixes.iter().map(|p| p.text.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keep(f: &LabelFilter, key: &str) -> bool {
        f.is_relevant(&Label::k8s(key, "x"))
    }

    #[test]
    fn default_filter_drops_bookkeeping_labels() {
        let f = LabelFilter::default();
        assert!(keep(&f, "app"));
        assert!(keep(&f, "io.kubernetes.pod.namespace"));
        assert!(keep(
            &f,
            "io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name"
        ));
        assert!(keep(&f, "app.kubernetes.io/name"));
        assert!(!keep(&f, "pod-template-hash"));
        assert!(!keep(&f, "controller-revision-hash"));
        assert!(!keep(&f, "statefulset.kubernetes.io/pod-name"));
        assert!(!keep(&f, "kubernetes.io/hostname"));
        assert!(!keep(&f, "failure-domain.beta.kubernetes.io/zone"));
        assert!(f.is_relevant(&Label::reserved("host")));
    }

    #[test]
    fn user_prefixes_restrict_to_included_labels() {
        let f = LabelFilter::with_prefixes(&["id."]).unwrap();
        assert!(keep(&f, "id.service1"));
        assert!(!keep(&f, "app"));
        assert!(keep(&f, "io.kubernetes.pod.namespace"));
        let f = LabelFilter::with_prefixes(&["k8s:app"]).unwrap();
        assert!(keep(&f, "app"));
        assert!(!f.is_relevant(&Label::new(ir::LabelSource::Container, "app", "x")));
        assert!(LabelFilter::with_prefixes(&["!("]).is_err());
    }
}
