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

fn has_reserved(info: &IdentityInfo, name: &str) -> bool {
    info.labels
        .iter()
        .any(|l| l.source == LabelSource::Reserved && l.key == name)
}

/// Does `entity` select identity `info`? `all` selects everything; `world` every identity outside
/// the cluster (world, world-ipv4/6, CIDR identities); `cluster` every endpoint identity and the
/// reserved identities inside the cluster (host, remote-node, kube-apiserver, init, health,
/// unmanaged, ingress); the others their reserved identity.
pub fn entity_selects(entity: Entity, info: &IdentityInfo) -> bool {
    match entity {
        Entity::All => true,
        Entity::None => false,
        Entity::World => ["world", "world-ipv4", "world-ipv6"]
            .iter()
            .any(|n| has_reserved(info, n)),
        Entity::Cluster => match info.kind {
            IdentityKind::Endpoint => true,
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
