//! `grants-nothing`: a rule that names no peer, so it allows (or denies) nothing by itself.

use super::{Context, LintRule};
use crate::declare_code;
use crate::diag::{Code, Diagnostic};
use ir::{PeerSet, PolicyKind};

declare_code!(
    CODE,
    "CP2001",
    "grants-nothing",
    Warning,
    "A rule has no peer: only `fromRequires`/`toRequires`, or an empty peer list \
     (`fromEndpoints: []`) next to ports. `fromRequires` only narrows what *other* rules allow; \
     on its own such a rule allows nothing, while still turning on default-deny for the \
     selected endpoints. Add the peers it should allow (`fromEndpoints`, `fromEntities`, …), or \
     drop the rule. An empty rule (`ingress: [{}]`) and NetworkPolicy `policyTypes` without \
     rules are the documented way to turn on default-deny and are not reported."
);

pub struct GrantsNothing;

impl LintRule for GrantsNothing {
    fn code(&self) -> &'static Code {
        &CODE
    }

    fn check(&self, cx: &Context<'_>, out: &mut Vec<Diagnostic>) {
        for rule in &cx.policy.rules {
            let no_peer = matches!(&rule.peers, PeerSet::Some(p) if p.is_empty());
            // NetworkPolicy isolation (policyTypes) is intentional; so is Cilium's empty rule.
            let intentional = rule.kind == PolicyKind::NetworkPolicy
                || (rule.requires.is_empty() && rule.ports.is_empty());
            if !no_peer || intentional {
                continue;
            }
            let (message, help) = if rule.requires.is_empty() {
                (
                    "this rule lists ports but an empty set of peers, so it allows nothing",
                    "name the peers to allow, or remove the empty peer list to allow every peer on these ports",
                )
            } else {
                (
                    "this rule only has requirements (fromRequires/toRequires), so it allows nothing by itself",
                    "requirements narrow what other rules allow; add the peers this rule should allow",
                )
            };
            out.push(cx.at_rule(&CODE, rule, message).with_help(help));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::testutil::*;

    #[test]
    fn requires_only_and_empty_peers_with_ports() {
        let mut b = Builder::new();
        let s = b.sel(&[("app", "web")]);
        let r = b.sel(&[("env", "prod")]);
        b.rule(s).requires(r).peers(vec![]).push(); // requires only: reported
        b.rule(s).peers(vec![]).tcp(80).push(); // empty peers + port: reported
        b.rule(s).peers(vec![]).push(); // `ingress: [{}]`: intentional
        b.rule(s)
            .kind(ir::PolicyKind::NetworkPolicy)
            .peers(vec![])
            .push(); // policyTypes
        b.rule(s).endpoints(r).push(); // a normal rule
        assert_eq!(
            b.codes_at(&super::GrantsNothing),
            vec![("CP2001", 0), ("CP2001", 1)]
        );
    }
}
