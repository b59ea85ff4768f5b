//! Normalized rules and the policy set that holds them.

use crate::arena::{Handle, UniqueArena};
use crate::entity::Entity;
use crate::l4::PortRule;
use crate::l7::DnsRule;
use crate::label::LabelSet;
use crate::net::{CidrSet, IpNet};
use crate::selector::Selector;
use crate::source::{FileId, SourceFile, Span};
use serde::{Deserialize, Serialize};

/// Index of a rule in [`PolicySet::rules`]; stable for one compilation, used in map-state
/// provenance and the datapath's rule-id → file:line table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RuleId(pub u32);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Action {
    Allow,
    Deny,
}

/// Which language a rule came from; the semantics differ (see Documentation/policy-semantics.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PolicyKind {
    /// `networking.k8s.io/v1` (or deprecated `extensions/v1beta1`) NetworkPolicy.
    NetworkPolicy,
    CiliumNetworkPolicy,
    CiliumClusterwideNetworkPolicy,
    /// A rule array of `cilium policy import` (seed §5.1), not namespaced.
    CiliumJson,
}

impl PolicyKind {
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::NetworkPolicy => "NetworkPolicy",
            PolicyKind::CiliumNetworkPolicy => "CiliumNetworkPolicy",
            PolicyKind::CiliumClusterwideNetworkPolicy => "CiliumClusterwideNetworkPolicy",
            PolicyKind::CiliumJson => "CiliumJSON",
        }
    }
}

/// One peer a rule allows or denies.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Peer {
    /// Endpoints whose labels the selector matches (`fromEndpoints`, `podSelector`,
    /// `namespaceSelector`, both together).
    Endpoints(Handle<Selector>),
    /// Addresses in a CIDR set. `by_address`: NetworkPolicy `ipBlock` semantics, which also match
    /// pod addresses inside the block (Cilium's CIDR rules select only non-cluster identities).
    Cidr {
        set: CidrSet,
        by_address: bool,
    },
    Entity(Entity),
    /// `cidrGroupRef` of a CIDR set: the prefixes of the `CiliumCIDRGroup` named `name` (from
    /// the inventory, by identity like a Cilium CIDR set) minus `except`; none when no such
    /// group exists.
    CidrGroup {
        name: String,
        except: Vec<IpNet>,
    },
    /// `toFQDNs` (understood, not enforced).
    Fqdn(DnsRule),
    /// `fromNodes`/`toNodes`: the nodes whose labels the selector matches. Node labels carry
    /// the `k8s:` source; the selector is matched against nodes only (the local node, whose
    /// identity is `host`, and the other nodes' identities), never against endpoints, and
    /// `fromRequires`/`toRequires` do not constrain it.
    Nodes(Handle<Selector>),
    /// `toServices`: a service by name (`k8sService`) or the services whose labels a selector
    /// matches (`k8sServiceSelector`), in `namespace` (every namespace when `None`). Resolved
    /// against the inventory: a service with a pod selector stands for its pods, one without
    /// for the addresses of its EndpointSlices (by identity, like a CIDR: never a pod).
    Service {
        name: Option<String>,
        namespace: Option<String>,
        selector: Option<Handle<Selector>>,
    },
}

/// The L3 part of a rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PeerSet {
    /// No L3 restriction: every peer (an L4-only rule, or NetworkPolicy's absent `from`/`to`).
    Any,
    /// These peers only. Empty: the rule selects no peer and only turns enforcement on
    /// (Cilium's `ingress: [{}]`, NetworkPolicy's `policyTypes` without rules).
    Some(Vec<Peer>),
}

/// Where a rule came from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Provenance {
    pub kind: PolicyKind,
    pub namespace: Option<String>,
    pub name: String,
    pub file: FileId,
    /// The span of the rule item (e.g. the `ingress[0]` mapping) in `file`.
    pub span: Span,
    /// Index of the rule within its policy object and direction, e.g. `ingress[2]` → 2.
    pub rule_index: u32,
    /// For `specs:` lists, the index of the spec.
    pub spec_index: Option<u32>,
    /// Policy labels (`labels:` of a Cilium rule, plus derived `io.cilium.k8s.policy.*`).
    pub labels: LabelSet,
}

