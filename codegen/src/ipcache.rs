//! The ipcache's kernel entries: host addresses (/32, /128) go to the `cp_ipcache_host` hash
//! (one lookup for the common case), shorter prefixes to the `cp_ipcache` LPM trie, which the
//! datapath consults only when the hash misses.

use crate::image::{ImageKind, MapImage};
use crate::layout::addr_bytes;
use crate::layout::*;
use ir::{IpCache, IpNet};

fn is_host(p: &IpNet) -> bool {
    p.prefix_len() == if matches!(p, IpNet::V4(_)) { 32 } else { 128 }
}

fn value(id: ir::NumericIdentity) -> IpcacheValue {
    IpcacheValue {
        identity: id.0,
        pad: 0,
    }
}

/// The host entries (`cp_ipcache_host`).
pub fn host_entries(cache: &IpCache) -> Vec<(IpcacheHostKey, IpcacheValue)> {
    cache
        .entries
        .iter()
        .filter(|(p, _)| is_host(p))
        .map(|(p, id)| {
            let (family, addr) = addr_bytes(p.network());
            let key = IpcacheHostKey {
                family,
                pad: [0; 3],
                addr,
            };
            (key, value(*id))
        })
        .collect()
}

/// The prefix entries (`cp_ipcache`).
pub fn prefix_entries(cache: &IpCache) -> Vec<(IpcacheKey, IpcacheValue)> {
    cache
        .entries
        .iter()
        .filter(|(p, _)| !is_host(p))
        .map(|(p, id)| {
            let (family, addr) = addr_bytes(p.network());
            let key = IpcacheKey {
                prefixlen: 32 + p.prefix_len() as u32,
                family,
                pad: [0; 3],
                addr,
            };
            (key, value(*id))
        })
        .collect()
}

/// Both ipcache images: `[cp_ipcache_host, cp_ipcache]`.
pub fn ipcache_images(cache: &IpCache) -> [MapImage; 2] {
    let hosts = host_entries(cache);
    let prefixes = prefix_entries(cache);
    [
        MapImage::new(
            ImageKind::IpcacheHost,
            hosts.iter().map(|(k, v)| (k, v)),
            IpcacheHostKey::as_bytes,
            IpcacheValue::as_bytes,
        ),
        MapImage::new(
            ImageKind::Ipcache,
            prefixes.iter().map(|(k, v)| (k, v)),
            IpcacheKey::as_bytes,
            IpcacheValue::as_bytes,
        ),
    ]
}
