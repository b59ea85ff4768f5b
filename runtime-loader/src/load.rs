//! Loads a datapath object with aya: sets the endpoint's globals (optional: templated objects
//! already carry them) and freezes them once loaded, reuses pinned maps when asked (retiring pins of another layout),
//! loads both programs through the verifier (or the first, the caller verifying the second
//! while it attaches the first), fills maps from map images and writes the endpoint state.

use crate::hz::kernel_hz;
use crate::pins::{check_adoptable, retire_incompatible, Retired, RetiredPin};
use crate::rawmap::RawMap;
use aya::maps::Map;
use aya::programs::SchedClassifier;
use aya::{Ebpf, EbpfLoader};
use codegen::image::MapImage;
use codegen::layout::EpState;
use codegen::template::{Globals, GLOBALS_SECTION};
use ir::Direction;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Program names in `bpf-templates/bpf_lxc.c`.
pub const PROG_FROM_CONTAINER: &str = "cil_from_container";
pub const PROG_TO_CONTAINER: &str = "cil_to_container";
/// The endpoint state map (one entry).
pub const STATE_MAP: &str = codegen::maps::STATE.name;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("loading the object failed: {0}")]
    Object(#[from] aya::EbpfError),
    #[error("program {name} is missing from the object")]
    MissingProgram { name: &'static str },
    #[error("program {name} has an unexpected type: {source}")]
    ProgramType {
        name: &'static str,
        source: aya::programs::ProgramError,
    },
    #[error("the verifier rejected {name}: {source}\n{log}")]
    Verifier {
        name: &'static str,
        source: aya::programs::ProgramError,
        log: String,
    },
    #[error("checking pinned maps: {0}")]
    Pins(#[from] crate::pins::PinCheckError),
    #[error("map {0} is missing from the object (compiled out?)")]
    MissingMap(String),
    #[error("drawing the endpoint's CT nonce: {0}")]
    Nonce(std::io::Error),
    #[error("{0}")]
    Thread(String),
    #[error("map {map}: {source}")]
    Map {
        map: String,
        source: crate::error::LoaderError,
    },
}

/// How to load.
#[derive(Debug, Default)]
pub struct LoadOptions<'a> {
    /// Override the per-endpoint globals at load time (not needed for templated objects).
    pub globals: Option<Globals>,
    /// Reuse (or create and pin) these maps at these bpffs paths, e.g. the node's ipcache.
    pub map_pins: Vec<(&'a str, PathBuf)>,
    /// Map images to write after loading.
    pub images: Vec<&'a MapImage>,
    /// `max_entries` of these maps instead of the object's (an endpoint's policy map sized
    /// from its entries: `codegen::maps::endpoint_max_entries`); pins are compared with it.
    pub max_entries: Vec<(&'a str, u32)>,
    /// Initial endpoint state; `None` writes [`default_state`].
    pub state: Option<EpState>,
    /// Which programs go through the verifier, and how.
    pub verify: Verify,
}

/// How a load verifies the object's programs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Verify {
    /// Both at once, `cil_to_container` on a second thread.
    #[default]
    Both,
    /// Both, one after the other on the calling thread (a load in the background that
    /// should take one core, not two: [`crate::kit`]).
    OneThread,
    /// Only `cil_from_container`: the caller verifies `cil_to_container` with
    /// [`verify_program`] before using it (the agent does so while the kernel attaches the
    /// other program of a new endpoint, see [`Datapath::programs_mut`]).
    DeferToContainer,
}

/// Revision 1, TCP entries live 6 h after their last packet, others 60 s, all events on, the
/// kernel's HZ, and a nonce drawn when written (0: see [`Datapath::set_state`]).
pub fn default_state() -> EpState {
    EpState {
        policy_rev: 1,
        ct_timeout_tcp_s: 21_600,
        ct_timeout_other_s: 60,
        events_mask: codegen::layout::EVENTS_DROP | codegen::layout::EVENTS_VERDICT,
        jiffies_hz: kernel_hz(),
        ep_nonce: 0,
    }
}

/// A loaded endpoint datapath (programs loaded, not attached). Its maps are taken out of the
/// aya object as [`RawMap`]s (byte-level access; they stay alive as long as the `Datapath`).
pub struct Datapath {
    pub ebpf: Ebpf,
    pub maps: BTreeMap<String, RawMap>,
    /// Pins that held a map of another layout or size: removed before loading, so these maps
    /// are new and empty (see [`crate::pins`]).
    pub retired_pins: Vec<RetiredPin>,
}

/// Loads `object`: its programs through the verifier ([`LoadOptions::verify`]), then images
/// and state into the maps; the endpoint's globals ([`GLOBALS_SECTION`]) are frozen.
/// Reads the kernel's BTF anew; [`Loader`] keeps it across loads.
pub fn load(object: &[u8], opts: &LoadOptions<'_>) -> Result<Datapath, LoadError> {
    let mut loader = new_loader();
    if let Some(g) = &opts.globals {
        loader
            .override_global("ep_id", &g.ep_id, true)
            .override_global("ep_identity", &g.ep_identity, true)
            .override_global("ep_ipv4_be", &g.ep_ipv4_be, true)
            .override_global("ep_ipv6_be", &g.ep_ipv6_be, true);
    }
    load_with(&mut loader, object, opts, Purpose::Endpoint)
}

/// Whom a load is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// An endpoint: pins of another shape are retired ([`crate::pins`]), the globals frozen.
    Endpoint,
    /// No endpoint yet ([`crate::kit`]): the pins are adopted as they are, never created nor
    /// retired ([`crate::pins::check_adoptable`]), and the globals left open.
    Ahead,
}

/// aya's loader, which reads and parses the kernel's BTF (`/sys/kernel/btf/vmlinux`, about
/// 5 MB) when created: 10–25 ms here, more than either program's verification.
fn new_loader<'a>() -> EbpfLoader<'a> {
    let _btf = tracing::debug_span!("kernel_btf").entered();
    EbpfLoader::new()
}

/// Loads objects one after another with the kernel's BTF read once (see [`new_loader`]).
/// Each load sets its map pins and sizes again; aya's loader only adds or replaces options by
/// name, so one whose names differ from the previous load's starts from a new aya loader.
/// Objects that need their globals set ([`LoadOptions::globals`]) go through [`load`].
pub struct Loader<'a> {
    inner: EbpfLoader<'a>,
    /// The names of the map pins and sizes `inner` holds.
    names: (Vec<&'a str>, Vec<&'a str>),
}

