//! `selects-nothing`: a subject or peer selector that matches no endpoint of the inventory
//! (the Namespaces, Pods and workloads among the inputs); only checked when there is one.

use super::{Context, LintRule};
use crate::declare_code;
use crate::diag::{Code, Diagnostic};
use crate::identity::derive_labels;
use ir::{Handle, LabelSet, LabelSource, Operator, Peer, PeerSet, Rule, Selector};
use std::collections::{HashMap, HashSet};

declare_code!(
    CODE,
    "CP2002",
    "selects-nothing",
    Warning,
    "A selector matches no endpoint of the inventory given with the policies (the Namespace, \
     Pod and workload objects among the inputs, with the labels Cilium derives for them: \
     `k8s:` pod labels, `k8s:io.kubernetes.pod.namespace`, the namespace's labels as \
     `k8s:io.cilium.k8s.namespace.labels.*`, the service account). A subject that selects \
     nothing makes the whole rule dead; a peer that selects nothing allows nothing. Usually a \
     typo in a label, a label the workloads do not carry, or the wrong namespace. Only checked \
     when the inputs contain such objects; selectors of reserved identities are not checked."
);

/// The cluster name given to inventory endpoints (Cilium's default).
const CLUSTER: &str = "default";

pub struct SelectsNothing;

impl LintRule for SelectsNothing {
    fn code(&self) -> &'static Code {
        &CODE
    }

    fn check(&self, cx: &Context<'_>, out: &mut Vec<Diagnostic>) {
        let inv = cx.inventory;
        if inv.endpoints.is_empty() && inv.namespaces.is_empty() {
            return;
        }
        let endpoints = Endpoints::new(cx);
        let mut memo: HashMap<Handle<Selector>, bool> = HashMap::new();
        let mut selects_nothing = |h: Handle<Selector>| {
            *memo.entry(h).or_insert_with(|| {
                let sel = &cx.policy.selectors[h];
                checkable(sel) && !endpoints.any_matches(sel)
            })
        };
        let inventory = format!(
            "{} in {}",
            plural(endpoints.labels.len(), "endpoint"),
            plural(namespaces(cx), "namespace")
        );
        // One report per policy object for its subject (all its rules share it).
        let mut subjects_seen = HashSet::new();
        for rule in &cx.policy.rules {
            let p = &rule.provenance;
            let object = (
                p.file,
                p.name.clone(),
                p.namespace.clone(),
                p.spec_index,
                rule.subject,
            );
            if subjects_seen.insert(object) && selects_nothing(rule.subject) {
                let msg = format!(
                    "the subject selector {} selects no endpoint",
                    cx.policy.selectors[rule.subject]
                );
                out.push(cx.at_rule(&CODE, rule, msg).with_help(help(&inventory)));
            }
            for h in peer_selectors(rule) {
                if selects_nothing(h) {
                    let msg = format!(
                        "the {} selector {} selects no endpoint, so this peer allows nothing",
                        peer_word(rule),
                        cx.policy.selectors[h]
                    );
                    out.push(cx.at_rule(&CODE, rule, msg).with_help(help(&inventory)));
                }
            }
        }
    }
}

/// The inventory's endpoints with their derived labels, indexed by `key=value` (any source) so
/// that a selector with an `In` requirement only tries the endpoints that can match it.
struct Endpoints {
    labels: Vec<LabelSet>,
    by_label: HashMap<String, HashMap<String, Vec<usize>>>,
}

impl Endpoints {
    fn new(cx: &Context<'_>) -> Self {
        let inv = cx.inventory;
        let labels: Vec<LabelSet> = inv
            .endpoints
            .iter()
            .map(|ep| {
                let ns = inv
                    .namespaces
                    .iter()
                    .find(|n| Some(&n.name) == ep.namespace.as_ref());
                derive_labels(ep, ns, CLUSTER)
            })
            .collect();
        let mut by_label: HashMap<String, HashMap<String, Vec<usize>>> = HashMap::new();
        for (i, set) in labels.iter().enumerate() {
            for l in set.iter() {
                by_label
                    .entry(l.key.clone())
                    .or_default()
                    .entry(l.value.clone())
                    .or_default()
                    .push(i);
            }
        }
        Endpoints { labels, by_label }
    }