/// A normalized rule: subject endpoints, a direction, allow or deny, peers, L4 and L7.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub id: RuleId,
    pub kind: PolicyKind,
    /// Endpoints this rule applies to (namespace requirement included).
    pub subject: Handle<Selector>,
    pub direction: Direction,
    pub action: Action,
    pub peers: PeerSet,
    /// `fromRequires` / `toRequires`: every peer of every rule selecting the subject must also
    /// match these. They grant nothing on their own.
    pub requires: Vec<Handle<Selector>>,
    /// Empty: every port and protocol.
    pub ports: Vec<PortRule>,
    /// Whether this rule puts its subject into default deny in its direction (Cilium's
    /// `enableDefaultDeny`, true unless a Cilium rule sets it `false`). An endpoint whose rules
    /// in a direction all say `false` allows what no deny rule denies; their allows still decide
    /// L7 redirects.
    #[serde(default = "default_deny")]
    pub default_deny: bool,
    /// The rule's policy is in audit mode (annotation `cilium-policy.io/audit-mode: "true"`):
    /// what only audit-mode rules would deny passes and is reported as audited.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub audit: bool,
    pub provenance: Provenance,
}

fn default_deny() -> bool {
    true
}

/// Everything the front ends produced: files, interned selectors, rules.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PolicySet {
    pub files: Vec<SourceFile>,
    pub selectors: UniqueArena<Selector>,
    pub rules: Vec<Rule>,
}

impl PolicySet {
    pub fn add_file(&mut self, path: impl Into<String>) -> FileId {
        self.files.push(SourceFile { path: path.into() });
        FileId(self.files.len() as u32 - 1)
    }
    /// Appends a rule, assigning its id.
    pub fn push_rule(&mut self, mut rule: Rule) -> RuleId {
        let id = RuleId(self.rules.len() as u32);
        rule.id = id;
        self.rules.push(rule);
        id
    }
    /// Appends the rules of `other` (whose `files` are ignored: its rules must already refer to
    /// this set's file ids), re-interning their selectors here and assigning new rule ids.
    pub fn absorb(&mut self, other: PolicySet) {
        let PolicySet {
            selectors, rules, ..
        } = other;
        let mut map = |h: Handle<Selector>| self.selectors.insert(selectors[h].clone());
        let rules: Vec<Rule> = rules
            .into_iter()
            .map(|mut r| {
                r.subject = map(r.subject);
                r.requires = r.requires.iter().map(|h| map(*h)).collect();
                if let PeerSet::Some(peers) = &mut r.peers {
                    for p in peers {
                        match p {
                            Peer::Endpoints(h) | Peer::Nodes(h) => *h = map(*h),
                            Peer::Service {
                                selector: Some(h), ..
                            } => *h = map(*h),
                            _ => {}
                        }
                    }
                }
                r
            })
            .collect();
        for r in rules {
            self.push_rule(r);
        }
    }
    /// [`PolicySet::absorb`] for a set parsed alone: its rules become rules of this set's file
    /// `file`. Returns the new rules' ids.
    pub fn absorb_file(&mut self, mut other: PolicySet, file: FileId) -> Vec<RuleId> {
        for r in &mut other.rules {
            r.provenance.file = file;
        }
        let first = self.rules.len() as u32;
        self.absorb(other);
        (first..self.rules.len() as u32).map(RuleId).collect()
    }
    pub fn rule(&self, id: RuleId) -> &Rule {
        &self.rules[id.0 as usize]
    }
    pub fn file_path(&self, id: FileId) -> &str {
        &self.files[id.0 as usize].path
    }
    /// One rule by id, kind, policy, item and location, the form every output uses:
    /// `r3 CiliumNetworkPolicy default/rule1 specs[1] ingress[0] (policies/l7.yaml:9:5)`.
    pub fn describe_rule(&self, id: RuleId) -> String {
        let r = self.rule(id);
        let p = &r.provenance;
        let ns = p
            .namespace
            .as_deref()
            .map(|n| format!("{n}/"))
            .unwrap_or_default();
        let spec = p
            .spec_index
            .map(|i| format!(" specs[{i}]"))
            .unwrap_or_default();
        format!(
            "r{} {} {ns}{}{spec} {}[{}] ({})",
            id.0,
            p.kind.name(),
            p.name,
            r.direction.name(),
            p.rule_index,
            self.location(id)
        )
    }
    /// `file:line:column` of a rule, for messages and the datapath's rule table.
    pub fn location(&self, id: RuleId) -> String {
        let p = &self.rule(id).provenance;
        format!(
            "{}:{}:{}",
            self.file_path(p.file),
            p.span.line,
            p.span.column
        )
    }
}
