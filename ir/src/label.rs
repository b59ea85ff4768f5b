//! Cilium labels: `source:key=value` (seed §3.2). A selector key's source `any` matches every source.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a label comes from (seed §3.2.2). `Any` only appears in selectors.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LabelSource {
    Any,
    K8s,
    Container,
    Reserved,
    Unspec,
    Cidr,
    Fqdn,
    Other(String),
}

impl LabelSource {
    pub fn parse(s: &str) -> LabelSource {
        match s {
            "any" => LabelSource::Any,
            "k8s" => LabelSource::K8s,
            "container" => LabelSource::Container,
            "reserved" => LabelSource::Reserved,
            "unspec" => LabelSource::Unspec,
            "cidr" => LabelSource::Cidr,
            "fqdn" => LabelSource::Fqdn,
            other => LabelSource::Other(other.to_string()),
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            LabelSource::Any => "any",
            LabelSource::K8s => "k8s",
            LabelSource::Container => "container",
            LabelSource::Reserved => "reserved",
            LabelSource::Unspec => "unspec",
            LabelSource::Cidr => "cidr",
            LabelSource::Fqdn => "fqdn",
            LabelSource::Other(s) => s,
        }
    }
    /// Does a selector key with source `self` match a label with source `label`? A label whose
    /// source is `any` (an endpoint described by labels without a source, e.g. `trace -s id.curl`)
    /// matches selector keys of every source.
    pub fn matches(&self, label: &LabelSource) -> bool {
        *self == LabelSource::Any || *label == LabelSource::Any || self == label
    }
}

impl fmt::Display for LabelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A label key with its source.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LabelKey {
    pub source: LabelSource,
    pub key: String,
}

impl LabelKey {
    pub fn new(source: LabelSource, key: impl Into<String>) -> Self {
        LabelKey {
            source,
            key: key.into(),
        }
    }
    /// Parses Cilium's extended key form `source:key`; a key without a known source prefix gets
    /// `default` (selectors in policies default to `any`, endpoint labels to their origin).
    /// Only the first `:` separates the source, and only if the prefix contains no `.` or `/`
    /// (so `io.kubernetes.pod.namespace` stays a plain key).
    pub fn parse_with_default(s: &str, default: LabelSource) -> LabelKey {
        if let Some((src, key)) = s.split_once(':') {
            if !src.is_empty() && !src.contains(['.', '/']) {
                return LabelKey {
                    source: LabelSource::parse(src),
                    key: key.to_string(),
                };
            }
        }
        LabelKey {
            source: default,
            key: s.to_string(),
        }
    }
}

impl fmt::Display for LabelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.source, self.key)
    }
}

/// One label of an endpoint or identity.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Label {
    pub source: LabelSource,
    pub key: String,
    pub value: String,
}

impl Label {
    pub fn new(source: LabelSource, key: impl Into<String>, value: impl Into<String>) -> Self {
        Label {
            source,
            key: key.into(),
            value: value.into(),
        }
    }
    pub fn k8s(key: impl Into<String>, value: impl Into<String>) -> Self {
        Label::new(LabelSource::K8s, key, value)
    }
    pub fn reserved(key: impl Into<String>) -> Self {
        Label::new(LabelSource::Reserved, key, "")
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}:{}", self.source, self.key)
        } else {
            write!(f, "{}:{}={}", self.source, self.key, self.value)
        }
    }
}

/// A sorted, de-duplicated set of labels. Two endpoints with equal identity-relevant
/// `LabelSet`s share one security identity.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LabelSet(Vec<Label>);

impl LabelSet {
    pub fn new(mut labels: Vec<Label>) -> Self {
        labels.sort();
        labels.dedup();
        LabelSet(labels)
    }
    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn insert(&mut self, label: Label) {
        if let Err(i) = self.0.binary_search(&label) {
            self.0.insert(i, label);
        }
    }
    /// Values of labels whose key matches `key` (source-aware: an `any` key matches all sources).
    pub fn values_of<'a>(&'a self, key: &'a LabelKey) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |l| l.key == key.key && key.source.matches(&l.source))
            .map(|l| l.value.as_str())
    }
    pub fn has_key(&self, key: &LabelKey) -> bool {
        self.values_of(key).next().is_some()
    }
    pub fn retain(&mut self, f: impl FnMut(&Label) -> bool) {
        self.0.retain(f)
    }
}

impl FromIterator<Label> for LabelSet {
    fn from_iter<I: IntoIterator<Item = Label>>(iter: I) -> Self {
        LabelSet::new(iter.into_iter().collect())
    }
}

impl fmt::Display for LabelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, l) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{l}")?;
        }
        Ok(())
    }
}
