//! The ipcache: which security identity an address or prefix belongs to (longest prefix wins;
//! nothing matching means `world`).

use crate::identity::NumericIdentity;
use crate::net::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpCache {
    /// Prefix → identity. Endpoint addresses are host prefixes (/32, /128).
    pub entries: BTreeMap<IpNet, NumericIdentity>,
}

impl IpCache {
    pub fn insert(&mut self, prefix: IpNet, id: NumericIdentity) {
        self.entries.insert(prefix.trunc(), id);
    }
    /// Longest-prefix match; `world` (or `world-ipv4`/`world-ipv6` when `dual_stack_world`)
    /// when nothing matches.
    pub fn lookup(&self, addr: IpAddr) -> NumericIdentity {
        self.entries
            .iter()
            .filter(|(p, _)| p.contains(&addr))
            .max_by_key(|(p, _)| p.prefix_len())
            .map(|(_, id)| *id)
            .unwrap_or(NumericIdentity::WORLD)
    }
}