impl Default for Loader<'_> {
    fn default() -> Self {
        Loader {
            inner: new_loader(),
            names: (Vec::new(), Vec::new()),
        }
    }
}

impl<'a> Loader<'a> {
    /// Like [`load`], reusing the kernel's BTF.
    pub fn load(&mut self, object: &[u8], opts: &LoadOptions<'a>) -> Result<Datapath, LoadError> {
        if opts.globals.is_some() {
            return load(object, opts);
        }
        self.load_for(object, opts, Purpose::Endpoint)
    }

    pub(crate) fn load_for(
        &mut self,
        object: &[u8],
        opts: &LoadOptions<'a>,
        purpose: Purpose,
    ) -> Result<Datapath, LoadError> {
        let names = (
            opts.map_pins.iter().map(|(n, _)| *n).collect(),
            opts.max_entries.iter().map(|(n, _)| *n).collect(),
        );
        let used = !self.names.0.is_empty() || !self.names.1.is_empty();
        if names != self.names && used {
            self.inner = new_loader();
        }
        self.names = names;
        load_with(&mut self.inner, object, opts, purpose)
    }
}

/// Sets `opts`' map sizes and pins on `loader` (checking the pins first), and loads.
fn load_with<'a>(
    loader: &mut EbpfLoader<'a>,
    object: &[u8],
    opts: &LoadOptions<'a>,
    purpose: Purpose,
) -> Result<Datapath, LoadError> {
    for (name, entries) in &opts.max_entries {
        loader.map_max_entries(name, *entries);
    }
    let retired = {
        let _pins = tracing::debug_span!("check_pins").entered();
        match purpose {
            Purpose::Endpoint => retire_incompatible(object, &opts.map_pins, &opts.max_entries)?,
            Purpose::Ahead => {
                check_adoptable(object, &opts.map_pins)?;
                Retired::default()
            }
        }
    };
    for (name, path) in &opts.map_pins {
        loader.map_pin_path(name, path.clone());
    }
    match load_retired(object, loader, opts, purpose) {
        Ok(mut dp) => {
            dp.retired_pins = retired.commit()?;
            Ok(dp)
        }
        Err(e) => {
            // Nothing of a failed load stays pinned in place of what it retired.
            retired.restore();
            Err(e)
        }
    }
}

