//! Lowering helpers shared by every policy kind: Kubernetes namespacing exactly as Cilium applies
//! it (Documentation/namespacing.md), derived policy labels, and the per-object buffer of rules
//! that is committed to the [`PolicySet`] only when the whole object decoded without error.

use super::selector::{NAMESPACE_LABELS_PREFIX, POD_NAMESPACE_LABEL};
use ir::arena::UniqueArena;
use ir::{
    Action, Direction, FileId, Handle, Label, LabelKey, LabelSet, LabelSource, Operator, Peer,
    PeerSet, PolicyKind, PolicySet, PortRule, Provenance, Requirement, Rule, RuleId, Selector,
    Span,
};

/// What every rule of one policy object (or one `specs` entry) shares.
#[derive(Clone, Debug)]
pub struct Scope {
    pub kind: PolicyKind,
    /// The namespace of a namespaced kind (`default` when the manifest gives none).
    pub namespace: Option<String>,
    pub name: String,
    pub file: FileId,
    pub spec_index: Option<u32>,
    /// Derived `io.cilium.k8s.policy.*` labels plus the rule's own `labels:`.
    pub labels: LabelSet,
}

impl Scope {
    /// The labels Cilium derives for a Kubernetes policy object.
    pub fn derived_labels(kind: PolicyKind, name: &str, namespace: Option<&str>) -> LabelSet {
        let mut l = vec![
            Label::k8s("io.cilium.k8s.policy.derived-from", kind.name()),
            Label::k8s("io.cilium.k8s.policy.name", name),
        ];
        if let Some(ns) = namespace {
            l.push(Label::k8s("io.cilium.k8s.policy.namespace", ns));
        }
        LabelSet::new(l)
    }
}

/// `k8s:io.kubernetes.pod.namespace In (ns)`.
pub fn namespace_requirement(ns: &str) -> Requirement {
    Requirement::new(
        LabelKey::new(LabelSource::K8s, POD_NAMESPACE_LABEL),
        Operator::In,
        vec![ns.to_string()],
    )
}

/// `k8s:io.kubernetes.pod.namespace` Exists: every namespace (NetworkPolicy's empty namespaceSelector).
pub fn any_namespace() -> Selector {
    Selector::new(vec![Requirement::new(
        LabelKey::new(LabelSource::K8s, POD_NAMESPACE_LABEL),
        Operator::Exists,
        vec![],
    )])
}

fn is_namespace_key(k: &LabelKey) -> bool {
    matches!(k.source, LabelSource::K8s | LabelSource::Any)
        && (k.key == POD_NAMESPACE_LABEL || k.key.starts_with(NAMESPACE_LABELS_PREFIX))
}

/// Does the selector already say which namespace(s) it selects (pod namespace or namespace labels)?
pub fn constrains_namespace(s: &Selector) -> bool {
    s.requirements.iter().any(|r| is_namespace_key(&r.key))
}

/// A namespaced policy's peer selector: restricted to the policy's namespace unless it already
/// constrains the namespace or selects reserved identities (`reserved:init`, …).
pub fn namespaced_peer(s: Selector, ns: Option<&str>) -> Selector {
    let reserved = s
        .requirements
        .iter()
        .any(|r| r.key.source == LabelSource::Reserved);
    match ns {
        Some(ns) if !constrains_namespace(&s) && !reserved => {
            s.and(&Selector::new(vec![namespace_requirement(ns)]))
        }
        _ => s,
    }
}

/// A namespaced policy's subject: always exactly the policy's namespace. Returns the selector and
/// whether a different pod-namespace requirement written by the user was dropped.
pub fn namespaced_subject(s: Selector, ns: Option<&str>) -> (Selector, bool) {
    let Some(ns) = ns else { return (s, false) };
    let ours = namespace_requirement(ns);
    let (theirs, mut rest): (Vec<_>, Vec<_>) = s
        .requirements
        .into_iter()
        .partition(|r| is_namespace_key(&r.key) && r.key.key == POD_NAMESPACE_LABEL);
    let overridden = theirs
        .iter()
        .any(|r| r.operator != Operator::In || r.values != ours.values);
    rest.push(ours);
    (Selector::new(rest), overridden)
}

/// A rule as decoded, before its selectors are interned into the policy set.
#[derive(Clone, Debug)]
pub struct PendingRule {
    pub subject: Selector,
    pub direction: Direction,
    pub action: Action,
    /// `None`: every peer ([`PeerSet::Any`]).
    pub peers: Option<Vec<PendingPeer>>,
    pub requires: Vec<Selector>,
    pub ports: Vec<PortRule>,
    pub span: Span,
    pub rule_index: u32,
}

/// A peer whose endpoint selector is not yet interned.
#[derive(Clone, Debug)]
pub enum PendingPeer {
    Endpoints(Selector),
    Other(Peer),
    Service {
        name: Option<String>,
        namespace: Option<String>,
        selector: Option<Selector>,
    },
}

/// The rules of one policy object, committed all together or not at all.
#[derive(Debug, Default)]
pub struct Pending {
    rules: Vec<(Scope, PendingRule)>,
}

impl Pending {
    pub fn push(&mut self, scope: &Scope, rule: PendingRule) {
        self.rules.push((scope.clone(), rule));
    }
    pub fn len(&self) -> usize {
        self.rules.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
    /// Interns the selectors and appends the rules to `set`.
    pub fn commit(self, set: &mut PolicySet) {
        for (scope, r) in self.rules {
            let sel = |s: Selector, arena: &mut UniqueArena<Selector>| -> Handle<Selector> {
                arena.insert(s)
            };
            let subject = sel(r.subject, &mut set.selectors);
            let peers = match r.peers {
                None => PeerSet::Any,
                Some(ps) => PeerSet::Some(
                    ps.into_iter()
                        .map(|p| match p {
                            PendingPeer::Endpoints(s) => {
                                Peer::Endpoints(sel(s, &mut set.selectors))
                            }
                            PendingPeer::Other(p) => p,
                            PendingPeer::Service {
                                name,
                                namespace,
                                selector,
                            } => Peer::Service {
                                name,
                                namespace,
                                selector: selector.map(|s| sel(s, &mut set.selectors)),
                            },
                        })
                        .collect(),
                ),
            };
            let requires = r
                .requires
                .into_iter()
                .map(|s| sel(s, &mut set.selectors))
                .collect();
            set.push_rule(Rule {
                id: RuleId(0),
                kind: scope.kind,
                subject,
                direction: r.direction,
                action: r.action,
                peers,
                requires,
                ports: r.ports,
                provenance: Provenance {
                    kind: scope.kind,
                    namespace: scope.namespace,
                    name: scope.name,
                    file: scope.file,
                    span: r.span,
                    rule_index: r.rule_index,
                    spec_index: scope.spec_index,
                    labels: scope.labels,
                },
            });
        }
    }
}
