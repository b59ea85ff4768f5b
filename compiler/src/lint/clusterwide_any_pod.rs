//! `clusterwide-any-pod`: an empty endpoint peer selector in a CiliumClusterwideNetworkPolicy.
//! Cilium scopes it to pods (`k8s:io.kubernetes.pod.namespace` Exists), so it admits every pod in
//! every namespace and no reserved identity; a reader may expect either more or less.

use super::{Context, LintRule};
use crate::declare_code;
use crate::diag::{Code, Diagnostic};
use crate::front::selector::POD_NAMESPACE_LABEL;
use ir::{Direction, LabelSource, Operator, Peer, PeerSet, PolicyKind, Selector};

declare_code!(
    CODE,
    "CP2005",
    "clusterwide-any-pod",
    Info,
    "An endpoint peer selector of a CiliumClusterwideNetworkPolicy without a namespace key (for \
     example `fromEndpoints: [{}]`, Cilium's \"every Cilium-managed endpoint\") is scoped to \
     pods: Cilium adds `k8s:io.kubernetes.pod.namespace` Exists to it, so it selects every pod \
     in every namespace and never a reserved identity (`world`, `host`, `remote-node`, …). To \
     admit those, name them with `fromEntities`/`toEntities`; to narrow it to some namespaces, \
     add a namespace key or namespace labels to the selector."
);

pub struct ClusterwideAnyPod;

/// Is this selector exactly the pod scope Cilium gives an empty clusterwide peer selector?
fn every_pod(s: &Selector) -> bool {
    matches!(s.requirements.as_slice(), [r] if r.operator == Operator::Exists
        && r.key.source == LabelSource::K8s
        && r.key.key == POD_NAMESPACE_LABEL)
}

impl LintRule for ClusterwideAnyPod {
    fn code(&self) -> &'static Code {
        &CODE
    }

    fn check(&self, cx: &Context<'_>, out: &mut Vec<Diagnostic>) {
        for rule in &cx.policy.rules {
            if rule.kind != PolicyKind::CiliumClusterwideNetworkPolicy {
                continue;
            }
            let PeerSet::Some(peers) = &rule.peers else {
                continue;
            };
            let empty = peers
                .iter()
                .any(|p| matches!(p, Peer::Endpoints(h) if every_pod(&cx.policy.selectors[*h])));
            if !empty {
                continue;
            }
            let entities = match rule.direction {
                Direction::Ingress => "fromEntities",
                Direction::Egress => "toEntities",
            };
            let message = "this clusterwide peer selector selects every pod in every namespace \
                 and no reserved identity such as `world` or `host`";
            let help = format!("name the world or the host with `{entities}` if they are meant");
            out.push(cx.at_rule(&CODE, rule, message).with_help(help));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::front::{parse_sources, Source};

    fn codes_in(path: &str, text: &str) -> Vec<String> {
        let out = parse_sources(vec![Source {
            path: path.into(),
            text: text.as_bytes().to_vec(),
        }]);
        assert!(!out.has_errors(), "{:?}", out.error_messages());
        let mut d = Vec::new();
        let cx = super::Context {
            policy: &out.policy,
            inventory: &out.inventory,
        };
        super::super::LintRule::check(&super::ClusterwideAnyPod, &cx, &mut d);
        d.iter().map(|d| d.path.clone()).collect()
    }

    const CCNP: &str = "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\n\
        metadata: {name: p}\nspec:\n  endpointSelector: {}\n";

    #[test]
    fn empty_clusterwide_peers_are_explained() {
        let y = format!(
            "{CCNP}  ingress:\n  - fromEndpoints: [{{}}]\n  - fromEndpoints: [{{matchLabels: {{app: a}}}}]\n\
             \x20 egress:\n  - toEndpoints: [{{}}]\n"
        );
        assert_eq!(
            codes_in("p.yaml", &y),
            vec!["spec.ingress[0]", "spec.egress[0]"]
        );
    }

    #[test]
    fn namespaced_and_json_empty_peers_are_not() {
        let cnp = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\n\
            spec:\n  endpointSelector: {}\n  ingress:\n  - fromEndpoints: [{}]\n";
        assert!(codes_in("p.yaml", cnp).is_empty());
        let json = r#"[{"endpointSelector": {}, "ingress": [{"fromEndpoints": [{}]}]}]"#;
        assert!(codes_in("p.json", json).is_empty());
    }
}
