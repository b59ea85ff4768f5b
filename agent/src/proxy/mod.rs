//! The agent's L7 proxy (Documentation/l7.md, "In the agent"): the node's side of the
//! datapath redirect, installed at start; the `l7proxy` table rebuilt for every change that
//! concerns L7 and swapped once the change is enforced (`table.rs`); the transparent
//! listeners on the HTTP proxy ports with their supervisor, on the agent's tokio runtime
//! (`run.rs`); the proxy's per-request events as `monitor --type l7` lines (`events.rs`).
//!
//! What the writer swaps and the accept loop reads ([`L7Shared`]): the proxy's table and the
//! addresses of the last committed state ([`Addresses`]), from which each accepted connection
//! gets its endpoint and peer identity.

mod events;
mod run;
mod table;

pub(crate) use events::L7Events;
pub use events::{L7Listener, SnapshotNames};
pub use run::{dns_config, proxy_config, Supervisor, RESTART_DELAY};
pub use table::{Prepared, L7};

use super::datapath::Datapath;
use super::error::AgentError;
use super::world::World;
use arc_swap::ArcSwap;
use codegen::layout::{MARK_MAGIC_PROXY_EGRESS, MARK_MAGIC_PROXY_INGRESS};
use ir::{Direction, IpCache, NumericIdentity};
use l7proxy::{ConnInfo, Events, SharedTable};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

/// The HTTP proxy ports (`compiler::policy::proxy_port`) with their direction and the mark of
/// the listener and of the upstream connections (not redirected again).
pub const HTTP_PORTS: [(u16, Direction, u32); 2] = [
    (10080, Direction::Ingress, MARK_MAGIC_PROXY_INGRESS),
    (10081, Direction::Egress, MARK_MAGIC_PROXY_EGRESS),
];

/// The DNS proxy ports (`compiler::policy::proxy_port`), as [`HTTP_PORTS`].
pub const DNS_PORTS: [(u16, Direction, u32); 2] = [
    (10053, Direction::Ingress, MARK_MAGIC_PROXY_INGRESS),
    (10054, Direction::Egress, MARK_MAGIC_PROXY_EGRESS),
];

/// What the writer publishes for the proxy and its accept loop: cheap to clone.
#[derive(Clone, Default)]
pub struct L7Shared {
    pub table: SharedTable,
    pub addresses: Arc<ArcSwap<Addresses>>,
    pub events: Events,
    /// TCP connections the proxies are serving (HTTP, and DNS over TCP): while any is open the
    /// table keeps following changes, also once no redirect is left.
    pub proxied: Arc<AtomicUsize>,
}

/// The addresses of the last committed state: local endpoints by address and the ipcache
/// (host entries in a hash, prefixes looked up longest first, nothing matching: `world`, as in
/// the datapath).
#[derive(Clone, Debug, Default)]
pub struct Addresses {
    local: HashMap<IpAddr, u16>,
    hosts: HashMap<IpAddr, NumericIdentity>,
    prefixes: IpCache,
}

impl Addresses {
    pub fn of(world: &World) -> Addresses {
        let mut a = Addresses::default();
        for (id, ep) in &world.endpoints {
            let ips = ep.ipv4.map(IpAddr::V4).into_iter();
            for ip in ips.chain(ep.ipv6.map(IpAddr::V6)) {
                a.local.insert(ip, *id);
            }
        }
        for (prefix, id) in &world.engine.cluster.ipcache().entries {
            if prefix.prefix_len() == prefix.max_prefix_len() {
                a.hosts.insert(prefix.addr(), *id);
            } else {
                a.prefixes.entries.insert(*prefix, *id);
            }
        }
        a
    }

    /// The identity of `addr`.
    pub fn identity(&self, addr: IpAddr) -> NumericIdentity {
        match self.hosts.get(&addr) {
            Some(id) => *id,
            None => self.prefixes.lookup(addr),
        }
    }

    /// A redirected connection as the proxy needs it: on the ingress port the endpoint owns
    /// the original destination and the peer is the client; on the egress port the endpoint
    /// owns the client's address and the peer is the destination. An address no local
    /// endpoint owns gives endpoint 0, which the table denies (403): fail closed.
    pub fn classify(
        &self,
        direction: Direction,
        client: SocketAddr,
        original_dst: SocketAddr,
    ) -> ConnInfo {
        let (own, peer) = match direction {
            Direction::Ingress => (original_dst.ip(), client.ip()),
            Direction::Egress => (client.ip(), original_dst.ip()),
        };
        ConnInfo {
            client,
            original_dst,
            endpoint: self.local.get(&own).copied().unwrap_or(0),
            direction,
            peer_identity: self.identity(peer),
        }
    }
}

/// Installs the node's side of the redirect (routing rules, no TCP early demux, the `lo`
/// program; idempotent) so redirected flows reach the listeners, or are dropped with reason
/// 178 while none listens.
pub fn install_node_redirect(dp: &mut Datapath) -> Result<(), AgentError> {
    let object = dp.node_object()?;
    runtime_loader::proxy::install_node_redirect(&object, &dp.layout().proxy_link(), dp.mode())
        .map_err(|e| AgentError::Datapath(format!("installing the node's L7 redirect: {e}")))
}

#[cfg(test)]
mod tests;
