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
    /// The policy object is in audit mode ([`Rule::audit`]).
    pub audit: bool,
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

/// How a policy kind scopes the endpoint selectors of its peers (Cilium's
/// `getEndpointSelector` in `pkg/k8s/apis/cilium.io/utils/utils.go`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerScope<'a> {
    /// A namespaced kind (NetworkPolicy, CiliumNetworkPolicy): the policy's own namespace.
    Namespace(&'a str),
    /// A CiliumClusterwideNetworkPolicy: every namespace, but only pods, so an empty selector never
    /// selects a reserved identity; not added when the subject selects `reserved:init` (initializing
    /// endpoints have no namespace label).
    Clusterwide { subject_matches_init: bool },
    /// Cilium JSON rules (`cilium policy import`): selectors are taken as written.
    Unscoped,
}

impl<'a> PeerScope<'a> {
    /// The scope of a rule in `scope` whose subject is `subject` (as written, before namespacing).
    pub fn of(scope: &'a Scope, subject: &Selector) -> Self {
        match (scope.kind, scope.namespace.as_deref()) {
            (_, Some(ns)) => PeerScope::Namespace(ns),
            (PolicyKind::CiliumClusterwideNetworkPolicy, None) => PeerScope::Clusterwide {
                subject_matches_init: selects_init(subject),
            },
            _ => PeerScope::Unscoped,
        }
    }
}

/// Which peer field a selector comes from: Cilium leaves reserved-label selectors unscoped in
/// `fromEndpoints`/`toEndpoints` only, not in `fromRequires`/`toRequires`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerField {
    Endpoints,
    Requires,
}

fn is_pod_namespace_key(k: &LabelKey) -> bool {
    matches!(k.source, LabelSource::K8s | LabelSource::Any) && k.key == POD_NAMESPACE_LABEL
}

/// Does the selector have a requirement on the key `reserved:init`?
pub fn selects_init(s: &Selector) -> bool {
    s.requirements
        .iter()
        .any(|r| r.key.source == LabelSource::Reserved && r.key.key == "init")
}

/// A peer selector with the namespace scoping Cilium adds for the policy's kind:
/// * a selector of `fromEndpoints`/`toEndpoints` with any `reserved:` key is kept as written;
/// * a selector with a pod-namespace key (`k8s:` or `any:`) is kept as written;
/// * namespaced kinds add `k8s:io.kubernetes.pod.namespace=<ns>` unless a namespace-label key
///   (`io.cilium.k8s.namespace.labels.*`) already says which namespaces;
/// * clusterwide policies add `k8s:io.kubernetes.pod.namespace` Exists (only pods, every
///   namespace) unless the subject selects `reserved:init`.
pub fn scoped_peer(s: Selector, scope: PeerScope<'_>, field: PeerField) -> Selector {
    let reserved = s
        .requirements
        .iter()
        .any(|r| r.key.source == LabelSource::Reserved);
    if (field == PeerField::Endpoints && reserved)
        || s.requirements.iter().any(|r| is_pod_namespace_key(&r.key))
    {
        return s;
    }
    match scope {
        PeerScope::Namespace(ns) if !constrains_namespace(&s) => {
            s.and(&Selector::new(vec![namespace_requirement(ns)]))
        }
        PeerScope::Clusterwide {
            subject_matches_init: false,
        } => s.and(&any_namespace()),
        _ => s,
    }
}

/// A NetworkPolicy `podSelector` peer: restricted to the policy's namespace.
pub fn namespaced_peer(s: Selector, ns: Option<&str>) -> Selector {
    match ns {
        Some(ns) => scoped_peer(s, PeerScope::Namespace(ns), PeerField::Endpoints),
        None => s,
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
    /// See [`Rule::default_deny`].
    pub default_deny: bool,
}

/// A peer whose endpoint selector is not yet interned.
#[derive(Clone, Debug)]
pub enum PendingPeer {
    Endpoints(Selector),
    /// `fromNodes`/`toNodes`: a selector over node labels (never namespaced).
    Nodes(Selector),
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
                            PendingPeer::Nodes(s) => Peer::Nodes(sel(s, &mut set.selectors)),
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
                default_deny: r.default_deny,
                audit: scope.audit,
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
