//! `toFQDNs` in the agent (Documentation/l7.md, "DNS"): the addresses of allowed DNS answers
//! that an FQDN selector of the policy matches, learned from the DNS proxy (`learn.rs` in
//! `l7proxy::dns`) into a node-wide cache with an expiry per (address, name), and given to the
//! world as learned addresses (`Cluster::set_fqdn`: an identity `cidr:… fqdn:<selector>…` in
//! the ipcache), so the rules with those selectors become map entries for them. The answer is
//! relayed once the datapath has them (or after the proxy's `learn_wait`). Entries expire at
//! the record's TTL, raised to `--tofqdns-min-ttl`; the writer wakes at the next expiry. At
//! most `--tofqdns-max-ips` addresses are learned: past that new ones are refused (counted,
//! logged; their traffic stays denied). The cache is kept in the state directory
//! (`persist.rs`): a restarted agent allows what was learned before until its expiry.

mod apply;
pub mod persist;

use compiler::fqdn::selector_matches;
use ir::DnsRule;
use l7proxy::dns::learn::Learned;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `--tofqdns-min-ttl` when not given (seconds).
pub const DEFAULT_MIN_TTL: u64 = 60;
/// `--tofqdns-max-ips` when not given.
pub const DEFAULT_MAX_ADDRESSES: usize = 4096;
/// When a datapath write of an expiry failed, the next try.
pub const RETRY: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct FqdnConfig {
    /// Learned entries live at least this long, whatever the record's TTL.
    pub min_ttl: Duration,
    /// Learned addresses on the node at most.
    pub max_addresses: usize,
}

impl Default for FqdnConfig {
    fn default() -> Self {
        FqdnConfig {
            min_ttl: Duration::from_secs(DEFAULT_MIN_TTL),
            max_addresses: DEFAULT_MAX_ADDRESSES,
        }
    }
}

/// Counts for `/metrics`.
#[derive(Debug, Default)]
pub struct FqdnCounters {
    /// Addresses learned (new ones).
    pub learned: AtomicU64,
    /// Addresses refused because the cache was full.
    pub refused: AtomicU64,
    /// Addresses forgotten at expiry.
    pub expired: AtomicU64,
    /// Learn requests that took longer than the proxy's wait (the answer went out first).
    pub late: AtomicU64,
}

impl FqdnCounters {
    /// Counts one learn.
    pub fn record(&self, learnt: &Learnt) {
        bump(&self.learned, learnt.new);
        bump(&self.refused, learnt.refused);
    }
}

pub(crate) fn bump(c: &AtomicU64, n: usize) {
    c.fetch_add(n as u64, Ordering::Relaxed);
}

/// What one learn did to the cache.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Learnt {
    /// Addresses whose names changed (new ones included).
    pub changed: BTreeSet<IpAddr>,
    /// New addresses.
    pub new: usize,
    /// New addresses refused: the cache was full.
    pub refused: usize,
    /// Entries already learned whose expiry moved on.
    pub extended: usize,
}

/// Learned names per address, with their expiry.
#[derive(Clone, Debug, Default)]
pub struct FqdnCache {
    by_addr: BTreeMap<IpAddr, BTreeMap<String, Instant>>,
    deadlines: BTreeSet<(Instant, IpAddr, String)>,
}

/// The FQDN selectors among `selectors` that match one of `names`.
pub fn selectors_of<'a>(
    names: impl IntoIterator<Item = &'a String>,
    selectors: &[DnsRule],
) -> BTreeSet<DnsRule> {
    let names: Vec<&String> = names.into_iter().collect();
    selectors
        .iter()
        .filter(|s| names.iter().any(|n| selector_matches(s, n)))
        .cloned()
        .collect()
}

impl FqdnCache {
    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }

    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.by_addr.keys().copied()
    }

    /// The names `addr` answers for (none when it is not learned).
    pub fn names(&self, addr: IpAddr) -> impl Iterator<Item = &String> {
        self.by_addr.get(&addr).into_iter().flat_map(|m| m.keys())
    }

    /// Every learned (address, name) and its expiry.
    pub fn entries(&self) -> impl Iterator<Item = (IpAddr, &String, Instant)> {
        self.by_addr
            .iter()
            .flat_map(|(a, names)| names.iter().map(|(n, t)| (*a, n, *t)))
    }

    /// When the next entry expires.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|d| d.0)
    }

    /// Learns the addresses of an answer that one of `selectors` matches (the others are not
    /// kept), each name until `now` + its TTL (at least `cfg.min_ttl`); an entry learned again
    /// lives until the later of its expiries.
    pub fn learn(
        &mut self,
        now: Instant,
        learned: &[Learned],
        selectors: &[DnsRule],
        cfg: &FqdnConfig,
    ) -> Learnt {
        let mut out = Learnt::default();
        for l in learned {
            if selectors_of(&l.names, selectors).is_empty() {
                continue;
            }
            let fresh = !self.by_addr.contains_key(&l.addr);
            if fresh && self.by_addr.len() >= cfg.max_addresses {
                out.refused += 1;
                continue;
            }
            let until = now + Duration::from_secs(l.ttl.into()).max(cfg.min_ttl);
            let names = self.by_addr.entry(l.addr).or_default();
            for n in &l.names {
                match names.get(n) {
                    Some(t) if *t >= until => continue,
                    Some(t) => {
                        self.deadlines.remove(&(*t, l.addr, n.clone()));
                        out.extended += 1;
                    }
                    None => {
                        out.changed.insert(l.addr);
                    }
                }
                names.insert(n.clone(), until);
                self.deadlines.insert((until, l.addr, n.clone()));
            }
            out.new += usize::from(fresh);
        }
        out
    }

    /// Drops the entries expired at `now`; returns the addresses whose names changed.
    pub fn expire(&mut self, now: Instant) -> BTreeSet<IpAddr> {
        let mut changed = BTreeSet::new();
        while let Some(first) = self.deadlines.first() {
            if first.0 > now {
                break;
            }
            let Some((_, addr, name)) = self.deadlines.pop_first() else {
                break;
            };
            if let Some(names) = self.by_addr.get_mut(&addr) {
                names.remove(&name);
                if names.is_empty() {
                    self.by_addr.remove(&addr);
                }
            }
            changed.insert(addr);
        }
        changed
    }
}

#[cfg(test)]
mod tests;
