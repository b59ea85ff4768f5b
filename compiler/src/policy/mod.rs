//! Per-endpoint policy: the map state each endpoint enforces (`ir::EndpointPolicy`), computed for
//! the whole cluster and kept up to date incrementally (see Documentation/policy-semantics.md).

pub mod addr;
pub mod audit;
pub mod compute;
pub mod connectivity;
pub mod deny;
mod engine;
mod fqdn;
mod incremental;
pub mod lookup;
pub mod ports;
pub mod reach;

pub use engine::{key_of, GroupKey, MapDelta, PolicyEngine};
pub use lookup::{audited_by, lookup, Lookup};

use ir::{Direction, L7Rules};

/// The L7 proxy port a redirect goes to: one listener per direction and L7 protocol.
pub fn proxy_port(direction: Direction, l7: &L7Rules) -> u16 {
    match (direction, l7) {
        (Direction::Ingress, L7Rules::Http(_)) => 10080,
        (Direction::Egress, L7Rules::Http(_)) => 10081,
        (Direction::Ingress, L7Rules::Dns(_)) => 10053,
        (Direction::Egress, L7Rules::Dns(_)) => 10054,
    }
}
#[cfg(test)]
mod tests;
