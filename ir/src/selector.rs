//! Label selectors (Kubernetes `matchLabels` + `matchExpressions`, with Cilium label sources).

use crate::label::{LabelKey, LabelSet};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// One requirement; `matchLabels: {k: v}` lowers to `k In (v)`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Requirement {
    pub key: LabelKey,
    pub operator: Operator,
    /// Sorted and de-duplicated.
    pub values: Vec<String>,
}

impl Requirement {
    pub fn new(key: LabelKey, operator: Operator, mut values: Vec<String>) -> Self {
        values.sort();
        values.dedup();
        Requirement {
            key,
            operator,
            values,
        }
    }
    pub fn matches(&self, labels: &LabelSet) -> bool {
        let mut vals = labels.values_of(&self.key).peekable();
        match self.operator {
            Operator::Exists => vals.peek().is_some(),
            Operator::DoesNotExist => vals.peek().is_none(),
            Operator::In => vals.any(|v| self.values.iter().any(|x| x == v)),
            Operator::NotIn => !vals.any(|v| self.values.iter().any(|x| x == v)),
        }
    }
}

/// A conjunction of requirements. The empty selector selects everything it is applied to.
/// Namespacing is explicit: a namespaced policy's selectors carry a
/// `k8s:io.kubernetes.pod.namespace In (ns)` requirement after lowering.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Selector {
    /// Sorted and de-duplicated, so equal selectors compare equal.
    pub requirements: Vec<Requirement>,
}

impl Selector {
    pub fn new(mut requirements: Vec<Requirement>) -> Self {
        requirements.sort();
        requirements.dedup();
        Selector { requirements }
    }
    pub fn all() -> Self {
        Selector::default()
    }
    pub fn is_all(&self) -> bool {
        self.requirements.is_empty()
    }
    pub fn matches(&self, labels: &LabelSet) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
    /// The conjunction of two selectors.
    pub fn and(&self, other: &Selector) -> Selector {
        let mut r = self.requirements.clone();
        r.extend(other.requirements.iter().cloned());
        Selector::new(r)
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.operator {
            Operator::In if self.values.len() == 1 => write!(f, "{}={}", self.key, self.values[0]),
            Operator::In => write!(f, "{} in ({})", self.key, self.values.join(",")),
            Operator::NotIn => write!(f, "{} notin ({})", self.key, self.values.join(",")),
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.requirements.is_empty() {
            return f.write_str("{}");
        }
        f.write_str("{")?;
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{r}")?;
        }
        f.write_str("}")
    }
}
