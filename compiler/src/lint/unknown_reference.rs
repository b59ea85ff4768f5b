//! `unknown-reference`: a peer that refers to an object by name (`cidrGroupRef`) that is not
//! among the inputs; only checked when the inputs hold inventory objects.

use super::{Context, LintRule};
use crate::declare_code;
use crate::diag::{Code, Diagnostic};
use crate::front::decode::did_you_mean;
use ir::{Peer, PeerSet};
use std::collections::HashSet;

declare_code!(
    CODE,
    "CP2006",
    "unknown-reference",
    Warning,
    "A `cidrGroupRef` names a CiliumCIDRGroup that is not among the inputs. As in Cilium, the \
     reference then stands for no address: the peer allows (or denies) nothing until a group \
     of that name exists. Usually a typo in the name, or the group's manifest was not passed \
     with the policies. Only checked when the inputs contain inventory objects (Namespaces, \
     Pods, workloads, CiliumCIDRGroups)."
);

pub struct UnknownReference;

impl LintRule for UnknownReference {
    fn code(&self) -> &'static Code {
        &CODE
    }

    fn check(&self, cx: &Context<'_>, out: &mut Vec<Diagnostic>) {
        let inv = cx.inventory;
        if inv.is_empty() {
            return;
        }
        let groups: HashSet<&str> = inv.cidr_groups.iter().map(|g| g.name.as_str()).collect();
        for rule in &cx.policy.rules {
            let PeerSet::Some(peers) = &rule.peers else {
                continue;
            };
            for p in peers {
                if let Peer::CidrGroup { name, .. } = p {
                    if !groups.contains(name.as_str()) {
                        let msg = format!(
                            "`cidrGroupRef: {name}` names no CiliumCIDRGroup of the inputs, so this peer selects nothing"
                        );
                        let help = match did_you_mean(name, groups.iter().copied()) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => format!(
                                "the inputs define {}; check the name, or add the group's manifest",
                                list(&groups)
                            ),
                        };
                        out.push(cx.at_rule(&CODE, rule, msg).with_help(help));
                    }
                }
            }
        }
    }
}

fn list(groups: &HashSet<&str>) -> String {
    if groups.is_empty() {
        return "no CiliumCIDRGroup".into();
    }
    let mut names: Vec<&str> = groups.iter().copied().collect();
    names.sort_unstable();
    let s = if names.len() == 1 { "" } else { "s" };
    format!("the CiliumCIDRGroup{s} {}", names.join(", "))
}

#[cfg(test)]
mod tests {
    use crate::front::{parse_sources, Source};

    fn lint(text: &str) -> Vec<String> {
        let out = parse_sources(vec![Source {
            path: "p.yaml".into(),
            text: text.as_bytes().to_vec(),
        }]);
        assert!(!out.has_errors(), "{:?}", out.error_messages());
        crate::lint::check(&out.policy, &out.inventory)
            .into_iter()
            .filter(|d| d.code.code == "CP2006")
            .map(|d| format!("{}:{} {}", d.span.line, d.span.column, d.message))
            .collect()
    }

    const POLICY: &str = "apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: default}
spec:
  endpointSelector: {}
  egress:
  - toCIDRSet:
    - cidrGroupRef: vpn
    - cidrGroupRef: vpm
";

    #[test]
    fn reports_each_unknown_group_at_its_rule() {
        let group = "---
apiVersion: cilium.io/v2alpha1
kind: CiliumCIDRGroup
metadata: {name: vpn}
spec:
  externalCIDRs: [10.48.0.0/24]
";
        let got = lint(&format!("{POLICY}{group}"));
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with("7:5 `cidrGroupRef: vpm`"), "{got:?}");
    }

    #[test]
    fn policies_alone_are_not_checked() {
        assert!(lint(POLICY).is_empty());
    }
}
