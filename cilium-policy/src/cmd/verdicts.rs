//! What `diff` and `replay` print about a verdict: the words, the deciding rules, and their
//! JSON form (Hubble's policy references).

use compiler::diff::{SideDecision, Verdict};
use compiler::flow::PolicyRef;
use compiler::policy::Lookup;
use ir::{MapVerdict, PolicySet};
use serde_json::{json, Value};

/// How one side decided, in words.
pub fn how(d: &SideDecision) -> &'static str {
    if d.audited() {
        return "passes in audit mode, would be denied by";
    }
    match &d.lookup {
        None => "not an endpoint",
        Some(Lookup::NotEnforced) => "not enforced",
        Some(Lookup::NoEntry) => "default deny",
        Some(Lookup::Entry { verdict, .. } | Lookup::Address { verdict, .. }) => match verdict {
            MapVerdict::Allow => "allowed by rule",
            MapVerdict::Deny => "denied by rule",
            MapVerdict::Redirect { .. } => "redirected to the proxy by rule",
        },
    }
}

/// One side as JSON: how it decided and the deciding rules.
pub fn side_json(policy: &PolicySet, d: &SideDecision) -> Value {
    let rules: Vec<PolicyRef> = d
        .rules()
        .iter()
        .map(|r| PolicyRef::of_rule(policy, *r, 0))
        .collect();
    json!({"allowed": d.allowed(), "audit": d.audited(), "decision": how(d), "rules": rules})
}

/// A verdict as JSON.
pub fn verdict_json(policy: &PolicySet, v: &Verdict) -> Value {
    json!({
        "verdict": v.outcome().word(),
        "egress": side_json(policy, &v.egress),
        "ingress": side_json(policy, &v.ingress),
    })
}

/// The side that decides a denied verdict (egress first), or the allowing sides, in words:
/// `egress denied by rule r3 CiliumNetworkPolicy a/b ingress[0] (f.yaml:9:5)`.
pub fn reason(policy: &PolicySet, v: &Verdict) -> String {
    let sides = [("egress", &v.egress), ("ingress", &v.ingress)];
    let text = |(name, d): (&str, &SideDecision)| {
        let rules: Vec<String> = d.rules().iter().map(|r| policy.describe_rule(*r)).collect();
        if rules.is_empty() {
            format!("{name} {}", how(d))
        } else {
            format!("{name} {} {}", how(d), rules.join("; "))
        }
    };
    match sides.iter().find(|(_, d)| !d.allowed()) {
        Some(&s) => text(s),
        None => sides
            .iter()
            .filter(|(_, d)| d.lookup.is_some())
            .map(|&s| text(s))
            .collect::<Vec<_>>()
            .join(", "),
    }
}
