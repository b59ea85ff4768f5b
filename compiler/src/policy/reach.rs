//! Connectivity at cluster scale: what every party may open to every other, without evaluating
//! each pair from scratch.
//!
//! A connection is allowed where the source's egress and the destination's ingress both allow
//! it, so each side's allowed ranges are computed on their own and intersected. A side's ranges
//! depend on its map state and on the peer only through the peer's class there: the entries
//! keyed by its identity in that direction (identities with equal entries are alike; an
//! identity without entries meets only the wildcard entries), and its address if the state has
//! address entries in that direction. Side ranges are computed once per (state, peer class) and interned; the
//! intersection once per pair of interned lists. What remains per pair is a binary search in
//! each side's few specially keyed identities and one lookup in the pair cache.

use super::connectivity::{allowed_ranges, End, PortRange};
use super::{key_of, GroupKey, PolicyEngine};
use crate::cluster::ClusterEndpoint;
use ir::{Direction, EndpointPolicy, MapVerdict, NumericIdentity};
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

/// What one party of the output stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grouping {
    /// Each endpoint.
    Endpoint,
    /// The endpoints sharing an identity and container ports (hence one map state); split by
    /// address when some map state has address entries (then a lookup depends on it).
    MapState,
    /// The endpoints of one workload (a Pod's controller, a workload template; a Pod without
    /// one is its own), split like [`Grouping::MapState`] when they differ in map state.
    Workload,
}

/// `NAMESPACE [k=v,...]`: an identity's namespace and its own labels (those Cilium derives from
/// the namespace, cluster and service account left out).
fn short_name(labels: &ir::LabelSet) -> String {
    const NS: &str = "io.kubernetes.pod.namespace";
    let ns = labels
        .iter()
        .find(|l| l.key == NS)
        .map(|l| format!("{} ", l.value))
        .unwrap_or_default();
    let own: Vec<String> = labels
        .iter()
        .filter(|l| l.key != NS && !l.key.starts_with("io.cilium.k8s."))
        .map(|l| format!("{}={}", l.key, l.value))
        .collect();
    format!("{ns}[{}]", own.join(","))
}

/// One row's party: an endpoint, a group of endpoints, or world.
pub struct Party {
    pub name: String,
    /// Endpoints it stands for (0 for world).
    pub count: usize,
    pub identity: NumericIdentity,
}

/// The parties of a grouping, each with the map state and address it is looked up with.
pub fn parties(e: &PolicyEngine, g: Grouping) -> Vec<(Party, End<'_>)> {
    let c = &e.cluster;
    let mut out = Vec::new();
    let end = |name: &str, identity, addr| End {
        policy: e.policy_of(name),
        identity,
        addr,
    };
    match g {
        Grouping::Endpoint => {
            for ep in c.endpoints() {
                let p = Party {
                    name: ep.name.clone(),
                    count: 1,
                    identity: ep.identity,
                };
                out.push((p, end(&ep.name, ep.identity, ep.ips.first().copied())));
            }
        }
        Grouping::MapState => grouped(e, &mut out, |_| None),
        Grouping::Workload => grouped(e, &mut out, |ep| {
            let ns = ep.namespace.as_deref().unwrap_or_default();
            Some(match &ep.workload {
                Some(w) => format!("{ns}/{w}"),
                None => format!("{ns}/{}/{}", ep.kind, short(&ep.name)),
            })
        }),
    }
    let world = Party {
        name: "world".into(),
        count: 0,
        identity: NumericIdentity::WORLD,
    };
    out.push((
        world,
        End {
            policy: None,
            identity: NumericIdentity::WORLD,
            addr: None,
        },
    ));
    out
}

/// `namespace/name` without its namespace.
fn short(name: &str) -> &str {
    name.split_once('/').map_or(name, |x| x.1)
}