fn load_retired(
    object: &[u8],
    loader: &mut EbpfLoader<'_>,
    opts: &LoadOptions<'_>,
    purpose: Purpose,
) -> Result<Datapath, LoadError> {
    let mut ebpf = {
        let _object = tracing::debug_span!("object").entered();
        loader.load(object)?
    };
    match opts.verify {
        Verify::Both => verify_both(&mut ebpf)?,
        Verify::OneThread => {
            let (from, to) = programs_of(&mut ebpf)?;
            verify_program(PROG_FROM_CONTAINER, from)?;
            verify_program(PROG_TO_CONTAINER, to)?;
        }
        Verify::DeferToContainer => {
            let prog = classifier(PROG_FROM_CONTAINER, ebpf.program_mut(PROG_FROM_CONTAINER))?;
            verify_program(PROG_FROM_CONTAINER, prog)?;
        }
    }
    let names: Vec<String> = ebpf.maps().map(|(n, _)| n.to_string()).collect();
    let mut maps = BTreeMap::new();
    for name in names {
        let Some(map) = ebpf.take_map(&name) else {
            continue;
        };
        let data = match map {
            Map::LpmTrie(d)
            | Map::LruHashMap(d)
            | Map::HashMap(d)
            | Map::Array(d)
            | Map::PerCpuArray(d)
            | Map::RingBuf(d) => d,
            _ => continue,
        };
        let raw =
            RawMap::from_map_data(data, Path::new(&name)).map_err(|source| LoadError::Map {
                map: name.clone(),
                source,
            })?;
        maps.insert(name, raw);
    }
    let dp = Datapath {
        ebpf,
        maps,
        retired_pins: Vec::new(),
    };
    for img in &opts.images {
        dp.fill(img)?;
    }
    dp.set_state(&opts.state.unwrap_or_else(default_state))?;
    if purpose == Purpose::Endpoint {
        dp.freeze_globals()?;
    }
    Ok(dp)
}

/// `(cil_from_container, cil_to_container)` of `ebpf`, both borrowed mutably.
fn programs_of(ebpf: &mut Ebpf) -> Result<(&mut SchedClassifier, &mut SchedClassifier), LoadError> {
    let (mut from, mut to) = (None, None);
    for (name, prog) in ebpf.programs_mut() {
        if name == PROG_FROM_CONTAINER {
            from = Some(prog);
        } else if name == PROG_TO_CONTAINER {
            to = Some(prog);
        }
    }
    Ok((
        classifier(PROG_FROM_CONTAINER, from)?,
        classifier(PROG_TO_CONTAINER, to)?,
    ))
}

/// Both programs through the verifier at once, `cil_to_container` on a second thread: each
/// takes 10–25 ms of one core (Documentation/performance.md, "CNI ADD").
fn verify_both(ebpf: &mut Ebpf) -> Result<(), LoadError> {
    let (from, to) = programs_of(ebpf)?;
    std::thread::scope(|s| {
        let parent = tracing::Span::current();
        let second = std::thread::Builder::new()
            .name("verify".into())
            .spawn_scoped(s, move || {
                parent.in_scope(|| verify_program(PROG_TO_CONTAINER, to))
            });
        match second {
            Ok(handle) => {
                let first = verify_program(PROG_FROM_CONTAINER, from);
                let second = handle.join().unwrap_or_else(|_| {
                    Err(LoadError::Thread(format!(
                        "verifying {PROG_TO_CONTAINER} panicked"
                    )))
                });
                first.and(second)
            }
            Err(e) => Err(LoadError::Thread(format!(
                "starting a thread to verify {PROG_TO_CONTAINER}: {e}"
            ))),
        }
    })
}

/// `name` as a tc program.
fn classifier<'p>(
    name: &'static str,
    prog: Option<&'p mut aya::programs::Program>,
) -> Result<&'p mut SchedClassifier, LoadError> {
    prog.ok_or(LoadError::MissingProgram { name })?
        .try_into()
        .map_err(|source| LoadError::ProgramType { name, source })
}

