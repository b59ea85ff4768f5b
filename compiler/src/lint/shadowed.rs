//! `shadowed-rule`: a rule whose every peer and port another rule with the same subject,
//! direction and action already allows (or denies), so it can be deleted without any effect.

use super::{cover, Context, LintRule};
use crate::declare_code;
use crate::diag::{Code, Diagnostic};
use ir::{PeerSet, Rule};
use std::collections::HashMap;

declare_code!(
    CODE,
    "CP2003",
    "shadowed-rule",
    Warning,
    "Another rule with the same subject selector, direction and action (allow or deny) already \
     covers this rule: its peers include every peer of this one and its ports every port (an \
     allow without L7 rules covers one with them). This rule adds nothing; it is often a \
     leftover of an edit or a copy that was meant to be narrower. The help names the covering \
     rule's file and line. Rules with `fromRequires`/`toRequires` are not reported, since \
     requirements also act on other rules."
);

pub struct Shadowed;

impl LintRule for Shadowed {
    fn code(&self) -> &'static Code {
        &CODE
    }

    fn check(&self, cx: &Context<'_>, out: &mut Vec<Diagnostic>) {
        let set = cx.policy;
        let mut groups: HashMap<_, Vec<&Rule>> = HashMap::new();
        for r in &set.rules {
            groups
                .entry((r.subject, r.direction, r.action))
                .or_default()
                .push(r);
        }
        let mut keys: Vec<_> = groups.keys().copied().collect();
        keys.sort();
        for key in keys {
            let rules = &groups[&key];
            for inner in rules.iter().filter(|r| candidate(r)) {
                let covering = rules.iter().find(|outer| {
                    outer.id != inner.id
                        && covers(cx, outer, inner)
                        && (!covers(cx, inner, outer) || outer.id < inner.id)
                });
                if let Some(outer) = covering {
                    let msg = format!(
                        "this {} rule is fully covered by another rule and has no effect",
                        inner.direction.name()
                    );
                    let help = format!(
                        "{} (in {}) already covers every peer and port of this rule; remove one of them",
                        set.location(outer.id),
                        super::rule_path(outer)
                    );
                    out.push(cx.at_rule(&CODE, inner, msg).with_help(help));
                }
            }
        }
    }
}

/// Rules that can be shadowed: they name at least one peer and carry no requirements.
fn candidate(r: &Rule) -> bool {
    r.requires.is_empty() && !matches!(&r.peers, PeerSet::Some(p) if p.is_empty())
}

fn covers(cx: &Context<'_>, outer: &Rule, inner: &Rule) -> bool {
    cover::peers(cx.policy, &outer.peers, &inner.peers) && cover::ports(&outer.ports, &inner.ports)
}

#[cfg(test)]
mod tests {
    use crate::lint::testutil::*;
    use ir::Entity;

    #[test]
    fn covered_rules_are_reported_once() {
        let mut b = Builder::new();
        let web = b.sel(&[("app", "web")]);
        let db = b.sel(&[("app", "db")]);
        let db_prod = b.sel(&[("app", "db"), ("env", "prod")]);
        b.rule(web).endpoints(db).tcp(5432).push(); // 0
        b.rule(web).endpoints(db_prod).tcp(5432).push(); // 1: covered by 0
        b.rule(web).endpoints(db).tcp(5432).push(); // 2: duplicate of 0: reported, 0 is not
        b.rule(web).endpoints(db).push(); // 3: all ports: covers 0, 1, 2
        b.rule(web).egress().endpoints(db).tcp(5432).push(); // 4: other direction
        b.rule(web).deny().endpoints(db).tcp(5432).push(); // 5: other action
        b.rule(db).endpoints(db).tcp(5432).push(); // 6: other subject
        assert_eq!(
            b.codes_at(&super::Shadowed),
            vec![("CP2003", 0), ("CP2003", 1), ("CP2003", 2)]
        );
    }

    #[test]
    fn partial_overlap_is_not_shadowing() {
        let mut b = Builder::new();
        let web = b.sel(&[("app", "web")]);
        let db = b.sel(&[("app", "db")]);
        let req = b.sel(&[("env", "prod")]);
        b.rule(web).endpoints(db).tcp(80).push();
        b.rule(web)
            .endpoints(db)
            .entity(Entity::World)
            .tcp(443)
            .push();
        b.rule(web).endpoints(db).requires(req).tcp(80).push(); // requirements: never reported
        b.rule(web).http(8080, "/a").entity(Entity::World).push();
        b.rule(web).http(8080, "/b").entity(Entity::World).push();
        assert_eq!(b.codes_at(&super::Shadowed), vec![]);
    }
}