/// Parties of endpoints sharing a map state (and, with `workload`, a workload): one per
/// (workload, group key, address when address entries make lookups depend on it).
fn grouped<'e>(
    e: &'e PolicyEngine,
    out: &mut Vec<(Party, End<'e>)>,
    workload: impl Fn(&ClusterEndpoint) -> Option<String>,
) {
    let c = &e.cluster;
    // Address entries make a lookup depend on the peer's address: then each address is a
    // party of its own.
    let by_addr = e.groups().values().any(|p| !p.addr_entries.is_empty());
    type Key = (Option<String>, GroupKey, Option<IpAddr>);
    let mut groups: BTreeMap<Key, Vec<&str>> = BTreeMap::new();
    for ep in c.endpoints() {
        let addr = ep.ips.first().copied().filter(|_| by_addr);
        groups
            .entry((workload(ep), key_of(ep), addr))
            .or_default()
            .push(&ep.name);
    }
    // How many parties share a name: those are told apart by ports and address.
    let mut per_name: BTreeMap<(Option<String>, NumericIdentity), usize> = BTreeMap::new();
    for (w, key, _) in groups.keys() {
        *per_name.entry((w.clone(), key.0)).or_default() += 1;
    }
    for ((w, key, addr), members) in groups {
        let name = match &w {
            Some(w) => w.clone(),
            None => {
                let labels = c
                    .identity(key.0)
                    .map(|i| short_name(&i.labels))
                    .unwrap_or_default();
                format!("identity {} {labels}", key.0 .0)
            }
        };
        let mut which = String::new();
        if per_name[&(w, key.0)] > 1 {
            let ports: Vec<String> = key
                .1
                .iter()
                .map(|p| format!("{}={}/{}", p.name, p.port, p.protocol.name()))
                .collect();
            which = format!(" ports({})", ports.join(","));
            if let Some(a) = addr {
                which += &format!(" {a}");
            }
        }
        let p = Party {
            name: format!("{name}{which}"),
            count: members.len(),
            identity: key.0,
        };
        let end = End {
            policy: e.policy_of(members[0]),
            identity: key.0,
            addr,
        };
        out.push((p, end));
    }
}

/// Every pair with something allowed: `(src, dst, index into ranges)` (u32: a 5,000-pod
/// cluster has millions of pairs).
#[derive(Clone, Debug, Default)]
pub struct Reach {
    /// Distinct allowed range lists.
    pub ranges: Vec<Vec<PortRange>>,
    pub pairs: Vec<(u32, u32, u32)>,
}

/// What of a state's entries a direction keys specifically.
struct StateInfo {
    /// Identities with their own entries, per direction (ingress, egress), sorted, each with the
    /// number of its entry signature: identities keyed by the same entries (ports and
    /// verdicts) behave alike, so they share one class (a namespace selector makes hundreds of
    /// identities special with the same entries).
    special: [Vec<(NumericIdentity, u32)>; 2],
    /// Whether address entries exist, per direction.
    by_addr: [bool; 2],
    /// The ranges of a peer of no special identity (when addresses do not matter), once known.
    common: [Option<u32>; 2],
}

fn dir_index(d: Direction) -> usize {
    match d {
        Direction::Ingress => 0,
        Direction::Egress => 1,
    }
}

/// The entries one identity is keyed by in one direction: (protocol, port, prefix, verdict).
type Signature = Vec<(u8, u16, u8, MapVerdict)>;

impl StateInfo {
    fn of(p: &EndpointPolicy) -> Self {
        let mut s = StateInfo {
            special: [Vec::new(), Vec::new()],
            by_addr: [false; 2],
            common: [None; 2],
        };
        let mut by_id: [BTreeMap<NumericIdentity, Signature>; 2] = Default::default();
        for (k, e) in &p.entries {
            if k.identity != NumericIdentity::WILDCARD {
                by_id[dir_index(k.direction)]
                    .entry(k.identity)
                    .or_default()
                    .push((k.protocol, k.port, k.port_prefix_len, e.verdict));
            }
        }
        for (d, ids) in by_id.into_iter().enumerate() {
            let mut sigs: HashMap<Signature, u32> = HashMap::new();
            for (id, sig) in ids {
                let n = sigs.len() as u32;
                let class = *sigs.entry(sig).or_insert(n);
                s.special[d].push((id, class));
            }
        }
        for k in p.addr_entries.keys() {
            s.by_addr[dir_index(k.direction)] = true;
        }
        s
    }
}

/// A peer as one state sees it.
type Class = (Option<u32>, Option<IpAddr>);

/// Intersects two lists of disjoint ranges sorted by protocol and first port.
pub fn intersect(a: &[PortRange], b: &[PortRange]) -> Vec<PortRange> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (x, y) = (&a[i], &b[j]);
        if x.protocol != y.protocol {
            if x.protocol < y.protocol {
                i += 1;
            } else {
                j += 1;
            }
            continue;
        }
        let (first, last) = (x.first.max(y.first), x.last.min(y.last));
        if first <= last {
            out.push(PortRange {
                protocol: x.protocol,
                first,
                last,
                audit: x.audit || y.audit,
            });
        }
        if x.last < y.last {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// A multiply-xorshift hasher for the pair cache's `u64` keys (SipHash was most of the
/// per-pair cost).
#[derive(Default)]
struct PairHasher(u64);

impl Hasher for PairHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(*b as u64);
        }
    }
    fn write_u64(&mut self, n: u64) {
        let x = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 29);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