/// Loads `prog` (the object's program `name`) into the kernel, which verifies it (a load
/// abandoned for a signal is tried again: [`crate::verify::load_verified`]).
pub fn verify_program(name: &'static str, prog: &mut SchedClassifier) -> Result<(), LoadError> {
    let _verifier = tracing::debug_span!("verifier", prog = name).entered();
    crate::verify::load_verified(prog).map_err(|(source, log)| LoadError::Verifier {
        name,
        source,
        log,
    })
}

impl Datapath {
    /// Both programs at once, `(cil_from_container, cil_to_container)`: one can be verified
    /// ([`verify_program`]) on another thread while the other is attached.
    pub fn programs_mut(
        &mut self,
    ) -> Result<(&mut SchedClassifier, &mut SchedClassifier), LoadError> {
        programs_of(&mut self.ebpf)
    }

    /// The program enforcing `dir` of the endpoint: egress = cil_from_container (host-side
    /// ingress hook), ingress = cil_to_container (host-side egress hook).
    pub fn program(&self, dir: Direction) -> Result<&SchedClassifier, LoadError> {
        let name = match dir {
            Direction::Egress => PROG_FROM_CONTAINER,
            Direction::Ingress => PROG_TO_CONTAINER,
        };
        let prog = self
            .ebpf
            .program(name)
            .ok_or(LoadError::MissingProgram { name })?;
        prog.try_into()
            .map_err(|source| LoadError::ProgramType { name, source })
    }

    /// A map of the object by name (`cp_policy`, `cp_ipcache`, `cp_ct4`, …).
    pub fn map(&self, name: &str) -> Result<&RawMap, LoadError> {
        self.maps
            .get(name)
            .ok_or_else(|| LoadError::MissingMap(name.to_string()))
    }

    /// Writes every entry of `image` into its map (existing entries with other keys stay).
    pub fn fill(&self, image: &MapImage) -> Result<(), LoadError> {
        let name = image.kind.map_name();
        let map = self.map(name)?;
        for (k, v) in image.entries() {
            map.update(k, v).map_err(|source| LoadError::Map {
                map: name.to_string(),
                source,
            })?;
        }
        Ok(())
    }

    /// Freezes the map of the endpoint's globals ([`GLOBALS_SECTION`]), if the object has one.
    pub fn freeze_globals(&self) -> Result<(), LoadError> {
        match self.maps.get(GLOBALS_SECTION) {
            Some(map) => map.freeze().map_err(|source| LoadError::Map {
                map: GLOBALS_SECTION.to_string(),
                source,
            }),
            None => Ok(()),
        }
    }

    /// Writes the endpoint state (policy revision, CT timeouts, event mask); a `jiffies_hz` of
    /// 0 is replaced by the kernel's HZ, an `ep_nonce` of 0 by the one the map holds (a reload
    /// keeps the endpoint's connections) or, in a new map, by a new random one (a new endpoint
    /// never finds the CT entries of a deleted one with the same id and address).
    pub fn set_state(&self, state: &EpState) -> Result<(), LoadError> {
        let map_err = |source| LoadError::Map {
            map: STATE_MAP.to_string(),
            source,
        };
        let map = self.map(STATE_MAP)?;
        let mut state = *state;
        if state.jiffies_hz == 0 {
            state.jiffies_hz = kernel_hz();
        }
        if state.ep_nonce == 0 {
            let current = map
                .lookup(&0u32.to_ne_bytes())
                .map_err(map_err)?
                .and_then(|v| EpState::from_bytes(&v))
                .map_or(0, |s| s.ep_nonce);
            state.ep_nonce = match current {
                0 => new_nonce().map_err(LoadError::Nonce)?,
                n => n,
            };
        }
        map.update(&0u32.to_ne_bytes(), state.as_bytes())
            .map_err(map_err)
    }
}

/// A random non-zero endpoint nonce from the kernel's generator.
fn new_nonce() -> std::io::Result<u32> {
    loop {
        let mut b = [0u8; 4];
        // SAFETY: the buffer is valid for 4 bytes; flags 0 blocks only until the generator is
        // seeded.
        let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 4 && u32::from_ne_bytes(b) != 0 {
            return Ok(u32::from_ne_bytes(b));
        }
    }
}
