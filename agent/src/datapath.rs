//! The node's datapath as the agent drives it: one templated object per distinct endpoint
//! configuration (clang runs once per configuration, never with input-derived arguments),
//! per-endpoint programs attached on the host-side veth, pinned maps, and map deltas.
//!
//! A sync first *plans* every endpoint (map state → kernel entries, capacity check, object
//! load through the verifier for endpoints whose configuration changed) and writes nothing
//! until every plan succeeded (except a new endpoint's `cil_to_container`, verified while its
//! first program is attached: a rejection fails its write, datapath_attach.rs); then it writes only the entries that differ from what the
//! pinned maps hold, replaces programs atomically where the configuration changed, and bumps
//! the endpoint's policy revision so connection tracking re-checks established flows.
//! Endpoints whose configuration and map state did not change are not touched at all; a sync
//! can be limited to the endpoints a change touched ([`Scope::Only`]), and entries are diffed
//! against what this process last wrote (the kernel's maps are read only for state adopted
//! from a previous agent, and for maps this process has not written yet).

use super::config::AgentConfig;
use super::error::AgentError;
use super::program_pool::ProgramPool;
use super::world::{LocalEndpoint, World};
use codegen::clang::{Clang, ObjectCache};
use codegen::entries::EndpointEntries;
use codegen::image::{ImageKind, MapImage};
use codegen::ipcache::ipcache_images;
use codegen::layout::{EpState, PolicyValue, VERDICT_DENY};
use codegen::maps::{self, Pin};
use codegen::template::{Globals, PatchSites};
use codegen::{EndpointConfig, Features, MapSizes};
use runtime_loader::load::{self, LoadOptions};
use runtime_loader::{AttachMode, Entries, Hook, MapDelta, MapOp, NodeLayout, RawMap};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use verify::Reload;

#[path = "datapath_attach.rs"]
mod attach;
#[path = "datapath_pool.rs"]
mod pool;
#[path = "datapath_verify.rs"]
mod verify;

/// Maps every endpoint program shares, pinned under the node (codegen's map table).
pub fn shared_maps() -> impl Iterator<Item = &'static str> {
    maps::pinned(Pin::Node).map(|m| m.name)
}

/// Maps of one endpoint, pinned under the endpoint (those compiled out are skipped).
pub fn endpoint_maps() -> impl Iterator<Item = &'static str> {
    maps::pinned(Pin::Endpoint).map(|m| m.name)
}

/// The node's maps and their pins.
fn shared_pins(layout: &NodeLayout) -> Result<Vec<(&'static str, PathBuf)>, AgentError> {
    shared_maps()
        .map(|m| Ok((m, layout.shared_map(m).map_err(internal)?)))
        .collect()
}

/// What identifies a loaded program: reloaded only when this changes.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ProgramKey {
    features: Features,
    globals: Globals,
    iface: String,
    /// `max_entries` of the endpoint's policy map (`MapSizes::policy_capacity`): a change that
    /// needs more reloads the endpoint with a larger map.
    policy_capacity: u32,
}

/// An endpoint's programs as this process attached them.
struct Loaded {
    key: ProgramKey,
    /// The kernel's ids of `cil_from_container` and `cil_to_container`, in the order of
    /// [`Hook::BOTH`]: what the interface must run ([`Datapath::check_endpoint`]).
    ids: [u32; 2],
}

pub struct Datapath {
    /// This agent's exclusive hold on the node's pin directory.
    _lock: super::lock::Lock,
    bpf_root: PathBuf,
    node: String,
    layout: NodeLayout,
    mode: AttachMode,
    sizes: MapSizes,
    clang: Option<Clang>,
    cache: ObjectCache,
    templates: HashMap<Features, (std::sync::Arc<Vec<u8>>, PatchSites)>,
    /// Programs verified ahead for new endpoints (`--spare-programs`).
    pool: ProgramPool,
    /// Loads every endpoint's object with the kernel's BTF read once.
    loader: load::Loader<'static>,
    /// Programs this agent process loaded and attached.
    programs: BTreeMap<u16, Loaded>,
    /// What this process last enforced per endpoint: an endpoint whose configuration and map
    /// state are unchanged is skipped by the next sync.
    written: BTreeMap<u16, Written>,
    /// The ipcache this process last wrote, and the entries of each of its maps.
    ipcache: Option<(ir::IpCache, MapsWritten)>,
    /// The events every endpoint's program emits (`ep_state.events_mask`): on only while a
    /// `monitor` client listens (events.rs).
    events_mask: u32,
}

