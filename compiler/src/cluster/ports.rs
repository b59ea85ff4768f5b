//! Named-port resolution: a container port name to port numbers, per endpoint or per identity.

use super::Cluster;
use ir::{NumericIdentity, Protocol};

/// Ports of `ports` named `name` whose protocol is one of `protos`.
pub fn resolve<'a>(
    ports: &'a [ir::NamedPort],
    name: &'a str,
    protos: &'a [Protocol],
) -> impl Iterator<Item = (Protocol, u16)> + 'a {
    ports
        .iter()
        .filter(move |p| p.name == name && protos.contains(&p.protocol))
        .map(|p| (p.protocol, p.port))
}

impl Cluster {
    /// Every (protocol, port) that endpoints holding `id` (every endpoint for the wildcard) name
    /// `name`. Endpoints sharing an identity normally come from one template and agree.
    pub fn named_ports_of_identity(
        &self,
        id: NumericIdentity,
        name: &str,
        protos: &[Protocol],
    ) -> Vec<(Protocol, u16)> {
        let mut out: Vec<(Protocol, u16)> = if id == NumericIdentity::WILDCARD {
            self.endpoints()
                .flat_map(|e| resolve(&e.ports, name, protos))
                .collect()
        } else {
            self.members(id)
                .flat_map(|e| resolve(&e.ports, name, protos))
                .collect()
        };
        out.sort();
        out.dedup();
        out
    }
}
