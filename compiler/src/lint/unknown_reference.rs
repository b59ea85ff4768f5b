//! `unknown-reference`: a peer that refers to objects (`cidrGroupRef`, `toServices`) none of
//! which is among the inputs; only checked when the inputs hold inventory objects.

use super::{Context, LintRule};
use crate::cluster::service_labels;
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
    "A `cidrGroupRef` names a CiliumCIDRGroup that is not among the inputs, or a `toServices` \
     entry (`k8sService` by name, `k8sServiceSelector` by labels) matches no Service of the \
     inputs. As in Cilium, the reference then stands for no address: the peer allows (or \
     denies) nothing until such an object exists. Usually a typo in the name, the wrong \
     namespace, or the object's manifest was not passed with the policies. Only checked when \
     the inputs contain inventory objects (Namespaces, Pods, workloads, CiliumCIDRGroups, \
     Services, EndpointSlices)."
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
                let found = match p {
                    Peer::CidrGroup { name, .. } => {
                        if groups.contains(name.as_str()) {
                            continue;
                        }
                        let help = match did_you_mean(name, groups.iter().copied()) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => format!(
                                "the inputs define {}; check the name, or add the group's manifest",
                                list(&groups)
                            ),
                        };
                        let msg = format!(
                            "`cidrGroupRef: {name}` names no CiliumCIDRGroup of the inputs, so this peer selects nothing"
                        );
                        (msg, help)
                    }
                    Peer::Service {
                        name,
                        namespace,
                        selector,
                    } => {
                        let sel = selector.map(|h| &cx.policy.selectors[h]);
                        let matches = |svc: &&ir::Service| {
                            namespace.as_deref().is_none_or(|n| n == svc.namespace)
                                && name.as_deref().is_none_or(|n| n == svc.name)
                                && sel.is_none_or(|s| s.matches(&service_labels(svc)))
                        };
                        if inv.services.iter().any(|s| matches(&s)) {
                            continue;
                        }
                        let ns = namespace.as_deref().unwrap_or("any namespace");
                        let what = match (name, sel) {
                            (Some(n), _) => format!("`k8sService` {n} in {ns}"),
                            (None, Some(s)) => format!("`k8sServiceSelector` {s} in {ns}"),
                            (None, None) => continue,
                        };
                        let msg = format!(
                            "{what} matches no Service of the inputs, so this peer selects nothing"
                        );
                        let help =
                            "check the name, labels and namespace, or add the Service's manifest"
                                .to_string();
                        (msg, help)
                    }
                    _ => continue,
                };
                out.push(cx.at_rule(&CODE, rule, found.0).with_help(found.1));
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

    #[test]
    fn reports_services_matching_nothing() {
        let text = "apiVersion: v1
kind: Service
metadata: {name: db, namespace: default, labels: {tier: data}}
spec: {selector: {app: db}}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: default}
spec:
  endpointSelector: {}
  egress:
  - toServices:
    - k8sService: {serviceName: db}
    - k8sService: {serviceName: db, namespace: prod}
    - k8sServiceSelector: {selector: {matchLabels: {tier: data}}}
    - k8sServiceSelector: {selector: {matchLabels: {tier: web}}}
";
        let got = lint(text);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].contains("`k8sService` db in prod"), "{got:?}");
        assert!(got[1].contains("`k8sServiceSelector`"), "{got:?}");
        assert!(got[1].contains("tier"), "{got:?}");
    }
}
