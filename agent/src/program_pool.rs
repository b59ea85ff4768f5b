//! Programs verified ahead for endpoints yet to come (`--spare-programs`). A new endpoint's
//! two verifications are most of a CNI ADD (Documentation/performance.md, "CNI ADD"); a
//! [`Kit`] is an endpoint configuration's object already loaded and verified, so an endpoint
//! that finds one in the pool only writes its globals, state and maps and attaches
//! (runtime-loader/src/kit.rs).
//!
//! One background thread, at a lower CPU priority than the rest of the agent (nice 10),
//! keeps `depth` kits for each of the last [`MAX_CONFIGS`] configurations endpoints were loaded
//! with: the datapath asks for a top-up after each endpoint's load
//! ([`ProgramPool::top_up`]; after a restart, the reloads of the endpoints it finds), so a
//! configuration is pooled only once one of its endpoints was loaded in this process (its
//! template compiled, the node's maps pinned and of its shape).
//! It verifies one program at a time: a burst of new endpoints meets an empty pool and is
//! verified on the ADD path as without the pool, while the thread takes at most one core.
//! Kits are plain file descriptors of this process: an agent that stops or crashes leaves
//! none behind. A kit whose node maps were replaced since it was loaded is refused at claim
//! ([`Kit::current`]) and the pool emptied.

use codegen::template::PatchSites;
use codegen::Features;
use runtime_loader::kit::Kit;
use runtime_loader::load::Loader;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Configurations kept in the pool at once (the least recently asked for is dropped).
pub const MAX_CONFIGS: usize = 4;

/// What a kit is interchangeable for: the endpoint's configuration and policy map size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolKey {
    pub features: Features,
    pub policy_capacity: u32,
}

/// How to load kits of one configuration (on the node's maps the pool was made with).
pub struct Recipe {
    pub key: PoolKey,
    pub template: Arc<Vec<u8>>,
    pub sites: PatchSites,
}

/// Kits by configuration, the most recently asked for last.
type Kits = Vec<(PoolKey, Vec<Kit>)>;

/// What the pool did and holds, for `GET /v1/metrics`.
#[derive(Default)]
pub struct PoolStats {
    /// New endpoints whose programs were verified ahead (a kit claimed).
    pub ahead: AtomicU64,
    /// New endpoints whose programs were verified when they were created.
    pub at_create: AtomicU64,
    kits: Mutex<Kits>,
}

impl PoolStats {
    /// Counts a new endpoint's load: `ahead` when it claimed a kit.
    pub fn loaded(&self, ahead: bool) {
        let c = if ahead { &self.ahead } else { &self.at_create };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Kits ready now.
    pub fn ready(&self) -> usize {
        self.kits().iter().map(|(_, v)| v.len()).sum()
    }

    fn kits(&self) -> MutexGuard<'_, Kits> {
        self.kits.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl std::fmt::Debug for PoolStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolStats")
            .field("ahead", &self.ahead)
            .field("at_create", &self.at_create)
            .field("ready", &self.ready())
            .finish()
    }
}

pub struct ProgramPool {
    depth: usize,
    stats: Arc<PoolStats>,
    tx: Option<Sender<Recipe>>,
    thread: Option<JoinHandle<()>>,
}

impl ProgramPool {
    /// A pool keeping `depth` kits per configuration, loaded on the node's maps pinned at
    /// `shared_pins`; 0 keeps none and starts no thread.
    pub fn new(depth: usize, shared_pins: Vec<(&'static str, PathBuf)>) -> ProgramPool {
        let stats = Arc::new(PoolStats::default());
        if depth == 0 {
            return ProgramPool {
                depth,
                stats,
                tx: None,
                thread: None,
            };
        }
        let (tx, rx) = channel();
        let s = stats.clone();
        let thread = std::thread::Builder::new()
            .name("program-pool".into())
            .spawn(move || fill_loop(&rx, &s, &shared_pins, depth))
            .map_err(|e| tracing::warn!(error = %e, "no thread for the program pool; every new endpoint is verified when created"))
            .ok();
        ProgramPool {
            depth,
            stats,
            tx: thread.as_ref().map(|_| tx),
            thread,
        }
    }

    /// A kit of `key`'s configuration, if one is ready.
    pub fn take(&self, key: &PoolKey) -> Option<Kit> {
        self.stats
            .kits()
            .iter_mut()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.pop())
    }

    /// Asks the thread to load kits of `recipe`'s configuration until it has `depth`.
    pub fn top_up(&self, recipe: Recipe) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(recipe);
        }
    }

    /// Drops every kit (the node's maps they use were replaced).
    pub fn clear(&self) {
        self.stats.kits().clear();
    }

    pub fn stats(&self) -> &Arc<PoolStats> {
        &self.stats
    }

    pub fn depth(&self) -> usize {
        self.depth
    }
}

impl Drop for ProgramPool {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The pool thread: tops up each configuration asked for, newest request first.
fn fill_loop(
    rx: &Receiver<Recipe>,
    stats: &PoolStats,
    shared_pins: &[(&'static str, PathBuf)],
    depth: usize,
) {
    lower_priority();
    let mut loader = Loader::default();
    while let Ok(first) = rx.recv() {
        // Requests that queued up while the thread loaded: the last one per configuration.
        let mut recipes = vec![first];
        while let Ok(r) = rx.try_recv() {
            recipes.retain(|q| q.key != r.key);
            recipes.push(r);
        }
        for recipe in recipes.iter().rev() {
            fill(&mut loader, recipe, stats, shared_pins, depth);
        }
    }
}

/// Loads kits of `recipe` until its configuration has `depth` (stops at the first error).
fn fill(
    loader: &mut Loader<'static>,
    recipe: &Recipe,
    stats: &PoolStats,
    shared_pins: &[(&'static str, PathBuf)],
    depth: usize,
) {
    loop {
        {
            let mut kits = stats.kits();
            let at = match kits.iter().position(|(k, _)| *k == recipe.key) {
                Some(at) => at,
                None => {
                    if kits.len() >= MAX_CONFIGS {
                        kits.remove(0);
                    }
                    kits.push((recipe.key.clone(), Vec::new()));
                    kits.len() - 1
                }
            };
            // Most recently asked for last: dropped last.
            let entry = kits.remove(at);
            let full = entry.1.len() >= depth;
            kits.push(entry);
            if full {
                return;
            }
        }
        let _span = tracing::debug_span!("program_pool_load").entered();
        let kit = loader.prepare(
            &recipe.template,
            &recipe.sites,
            shared_pins.to_vec(),
            codegen::maps::endpoint_max_entries(recipe.key.policy_capacity),
        );
        match kit {
            Ok(kit) => {
                let mut kits = stats.kits();
                match kits.iter_mut().find(|(k, _)| *k == recipe.key) {
                    Some((_, v)) => v.push(kit),
                    // Dropped from the pool while it loaded.
                    None => return,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, features = ?recipe.key.features,
                    "loading programs ahead failed; new endpoints of this configuration are verified when created");
                return;
            }
        }
    }
}

/// Nice 10 for this thread: the verifier runs in its context, and an ADD on the other
/// threads should have the CPU first.
fn lower_priority() {
    // SAFETY: gettid has no preconditions; setpriority only reads its integer arguments.
    let rc = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10)
    };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "program pool keeps the agent's priority");
    }
}