    fn any_matches(&self, sel: &Selector) -> bool {
        // The `In` requirement with the fewest candidate endpoints bounds the search.
        let candidates = sel
            .requirements
            .iter()
            .filter(|r| r.operator == Operator::In)
            .map(|r| {
                let lists: Vec<&[usize]> = r
                    .values
                    .iter()
                    .filter_map(|v| self.by_label.get(&r.key.key)?.get(v))
                    .map(Vec::as_slice)
                    .collect();
                lists
            })
            .min_by_key(|lists| lists.iter().map(|l| l.len()).sum::<usize>());
        match candidates {
            Some(lists) => lists
                .iter()
                .copied()
                .flatten()
                .any(|&i| sel.matches(&self.labels[i])),
            None => self.labels.iter().any(|l| sel.matches(l)),
        }
    }
}

/// Selectors about endpoint labels; those naming reserved, CIDR or FQDN labels select
/// identities the inventory does not describe.
fn checkable(sel: &Selector) -> bool {
    sel.requirements.iter().all(|r| {
        matches!(
            r.key.source,
            LabelSource::Any | LabelSource::K8s | LabelSource::Container | LabelSource::Unspec
        )
    })
}

fn peer_selectors(rule: &Rule) -> Vec<Handle<Selector>> {
    match &rule.peers {
        PeerSet::Any => vec![],
        PeerSet::Some(peers) => peers
            .iter()
            .filter_map(|p| match p {
                Peer::Endpoints(h) => Some(*h),
                _ => None,
            })
            .collect(),
    }
}

fn peer_word(rule: &Rule) -> &'static str {
    match rule.direction {
        ir::Direction::Ingress => "source",
        ir::Direction::Egress => "destination",
    }
}

fn namespaces(cx: &Context<'_>) -> usize {
    let inv = cx.inventory;
    let mut names: HashSet<&str> = inv.namespaces.iter().map(|n| n.name.as_str()).collect();
    names.extend(inv.endpoints.iter().filter_map(|e| e.namespace.as_deref()));
    names.len()
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn help(inventory: &str) -> String {
    format!("the inputs describe {inventory}; check the labels and the namespace, or add the workloads this policy is for")
}

#[cfg(test)]
mod tests {
    use crate::lint::testutil::*;
    use crate::testkit::{namespace, pod, selector};

    #[test]
    fn selectors_are_matched_against_derived_labels() {
        let mut b = Builder::new();
        b.inventory
            .namespaces
            .push(namespace("shop", &[("team", "web")]));
        b.inventory
            .endpoints
            .push(pod("shop", "pod", &[("app", "frontend")]));
        let ns = "k8s:io.kubernetes.pod.namespace";
        let p = &mut b.policy;
        let front = selector(p, &[("k8s:app", "frontend"), (ns, "shop")]);
        let api = selector(p, &[("k8s:app", "api"), (ns, "shop")]);
        let other_ns = selector(p, &[("k8s:app", "frontend"), (ns, "prod")]);
        let team = "k8s:io.cilium.k8s.namespace.labels.team";
        let team_web = selector(p, &[(team, "web")]);
        let team_ops = selector(p, &[(team, "ops")]);
        let any_app = b.sel(&[("app", "frontend")]);
        b.rule(front).endpoints(team_web).endpoints(any_app).push(); // 0: fine
        b.rule(api).endpoints(front).push(); // 1: subject selects nothing
        b.rule(front).endpoints(team_ops).push(); // 2: peer selects nothing
        b.rule(other_ns).push(); // 3: subject in another namespace
        let got = b.codes_at(&super::SelectsNothing);
        assert_eq!(got, vec![("CP2002", 1), ("CP2002", 2), ("CP2002", 3)]);
    }

    #[test]
    fn nothing_is_checked_without_an_inventory() {
        let mut b = Builder::new();
        let api = b.sel(&[("app", "api")]);
        b.rule(api).endpoints(api).push();
        assert_eq!(b.codes_at(&super::SelectsNothing), vec![]);
    }
}
