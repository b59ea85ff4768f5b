//! Which rules differ between the two sides, and swapping them in the engine.
//!
//! Both sides' rules live in one policy set (one selector arena), so two rules are the same rule
//! when everything but their id and provenance is equal. Equal rules are matched one to one; the
//! old side's unmatched rules are deactivated and the new side's unmatched rules activated.

use super::{DiffError, OldStates};
use crate::policy::{key_of, GroupKey, PolicyEngine};
use ir::{PolicySet, Rule, RuleId};
use std::collections::{HashMap, HashSet};

/// The rules to swap, and the old rules kept under a new rule's name.
#[derive(Debug, Default)]
pub(super) struct Plan {
    pub remove: Vec<RuleId>,
    pub add: Vec<RuleId>,
    /// Old rule → the equal new rule (the new side names its own rules).
    pub kept: HashMap<RuleId, RuleId>,
}

/// The same rule, provenance aside: also whether it puts its subject into default deny and
/// whether its policy is in audit mode (either changes what it enforces).
fn same(a: &Rule, b: &Rule) -> bool {
    a.kind == b.kind
        && a.subject == b.subject
        && a.direction == b.direction
        && a.action == b.action
        && a.peers == b.peers
        && a.requires == b.requires
        && a.ports == b.ports
        && a.default_deny == b.default_deny
        && a.audit == b.audit
}

pub(super) fn plan(policy: &PolicySet, old: &[RuleId], new: &[RuleId]) -> Plan {
    let mut buckets: HashMap<_, Vec<RuleId>> = HashMap::new();
    for &id in old {
        let r = policy.rule(id);
        buckets
            .entry((r.subject, r.direction, r.action))
            .or_default()
            .push(id);
    }
    let mut p = Plan::default();
    for &id in new {
        let r = policy.rule(id);
        let bucket = buckets
            .entry((r.subject, r.direction, r.action))
            .or_default();
        match bucket.iter().position(|o| same(policy.rule(*o), r)) {
            Some(at) => {
                p.kept.insert(bucket.swap_remove(at), id);
            }
            None => p.add.push(id),
        }
    }
    p.remove = buckets.into_values().flatten().collect();
    p.remove.sort();
    p
}

/// Deactivates `remove` and activates `add`; returns the groups whose map state changed.
fn swap(
    engine: &mut PolicyEngine,
    remove: &[RuleId],
    add: &[RuleId],
) -> Result<HashSet<GroupKey>, DiffError> {
    let mut deltas = engine.deactivate_rules(remove);
    deltas.extend(engine.activate_rules(add)?);
    Ok(deltas
        .iter()
        .filter_map(|d| engine.cluster.endpoint(&d.endpoint))
        .map(key_of)
        .collect())
}

/// Applies the plan; returns the old map state of every group whose state changed, and those
/// groups. The old states are had by swapping back and forth (each swap recomputes only the
/// touched groups), which is cheaper than copying every group's state beforehand.
pub(super) fn apply(
    engine: &mut PolicyEngine,
    plan: &Plan,
) -> Result<(OldStates, HashSet<GroupKey>), DiffError> {
    if plan.remove.is_empty() && plan.add.is_empty() {
        return Ok(Default::default());
    }
    let changed = swap(engine, &plan.remove, &plan.add)?;
    swap(engine, &plan.add, &plan.remove)?;
    let old = changed
        .iter()
        .filter_map(|k| Some((k.clone(), engine.groups().get(k)?.clone())))
        .collect();
    swap(engine, &plan.remove, &plan.add)?;
    Ok((old, changed))
}
