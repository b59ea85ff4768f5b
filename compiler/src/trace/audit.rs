//! Audit mode in `trace` (Documentation/policy-semantics.md, "Audit mode"), decided on the
//! rules, independently of the map state's computation (`policy::audit`): a side the rules deny
//! is evaluated again without what audit mode does not enforce; if that allows the flow, it
//! passes, audited, naming the audit-mode rules that would deny it.

use super::eval::Side;
use super::party::Party;
use crate::cluster::Cluster;
use ir::{Action, PolicySet, Rule, RuleId};

/// Which rules are in audit mode for `subject`: `None` when none can be (no policy, namespace
/// or cluster in audit mode).
pub fn audit_rules<'a>(
    policy: &PolicySet,
    c: &'a Cluster,
    subject: &Party,
) -> Option<impl Fn(&Rule) -> bool + 'a> {
    let namespace = subject
        .info
        .labels
        .iter()
        .find(|l| l.key == "io.kubernetes.pod.namespace")
        .and_then(|l| c.namespace(&l.value))
        .is_some_and(|n| n.audit);
    let all = c.config.audit_all || namespace;
    (all || policy.rules.iter().any(|r| r.audit)).then_some(move |r: &Rule| all || r.audit)
}

/// The audit-mode rules behind `full`'s denial: the matching deny rules, or for a default deny
/// the audit-mode rules that put the subject into it.
pub fn would_deny(
    policy: &PolicySet,
    full: &Side,
    is_audit: &dyn Fn(&Rule) -> bool,
) -> Vec<RuleId> {
    let denying: Vec<RuleId> = full
        .rules
        .iter()
        .filter(|m| m.action == Action::Deny && m.l3 && m.l4)
        .map(|m| m.rule)
        .filter(|r| is_audit(policy.rule(*r)))
        .collect();
    if !denying.is_empty() {
        return denying;
    }
    full.rules
        .iter()
        .map(|m| m.rule)
        .filter(|r| {
            let r = policy.rule(*r);
            is_audit(r) && r.default_deny
        })
        .collect()
}