struct Memo<'a> {
    states: Vec<&'a EndpointPolicy>,
    infos: Vec<StateInfo>,
    /// Ranges per (state, direction, class) for special classes.
    side: HashMap<(usize, usize, Class), u32>,
    lists: Vec<Vec<PortRange>>,
    interned: HashMap<Vec<PortRange>, u32>,
    pair: HashMap<u64, u32, BuildHasherDefault<PairHasher>>,
    full: u32,
}

impl<'a> Memo<'a> {
    fn intern(&mut self, v: Vec<PortRange>) -> u32 {
        if let Some(i) = self.interned.get(&v) {
            return *i;
        }
        let i = self.lists.len() as u32;
        self.lists.push(v.clone());
        self.interned.insert(v, i);
        i
    }

    /// The ranges state `st` allows in `dir` with a peer of `peer`'s class (any member of a
    /// class stands for it).
    fn compute(&mut self, st: usize, dir: Direction, peer: &End, addr: Option<IpAddr>) -> u32 {
        // Any identity of the class stands for it: not special means no entry keys it.
        let me = End {
            policy: Some(self.states[st]),
            identity: NumericIdentity::WILDCARD,
            addr: None,
        };
        let other = End {
            policy: None,
            identity: peer.identity,
            addr,
        };
        let v = match dir {
            Direction::Egress => allowed_ranges(me, other),
            Direction::Ingress => allowed_ranges(other, me),
        };
        self.intern(v)
    }

    /// The ranges state `st` allows in `dir` with `peer` (interned).
    fn side(&mut self, st: Option<usize>, dir: Direction, peer: &End) -> u32 {
        let Some(st) = st else {
            return self.full;
        };
        let d = dir_index(dir);
        let info = &self.infos[st];
        let special = info.special[d]
            .binary_search_by_key(&peer.identity, |(id, _)| *id)
            .ok()
            .map(|at| info.special[d][at].1);
        if special.is_none() && !info.by_addr[d] {
            if let Some(i) = info.common[d] {
                return i;
            }
            let i = self.compute(st, dir, peer, None);
            self.infos[st].common[d] = Some(i);
            return i;
        }
        let class: Class = (special, peer.addr.filter(|_| info.by_addr[d]));
        if let Some(i) = self.side.get(&(st, d, class)) {
            return *i;
        }
        let i = self.compute(st, dir, peer, class.1);
        self.side.insert((st, d, class), i);
        i
    }
}

/// Who may open what to whom among `parties`. `with_self(i)` says whether party `i` is paired
/// with itself (a party standing for several endpoints); world-like parties (no map state) are
/// never paired with each other.
pub fn reach(parties: &[End], with_self: impl Fn(usize) -> bool) -> Reach {
    let mut index: HashMap<*const EndpointPolicy, usize> = HashMap::new();
    let mut memo = Memo {
        states: Vec::new(),
        infos: Vec::new(),
        side: HashMap::new(),
        lists: Vec::new(),
        interned: HashMap::new(),
        pair: HashMap::default(),
        full: 0,
    };
    let full = allowed_ranges(
        End {
            policy: None,
            identity: NumericIdentity::WORLD,
            addr: None,
        },
        End {
            policy: None,
            identity: NumericIdentity::WORLD,
            addr: None,
        },
    );
    memo.full = memo.intern(full);
    let state_of: Vec<Option<usize>> = parties
        .iter()
        .map(|p| {
            p.policy.map(|s| {
                *index.entry(s as *const _).or_insert_with(|| {
                    memo.states.push(s);
                    memo.infos.push(StateInfo::of(s));
                    memo.states.len() - 1
                })
            })
        })
        .collect();
    let mut pairs = Vec::new();
    for (i, s) in parties.iter().enumerate() {
        for (j, d) in parties.iter().enumerate() {
            let unmanaged = state_of[i].is_none() && state_of[j].is_none();
            if (i == j && !with_self(i)) || unmanaged {
                continue;
            }
            let e = memo.side(state_of[i], Direction::Egress, d);
            let g = memo.side(state_of[j], Direction::Ingress, s);
            let key = (e as u64) << 32 | g as u64;
            let r = match memo.pair.get(&key) {
                Some(r) => *r,
                None => {
                    let v = intersect(&memo.lists[e as usize], &memo.lists[g as usize]);
                    let r = memo.intern(v);
                    memo.pair.insert(key, r);
                    r
                }
            };
            if !memo.lists[r as usize].is_empty() {
                pairs.push((i as u32, j as u32, r));
            }
        }
    }
    Reach {
        ranges: memo.lists,
        pairs,
    }
}