/// Entries last written, by map name (the datapath's counters aside).
type MapsWritten = BTreeMap<&'static str, Entries>;

/// One endpoint as last written: its configuration, map state, and the entries of the maps
/// that were pinned when it was written.
struct Written {
    ep: LocalEndpoint,
    policy: std::sync::Arc<ir::EndpointPolicy>,
    maps: MapsWritten,
}

/// Which endpoints a sync considers.
pub enum Scope<'a> {
    /// Every endpoint of the world, and every pinned endpoint not in it (start, rebuild).
    All,
    /// These endpoints (present in the world or removed from it).
    Only(&'a std::collections::BTreeSet<u16>),
}

type Results = BTreeMap<u16, Result<(), String>>;
/// How a map's delta is ordered, and which of its ops restrict (applied before any map widens).
type Ranking = (fn(&MapOp) -> u8, fn(&MapOp) -> bool);

struct Plan {
    id: u16,
    load: Option<load::Datapath>,
    /// A new endpoint's `cil_to_container` is not verified yet: [`Datapath::attach`] verifies
    /// it while the kernel attaches `cil_from_container`.
    verify_to: bool,
    key: ProgramKey,
    /// Wanted entries of the endpoint's own maps: (map name, entries).
    maps: Vec<(&'static str, Entries)>,
}

/// Whether the kernel loads BPF atomics with fetch (the deny slots need them); a failed probe
/// is logged and taken as yes (the programs' own load then reports what is wrong).
fn kernel_has_fetch_atomics() -> bool {
    match runtime_loader::kernel::has_fetch_atomics() {
        Ok(true) => true,
        Ok(false) => {
            tracing::warn!(
                "the kernel refuses BPF atomics with fetch (Linux < 5.12): \
                 flow-cache deny slots are compiled out"
            );
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "probing BPF atomics with fetch failed");
            true
        }
    }
}

/// clang, found on first use.
fn found_clang(slot: &mut Option<Clang>) -> Result<&Clang, AgentError> {
    if slot.is_none() {
        *slot = Some(Clang::find().map_err(internal)?);
    }
    slot.as_ref().ok_or_else(|| internal("clang was not found"))
}

fn internal(e: impl std::fmt::Display) -> AgentError {
    AgentError::datapath(e)
}

impl Datapath {
    pub fn open(cfg: &AgentConfig) -> Result<Datapath, AgentError> {
        if cfg.attach_mode == AttachMode::Tcx && AttachMode::detect() != AttachMode::Tcx {
            return Err(AgentError::invalid(
                "--attach-mode tcx needs Linux 6.6 or later; use --attach-mode tc",
            ));
        }
        runtime_loader::bpffs::ensure_bpffs(&cfg.bpf_root).map_err(internal)?;
        let layout = NodeLayout::create(&cfg.bpf_root, &cfg.node).map_err(internal)?;
        // One agent per node: a second one on the same pins stops before touching them.
        let lock =
            super::lock::acquire_dir(layout.root(), "node pin directory").map_err(internal)?;
        let pool = ProgramPool::new(cfg.spare_programs, shared_pins(&layout)?);
        Ok(Datapath {
            _lock: lock,
            bpf_root: cfg.bpf_root.clone(),
            node: cfg.node.clone(),
            layout,
            mode: cfg.attach_mode,
            sizes: MapSizes {
                ct_tcp: cfg.ct_tcp_max,
                ct_any: cfg.ct_any_max,
                flow_cache: cfg.flow_cache_slots,
                deny_cache: cfg.deny_cache && kernel_has_fetch_atomics(),
                ..MapSizes::default()
            },
            clang: None,
            cache: ObjectCache::new(cfg.state_dir.join("objects")),
            templates: HashMap::new(),
            pool,
            loader: load::Loader::default(),
            programs: BTreeMap::new(),
            written: BTreeMap::new(),
            ipcache: None,
            events_mask: 0,
        })
    }

