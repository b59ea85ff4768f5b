//! Reserved identities (Cilium's numbers), CIDR identities, and which identities an entity selects.

use ir::{Entity, IpNet, Label, LabelSet, LabelSource, NumericIdentity};

/// What an identity stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityKind {
    /// host, world, unmanaged, health, init, remote-node, kube-apiserver, ingress, world-ipv4/6.
    Reserved,
    /// Endpoints sharing these identity-relevant labels.
    Endpoint,
    /// Addresses whose longest policy prefix is this CIDR (node-local scope).
    Cidr(IpNet),
    /// Remote nodes with these node labels (remote-node scope): `k8s:` node labels plus
    /// `reserved:remote-node`.
    Node,
}

/// One identity with its identity-relevant labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityInfo {
    pub id: NumericIdentity,
    pub labels: LabelSet,
    pub kind: IdentityKind,
}

/// The labels of a reserved identity: `reserved:<name>`.
pub fn reserved_labels(id: NumericIdentity) -> Option<LabelSet> {
    id.reserved_name()
        .map(|n| LabelSet::new(vec![Label::reserved(n)]))
}

/// The labels of a CIDR identity for `prefix`: `cidr:<prefix>` plus `reserved:world` and the
/// address family's `reserved:world-ipv4`/`reserved:world-ipv6` (CIDR peers are outside the
/// cluster, so the `world` entities select them, as in Cilium).
pub fn cidr_labels(prefix: IpNet) -> LabelSet {
    let family = match prefix {
        IpNet::V4(_) => "world-ipv4",
        IpNet::V6(_) => "world-ipv6",
    };
    LabelSet::new(vec![
        Label::new(LabelSource::Cidr, prefix.to_string(), ""),
        Label::reserved("world"),
        Label::reserved(family),
    ])
}

/// The labels of a node as its identity carries them: every label of the `Node` object with the
/// `k8s:` source (Cilium's node labels; no identity-relevance filter applies), plus `reserved:`
/// `role`: `remote-node` for a node's own identity, `host` for the local node's host identity.
pub fn node_labels(node: Option<&ir::Node>, role: &str) -> LabelSet {
    let own = node.into_iter().flat_map(|n| n.labels.iter());
    let mut v: Vec<Label> = own.map(|(k, v)| Label::k8s(k, v)).collect();
    v.push(Label::reserved(role));
    LabelSet::new(v)
}

/// Does a node selector (`fromNodes`/`toNodes`) select identity `info`? Only nodes are
/// candidates: the local node (`host`) and the remote nodes' identities, by their labels.
pub fn node_selects(sel: &ir::Selector, info: &IdentityInfo) -> bool {
    (info.kind == IdentityKind::Node || info.id == NumericIdentity::HOST)
        && sel.matches(&info.labels)
}

fn has_reserved(info: &IdentityInfo, name: &str) -> bool {
    info.labels
        .iter()
        .any(|l| l.source == LabelSource::Reserved && l.key == name)
}

/// Does `entity` select identity `info`? `all` selects everything; `world` every identity outside
/// the cluster (world, world-ipv4/6, CIDR identities); `cluster` every endpoint and node identity
/// and the reserved identities inside the cluster (host, remote-node, kube-apiserver, init,
/// health, unmanaged, ingress); the others the identities with their `reserved:` label (so
/// `remote-node` selects every node identity too).
pub fn entity_selects(entity: Entity, info: &IdentityInfo) -> bool {
    match entity {
        Entity::All => true,
        Entity::None => false,
        Entity::World => ["world", "world-ipv4", "world-ipv6"]
            .iter()
            .any(|n| has_reserved(info, n)),
        Entity::Cluster => match info.kind {
            IdentityKind::Endpoint | IdentityKind::Node => true,
            IdentityKind::Cidr(_) => false,
            IdentityKind::Reserved => ![
                NumericIdentity::WORLD,
                NumericIdentity::WORLD_IPV4,
                NumericIdentity::WORLD_IPV6,
            ]
            .contains(&info.id),
        },
        other => has_reserved(info, other.name()),
    }
}
