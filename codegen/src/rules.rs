//! The rule table written beside the objects (`rules.json`): rule id (as carried in policy-map
//! values, CT entries and events) → policy and file:line:column.

use ir::PolicySet;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRow {
    pub id: u32,
    /// `file:line:column` of the rule item.
    pub location: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub direction: String,
    /// Index of the rule in its policy and direction (`ingress[2]` → 2).
    pub index: u32,
}

/// One row per rule of `set`, in id order.
pub fn rule_table(set: &PolicySet) -> Vec<RuleRow> {
    set.rules
        .iter()
        .map(|r| RuleRow {
            id: r.id.0,
            location: set.location(r.id),
            kind: r.provenance.kind.name().to_string(),
            namespace: r.provenance.namespace.clone(),
            name: r.provenance.name.clone(),
            direction: r.direction.name().to_string(),
            index: r.provenance.rule_index,
        })
        .collect()
}
