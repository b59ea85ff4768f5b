//! Audit mode in the map state (Documentation/policy-semantics.md, "Audit mode").
//!
//! A rule is in audit mode when its policy is annotated `cilium-policy.io/audit-mode: "true"`,
//! or for every rule of an endpoint whose Namespace is so annotated or when the cluster is
//! (`ClusterConfig::audit_all`, the agent's `--policy-audit-mode`). What only audit-mode rules
//! would deny passes, reported as audited; everything else is enforced as written.
//!
//! Two map states are computed: the full one (every rule as written) and the enforced one
//! (audit-mode deny rules add nothing and audit-mode rules do not put the endpoint into default
//! deny). The enforced state decides what passes; each of its allowing entries whose key the
//! full state denies is marked with the denying rules (`MapEntry::audited`), and so is the
//! allow-all entry that stands in for a default deny only audit-mode rules set. Keys the full
//! state denies that the enforced state lacks are added with the verdict the enforced state
//! gives there, marked, so that their traffic is reported as audited rather than forwarded.

use super::compute::{wildcard_key, Ctx};
use super::deny::propagate;
use super::lookup::{lookup, Lookup};
use ir::{
    Action, Direction, EndpointPolicy, MapEntry, MapKey, MapVerdict, NumericIdentity, Rule, RuleId,
};

/// The namespace label of endpoint identities.
const NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";

/// An identity no key names: a lookup with it meets only wildcard-identity keys.
const UNNAMED: NumericIdentity = NumericIdentity(u32::MAX - 1);

/// Protocols a every-protocol key is looked up with, when its verdict may differ by protocol.
const PROTOCOLS: [u8; 5] = [6, 17, 132, 1, 58];

/// Which of a subject's rules are in audit mode.
pub struct AuditView {
    /// Every rule (the subject's namespace, or the whole cluster, is in audit mode).
    all: bool,
    /// Per direction (ingress, egress): audit-mode rules that put the subject into default
    /// deny.
    isolating: [Vec<RuleId>; 2],
}

fn slot(dir: Direction) -> usize {
    match dir {
        Direction::Ingress => 0,
        Direction::Egress => 1,
    }
}

impl AuditView {
    /// The view for `subject` selected by `rules`; `None` when none of them is in audit mode.
    pub fn of(ctx: &Ctx, subject: NumericIdentity, rules: &[&Rule]) -> Option<AuditView> {
        let namespace_audit = || {
            let info = ctx.cluster.identity(subject)?;
            let ns = info.labels.iter().find(|l| l.key == NAMESPACE_LABEL)?;
            Some(ctx.cluster.namespace(&ns.value)?.audit)
        };
        let all = ctx.cluster.config.audit_all || namespace_audit().unwrap_or(false);
        if !all && !rules.iter().any(|r| r.audit) {
            return None;
        }
        let mut view = AuditView {
            all,
            isolating: [Vec::new(), Vec::new()],
        };
        for r in rules {
            if view.is_audit(r) && r.default_deny {
                view.isolating[slot(r.direction)].push(r.id);
            }
        }
        for v in &mut view.isolating {
            v.sort();
            v.dedup();
        }
        Some(view)
    }

    pub fn is_audit(&self, r: &Rule) -> bool {
        self.all || r.audit
    }

    /// The map state to enforce: `enforced`, with the traffic `full` would deny marked.
    pub fn combine(
        &self,
        ctx: &Ctx,
        full: EndpointPolicy,
        mut enforced: EndpointPolicy,
    ) -> EndpointPolicy {
        // A denying entry's rules include the allows it was pushed onto: keep the denies.
        let denying = |rules: &[RuleId]| -> Vec<RuleId> {
            rules
                .iter()
                .copied()
                .filter(|r| ctx.policy.rule(*r).action == Action::Deny)
                .collect()
        };
        for (key, e) in enforced.entries.iter_mut() {
            if e.verdict == MapVerdict::Deny {
                continue;
            }
            match full.entries.get(key) {
                Some(f) if f.verdict == MapVerdict::Deny => e.audited = denying(&f.rules),
                // The allow-all entry standing in for a default deny of audit-mode rules.
                None if *key == wildcard_key(key.direction) => {
                    e.audited = self.isolating[slot(key.direction)].clone();
                }
                _ => {}
            }
        }
        let mut added: Vec<(MapKey, MapEntry)> = Vec::new();
        for (key, f) in &full.entries {
            if f.verdict != MapVerdict::Deny || enforced.entries.contains_key(key) {
                continue;
            }
            for (k, verdict, rules) in fall_through(&enforced, key) {
                added.push((
                    k,
                    MapEntry {
                        verdict,
                        rules,
                        audited: denying(&f.rules),
                    },
                ));
            }
        }
        for (k, e) in added {
            enforced.entries.entry(k).or_insert(e);
        }
        // Denies of rules not in audit mode still win over the marked keys they overlap.
        propagate(&mut enforced);
        enforced
    }
}

/// What `pol` allows at `key`, where it has no entry: per protocol when `key` covers every
/// protocol and they differ. Denied traffic gives nothing (it stays denied, unmarked).
fn fall_through(pol: &EndpointPolicy, key: &MapKey) -> Vec<(MapKey, MapVerdict, Vec<RuleId>)> {
    let peer = if key.identity == NumericIdentity::WILDCARD {
        UNNAMED
    } else {
        key.identity
    };
    let at = |protocol: u8| match lookup(pol, key.direction, peer, None, protocol, key.port) {
        Lookup::Entry { verdict, rules, .. } if verdict != MapVerdict::Deny => {
            Some((verdict, rules))
        }
        Lookup::NotEnforced => Some((MapVerdict::Allow, Vec::new())),
        _ => None,
    };
    if key.protocol != 0 {
        return at(key.protocol)
            .map(|(v, r)| (*key, v, r))
            .into_iter()
            .collect();
    }
    let each: Vec<_> = PROTOCOLS.iter().map(|p| (*p, at(*p))).collect();
    if each.iter().all(|(_, v)| *v == each[0].1) {
        return each[0]
            .1
            .clone()
            .map(|(v, r)| (*key, v, r))
            .into_iter()
            .collect();
    }
    each.into_iter()
        .filter_map(|(protocol, v)| {
            let (verdict, rules) = v?;
            let k = MapKey { protocol, ..*key };
            Some((k, verdict, rules))
        })
        .collect()
}

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
