//! Numeric security identities (seed §3.7) and Cilium's reserved identity numbers.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NumericIdentity(pub u32);

impl NumericIdentity {
    /// The datapath's wildcard (matches every identity in a policy key).
    pub const WILDCARD: NumericIdentity = NumericIdentity(0);
    pub const HOST: NumericIdentity = NumericIdentity(1);
    pub const WORLD: NumericIdentity = NumericIdentity(2);
    pub const UNMANAGED: NumericIdentity = NumericIdentity(3);
    pub const HEALTH: NumericIdentity = NumericIdentity(4);
    pub const INIT: NumericIdentity = NumericIdentity(5);
    pub const REMOTE_NODE: NumericIdentity = NumericIdentity(6);
    pub const KUBE_APISERVER: NumericIdentity = NumericIdentity(7);
    pub const INGRESS: NumericIdentity = NumericIdentity(8);
    pub const WORLD_IPV4: NumericIdentity = NumericIdentity(9);
    pub const WORLD_IPV6: NumericIdentity = NumericIdentity(10);
    /// First identity allocated for label sets of endpoints (cluster-local scope).
    pub const MIN_ALLOCATED: NumericIdentity = NumericIdentity(256);
    /// Locally scoped identities (CIDR identities) have this bit set, as in Cilium.
    pub const LOCAL_SCOPE: u32 = 1 << 24;
    /// Identities of remote nodes (one per distinct set of node labels) have this scope, as in
    /// Cilium ≥ 1.16 (`IdentityScopeRemoteNode`, 0x02000000).
    pub const REMOTE_NODE_SCOPE: u32 = 2 << 24;

    /// The reserved identities with their `reserved:` label key.
    pub const RESERVED: [(NumericIdentity, &'static str); 10] = [
        (Self::HOST, "host"),
        (Self::WORLD, "world"),
        (Self::UNMANAGED, "unmanaged"),
        (Self::HEALTH, "health"),
        (Self::INIT, "init"),
        (Self::REMOTE_NODE, "remote-node"),
        (Self::KUBE_APISERVER, "kube-apiserver"),
        (Self::INGRESS, "ingress"),
        (Self::WORLD_IPV4, "world-ipv4"),
        (Self::WORLD_IPV6, "world-ipv6"),
    ];

    pub fn is_reserved(self) -> bool {
        self.0 > 0 && self.0 < Self::MIN_ALLOCATED.0
    }
    pub fn is_local(self) -> bool {
        self.0 & Self::LOCAL_SCOPE != 0
    }
    /// A remote node's own identity (the remote-node scope, not the reserved `remote-node`).
    pub fn is_node(self) -> bool {
        self.0 & 0xff00_0000 == Self::REMOTE_NODE_SCOPE
    }
    pub fn reserved_name(self) -> Option<&'static str> {
        Self::RESERVED
            .iter()
            .find(|(id, _)| *id == self)
            .map(|(_, n)| *n)
    }
}

impl fmt::Display for NumericIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