    /// Whether the endpoints' programs remember denied connections (flow-cache deny slots).
    pub fn deny_cache(&self) -> bool {
        self.sizes.deny_slots()
    }

    pub fn mode_name(&self) -> &'static str {
        self.mode.name()
    }

    pub fn layout(&self) -> &NodeLayout {
        &self.layout
    }

    /// How programs are attached (tcx links or netlink filters).
    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// The node's L7-redirect object (`bpf_node.c`), compiled once and cached by content.
    pub fn node_object(&mut self) -> Result<Vec<u8>, AgentError> {
        let clang = found_clang(&mut self.clang)?;
        let (path, _) = self.cache.node_object(clang).map_err(internal)?;
        std::fs::read(&path).map_err(|source| AgentError::Io {
            context: path.display().to_string(),
            source,
        })
    }

    /// What the pool of programs verified ahead did (`--spare-programs`).
    pub fn program_pool_stats(&self) -> std::sync::Arc<super::program_pool::PoolStats> {
        self.pool.stats().clone()
    }

    /// The endpoints this process enforces.
    pub fn endpoint_ids(&self) -> std::collections::BTreeSet<u16> {
        self.written
            .keys()
            .chain(self.programs.keys())
            .copied()
            .collect()
    }

    /// The events mask written with every endpoint state from now on.
    pub fn set_events_mask(&mut self, mask: u32) {
        self.events_mask = mask;
    }

    /// Brings the kernel in line with `world` for the endpoints in `scope` (see the module
    /// doc). Plan errors (a map that would overflow, a verifier rejection, clang failing)
    /// refuse the whole change with nothing written; write errors are reported per endpoint.
    pub fn sync(
        &mut self,
        world: &World,
        scope: Scope,
        revision: u64,
    ) -> Result<Results, AgentError> {
        let mut ids: Vec<u16> = match scope {
            Scope::All => world.endpoints.keys().copied().collect(),
            Scope::Only(ids) => ids.iter().copied().collect(),
        };
        // What was loaded must still be what the pins hold before anything is written.
        let verified = {
            let _verify = tracing::debug_span!("verify").entered();
            self.verify(&ids)?
        };
        let more: Vec<u16> = match verified {
            Reload::Nothing => Vec::new(),
            Reload::Some(more) => more.into_iter().collect(),
            Reload::All => world.endpoints.keys().copied().collect(),
        };
        for id in more {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        let mut plans = Vec::new();
        let mut results = Results::new();
        let mut gone = Vec::new();
        for id in ids {
            let Some(ep) = world.endpoints.get(&id) else {
                gone.push(id);
                continue;
            };
            let policy = world.policies.get(&id).cloned().unwrap_or_default();
            if self
                .written
                .get(&id)
                .is_some_and(|w| w.ep == *ep && w.policy == policy)
            {
                results.insert(id, Ok(()));
                continue;
            }
            let plan = {
                let _plan = tracing::debug_span!("plan", endpoint = id).entered();
                self.plan(id, ep, &policy)?
            };
            plans.push((plan, ep.clone(), policy));
        }
        {
            let _ipcache = tracing::debug_span!("ipcache").entered();
            self.write_ipcache(world.engine.cluster.ipcache())?;
        }
        for (plan, ep, policy) in plans {
            let id = plan.id;
            let res = {
                let _apply = tracing::debug_span!("apply", endpoint = id).entered();
                self.apply(plan, revision)
            };
            match res {
                Ok(maps) => {
                    self.written.insert(id, Written { ep, policy, maps });
                    results.insert(id, Ok(()));
                }
                Err(e) => {
                    self.written.remove(&id);
                    results.insert(id, Err(e.to_string()));
                }
            }
        }
        if matches!(scope, Scope::All) {
            gone.extend(
                self.layout
                    .pinned_endpoints()
                    .map_err(internal)?
                    .into_iter()
                    .filter(|id| !world.endpoints.contains_key(id)),
            );
        }
        for id in gone {
            results.insert(id, self.remove(id).map_err(|e| e.to_string()));
        }
        // Only the endpoint's own links decide on its interface.
        let _own = tracing::debug_span!("own_interface").entered();
        for (id, res) in results.iter_mut() {
            if res.is_ok() {
                if let Err(e) = self.own_interface(*id) {
                    *res = Err(e.to_string());
                }
            }
        }
        Ok(results)
    }

    fn plan(
        &mut self,
        id: u16,
        ep: &LocalEndpoint,
        policy: &ir::EndpointPolicy,
    ) -> Result<Plan, AgentError> {
        let cfg = EndpointConfig {
            id: u32::from(id),
            name: ep.name.clone(),
            identity: ep.identity,
            ipv4: ep.ipv4,
            ipv6: ep.ipv6,
        };
        let entries_span = tracing::debug_span!("entries").entered();
        let (features, _) = Features::derive(&cfg, policy, None);
        let entries = EndpointEntries::build(policy);
        let maps: Vec<(&'static str, Entries)> = [
            entries.policy_image(),
            entries.range_image(),
            entries.addr_image(),
        ]
        .iter()
        .map(|img| (img.kind.map_name(), image_entries(img)))
        .collect();
        // The capacity check `compile` makes too (codegen's map table gives the sizes).
        if let Some(o) = codegen::generate::overflow(&self.sizes, entries.counts()) {
            let what = match o.kind {
                ImageKind::Policy => "policy",
                ImageKind::PolicyRanges => "port-range policy",
                ImageKind::Addr => "address",
                _ => o.map.name,
            };
            return Err(AgentError::MapFull(format!(
                "endpoint {id} ({}): its {what} map would need {} entries, more than its size {}; the change was refused and the previous policy stays enforced",
                ep.name, o.needed, o.max
            )));
        }
        let key = ProgramKey {
            features,
            globals: Globals::of(&cfg),
            iface: ep.iface.clone(),
            policy_capacity: self.policy_capacity(id, &maps)?,
        };
        drop(entries_span);
        let (load, verify_to) = if self.programs.get(&id).map(|l| &l.key) == Some(&key) {
            (None, false)
        } else {
            let defer = self.nothing_attached(id)?;
            let (dp, deferred) = self.load(id, &ep.name, &key, defer)?;
            (Some(dp), deferred)
        };
        Ok(Plan {
            id,
            load,
            verify_to,
            key,
            maps,
        })
    }

    /// Whether nothing of endpoint `id` is attached: no program this process loaded for it,
    /// no pinned tcx link of a previous agent (netlink filters leave no pin: never in that
    /// mode). Its programs then replace nothing, and a rejected second program leaves nothing
    /// attached once the first is detached again.
    fn nothing_attached(&self, id: u16) -> Result<bool, AgentError> {
        if self.mode != AttachMode::Tcx || self.programs.contains_key(&id) {
            return Ok(false);
        }
        for hook in Hook::BOTH {
            if self.layout.link(id, hook).map_err(internal)?.exists() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The size of the endpoint's policy map for writing `maps`: the loaded one's while the
    /// write fits in it, else one sized from what the write needs (a larger map, filled whole
    /// before the reloaded programs are attached). A write needs room for every entry the map
    /// holds or will hold (`MapDelta::apply` inserts before it deletes some entries), what this
    /// process last wrote or, for a map it has not written, what the pin holds. The map never
    /// shrinks while the endpoint's programs stay loaded.
    fn policy_capacity(
        &self,
        id: u16,
        maps: &[(&'static str, Entries)],
    ) -> Result<u32, AgentError> {
        let Some((_, want)) = maps.iter().find(|(name, _)| *name == maps::POLICY.name) else {
            return Ok(self.sizes.policy_capacity(0));
        };
        let last = self
            .written
            .get(&id)
            .and_then(|w| w.maps.get(maps::POLICY.name));
        let read;
        let have = match last {
            Some(l) => Some(l),
            None => {
                let pin = self
                    .layout
                    .endpoint_map_path(id, maps::POLICY.name)
                    .map_err(internal)?;
                read = pin
                    .exists()
                    .then(|| RawMap::open_pinned(&pin).and_then(|m| m.entries()))
                    .transpose()
                    .map_err(internal)?;
                read.as_ref()
            }
        };
        let gone = have.map_or(0, |h| h.keys().filter(|k| !want.contains_key(*k)).count());
        let needed = want.len() + gone;
        Ok(match self.programs.get(&id) {
            Some(l) if needed <= l.key.policy_capacity as usize => l.key.policy_capacity,
            _ => self.sizes.policy_capacity(needed),
        })
    }

    /// Instantiates the endpoint's object from its configuration's template and loads it
    /// (maps pinned: existing pins are reused, so the running program's maps stay shared); a
    /// new endpoint takes a kit from the pool when one is ready. With `defer_to`,
    /// `cil_to_container` may be left for [`Datapath::attach`] to verify: the second value
    /// says whether it was.
    fn load(
        &mut self,
        id: u16,
        name: &str,
        key: &ProgramKey,
        defer_to: bool,
    ) -> Result<(load::Datapath, bool), AgentError> {
        if !self.templates.contains_key(&key.features) {
            let clang = found_clang(&mut self.clang)?;
            let ep_header = codegen::headers::render_template(&key.features, &self.sizes);
            // The node header's counts are comments only; fixed so templates stay shared.
            let node_header = codegen::headers::render_node(&self.sizes, 0, 0);
            let (path, cached) = self
                .cache
                .get_or_compile(clang, &ep_header, &node_header, "endpoint template")
                .map_err(internal)?;
            tracing::debug!(?key.features, cached, "template object ready");
            let bytes = std::fs::read(&path).map_err(|source| AgentError::Io {
                context: path.display().to_string(),
                source,
            })?;
            let sites = PatchSites::find(&bytes).map_err(internal)?;
            self.templates
                .insert(key.features, (std::sync::Arc::new(bytes), sites));
        }
        let _load = tracing::debug_span!("load").entered();
        // A new endpoint's pins are created by the load: a refused load takes them back.
        let fresh = !self.programs.contains_key(&id) && !self.layout.endpoint_dir(id).exists();
        let shared_pins = shared_pins(&self.layout)?;
        let mut pins: Vec<(&'static str, PathBuf)> = Vec::new();
        for m in endpoint_maps() {
            pins.push((m, self.layout.endpoint_map(id, m).map_err(internal)?));
        }
        if fresh {
            if let Some(dp) = self.claim_kit(id, key, &pins) {
                self.pool.stats().loaded(true);
                self.top_up(key);
                return Ok((dp, false));
            }
        }
        let (template, sites) = &self.templates[&key.features];
        let object = sites.instantiate(template, &key.globals);
        let opts = LoadOptions {
            globals: None,
            map_pins: shared_pins.iter().cloned().chain(pins).collect(),
            images: vec![],
            max_entries: maps::endpoint_max_entries(key.policy_capacity),
            state: Some(self.state_of(id)),
            verify: if defer_to {
                load::Verify::DeferToContainer
            } else {
                load::Verify::Both
            },
        };
        let dp = match self.loader.load(&object, &opts) {
            Ok(dp) => dp,
            Err(e) => {
                if fresh {
                    if let Err(r) = self.layout.remove_endpoint(id) {
                        tracing::error!(endpoint = id, error = %r,
                            "removing the pins of a refused new endpoint failed");
                    }
                }
                return Err(super::verifier::load_error(id, name, e));
            }
        };
        self.forget_retired(id, &dp.retired_pins);
        if fresh {
            self.pool.stats().loaded(false);
        }
        // Any load: after a restart the endpoints' reloads fill the pool for the next ADD.
        self.top_up(key);
        Ok((dp, defer_to))
    }

    /// Pins of another layout were replaced by new, empty maps: what this process remembers
    /// writing into them no longer holds, so the next write diffs against the new map.
    fn forget_retired(&mut self, id: u16, retired: &[runtime_loader::pins::RetiredPin]) {
        for r in retired {
            tracing::warn!(endpoint = id, map = %r.map, path = %r.path.display(), reason = %r.reason,
                "pinned map had another layout; replaced by a new map");
            if shared_maps().any(|m| m == r.map) {
                self.ipcache = None;
            } else if let Some(w) = self.written.get_mut(&id) {
                w.maps.remove(r.map.as_str());
            }
        }
    }

    /// The endpoint's current state (kept across reloads), or the default for a new endpoint;
    /// with this process's events mask.
    fn state_of(&self, id: u16) -> EpState {
        let current = self
            .layout
            .endpoint_map_path(id, maps::STATE.name)
            .ok()
            .filter(|p| p.exists())
            .and_then(|p| RawMap::open_pinned(&p).ok())
            .and_then(|m| m.lookup(&0u32.to_ne_bytes()).ok().flatten())
            .and_then(|v| EpState::from_bytes(&v));
        EpState {
            events_mask: self.events_mask,
            ..current.unwrap_or_else(load::default_state)
        }
    }

    /// Writes one endpoint's plan; returns the entries now in its pinned maps.
    fn apply(&mut self, mut plan: Plan, revision: u64) -> Result<MapsWritten, AgentError> {
        let id = plan.id;
        let mut written = MapsWritten::new();
        // Entries first: the running program shares these maps, and the new one finds them ready.
        // Every map's restricting changes go in before any map's widening ones.
        let maps_span = tracing::debug_span!("maps").entered();
        let mut deltas = Vec::new();
        for (name, want) in &plan.maps {
            let pin = self.layout.endpoint_map_path(id, name).map_err(internal)?;
            // Maps compiled out of the endpoint's program (ranges, address classes) are not pinned.
            if pin.exists() {
                // Policy maps: denies in and allows out first; address classes with the rest.
                let (rank, restricts): Ranking = if *name == maps::ADDR.name {
                    (byte_eq_rank, |_| false)
                } else {
                    (policy_rank, |op| policy_rank(op) < 2)
                };
                let last = self.written.get(&id).and_then(|w| w.maps.get(name));
                let (pin, map, len, delta) = self.delta(&pin, last, want, rank)?;
                deltas.push((pin, map, len, delta, restricts));
                written.insert(*name, want.clone());
            }
        }
        for restricting in [true, false] {
            for (pin, map, len, delta, restricts) in &mut deltas {
                let part = MapDelta {
                    ops: delta
                        .ops
                        .iter()
                        .filter(|op| restricts(op) == restricting)
                        .cloned()
                        .collect(),
                };
                if !part.is_empty() {
                    let stats = part.apply(map, *len).map_err(internal)?;
                    *len = (*len + stats.inserted).saturating_sub(stats.deleted);
                    tracing::debug!(map = %pin.display(), ?stats, "map delta written");
                }
            }
        }
        drop(maps_span);
        if let Some(mut dp) = plan.load.take() {
            let _attach = tracing::debug_span!("attach").entered();
            if let Some(old) = self
                .programs
                .get(&id)
                .map(|l| &l.key)
                .filter(|k| k.iface != plan.key.iface)
                .cloned()
            {
                for hook in Hook::BOTH {
                    let pin = self.layout.link(id, hook).map_err(internal)?;
                    runtime_loader::attach::detach(&old.iface, hook, self.mode, &pin)
                        .map_err(internal)?;
                }
            }
            let ids = self.attach(&plan, &mut dp)?;
            self.programs.insert(
                id,
                Loaded {
                    key: plan.key.clone(),
                    ids,
                },
            );
        }
        // A new revision makes the datapath re-check established connections (revocation).
        let _state = tracing::debug_span!("state").entered();
        let state_pin = self
            .layout
            .endpoint_map_path(id, maps::STATE.name)
            .map_err(internal)?;
        let state = RawMap::open_pinned(&state_pin).map_err(internal)?;
        let mut st = self.state_of(id);
        st.policy_rev = revision as u32;
        state
            .update(&0u32.to_ne_bytes(), st.as_bytes())
            .map_err(internal)?;
        Ok(written)
    }

    /// Writes the ipcache's changes since the last write (nothing when it did not change).
    /// The first endpoint's load creates the ipcache maps; before that there is nothing to write.
    fn write_ipcache(&mut self, ipcache: &ir::IpCache) -> Result<(), AgentError> {
        if self.ipcache.as_ref().is_some_and(|(c, _)| c == ipcache) {
            return Ok(());
        }
        let mut written = MapsWritten::new();
        let mut changed = false;
        let mut result = Ok(());
        for img in ipcache_images(ipcache) {
            let name = img.kind.map_name();
            let pin = self.layout.shared_map(name).map_err(internal)?;
            if !pin.exists() {
                if !self.programs.is_empty() {
                    // Programs use the map: a change would be acknowledged and never enforced.
                    self.ipcache = None;
                    return Err(AgentError::Datapath(format!(
                        "{}: the pinned ipcache map is missing; the change was refused",
                        pin.display()
                    )));
                }
                // Not created yet: nothing is cached, so the next sync looks again.
                self.ipcache = None;
                return Ok(());
            }
            let want = image_entries(&img);
            let last = self.ipcache.as_ref().and_then(|(_, w)| w.get(name));
            // Without the ipcache no endpoint can be enforced correctly: refuse the change.
            let (_, map, len, delta) = self.delta(&pin, last, &want, byte_eq_rank)?;
            if !delta.is_empty() {
                changed = true;
                match delta.apply(&map, len) {
                    Ok(stats) => tracing::debug!(map = %pin.display(), ?stats, "map delta written"),
                    Err(e) => {
                        result = Err(e.to_string());
                        break;
                    }
                }
            }
            written.insert(name, want);
        }
        // The generation moves once, after every map's entries, even after a partial write.
        if changed {
            let node = self.layout.shared_map(maps::NODE.name).map_err(internal)?;
            result = super::ipcache_gen::bump(&node).and(result);
        }
        if let Err(e) = result {
            self.ipcache = None;
            return Err(AgentError::Datapath(format!("updating the ipcache: {e}")));
        }
        self.ipcache = Some((ipcache.clone(), written));
        Ok(())
    }

    /// The delta from `last` (what this process wrote there last; what the pinned map holds
    /// when `None`) to `want`, with the opened map and its length.
    fn delta(
        &self,
        pin: &std::path::Path,
        last: Option<&Entries>,
        want: &Entries,
        rank: fn(&MapOp) -> u8,
    ) -> Result<(PathBuf, RawMap, usize, MapDelta), AgentError> {
        let map = RawMap::open_pinned(pin).map_err(internal)?;
        let read;
        let have = match last {
            Some(l) => l,
            None => {
                read = map.entries().map_err(internal)?;
                &read
            }
        };
        let delta = MapDelta::between_with(have, want, PolicyValue::same_decision, rank);
        Ok((pin.to_path_buf(), map, have.len(), delta))
    }

    /// Detaches an endpoint's programs and unpins its maps.
    pub fn remove(&mut self, id: u16) -> Result<(), AgentError> {
        self.written.remove(&id);
        let iface = self.programs.remove(&id).map(|l| l.key.iface);
        for hook in Hook::BOTH {
            let pin = self.layout.link(id, hook).map_err(internal)?;
            match &iface {
                Some(i) => {
                    runtime_loader::attach::detach(i, hook, self.mode, &pin).map_err(internal)?
                }
                // Left by a previous agent: a tcx link goes with its pin.
                None if pin.exists() => std::fs::remove_file(&pin).map_err(internal)?,
                None => {}
            }
        }
        self.layout.remove_endpoint(id).map_err(internal)
    }
}

fn image_entries(img: &MapImage) -> Entries {
    img.entries()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

/// Restrict before widening: new or changed deny entries, then removed allow entries, then
/// new or changed allow entries, then removed deny entries.
fn policy_rank(op: &MapOp) -> u8 {
    let is_deny = |v: Option<&[u8]>| v.is_some_and(|v| v.first() == Some(&VERDICT_DENY));
    match op {
        MapOp::Insert { .. } | MapOp::Replace { .. } if is_deny(op.new_value()) => 0,
        MapOp::Delete { .. } if !is_deny(op.old_value()) => 1,
        MapOp::Delete { .. } => 3,
        _ => 2,
    }
}

fn byte_eq_rank(op: &MapOp) -> u8 {
    u8::from(matches!(op, MapOp::Delete { .. }))
}
