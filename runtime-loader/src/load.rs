//! Loads a datapath object with aya: sets the endpoint's read-only globals (optional: templated
//! objects already carry them), reuses pinned maps when asked, loads both programs through the
//! verifier, fills maps from map images and writes the endpoint state.

use aya::maps::Map;
use aya::programs::SchedClassifier;
use aya::{Ebpf, EbpfLoader};
use codegen::image::MapImage;
use codegen::layout::EpState;
use codegen::template::Globals;
use ir::Direction;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::PathBuf;

/// Program names in `bpf-templates/bpf_lxc.c`.
pub const PROG_FROM_CONTAINER: &str = "cil_from_container";
pub const PROG_TO_CONTAINER: &str = "cil_to_container";
/// The endpoint state map (one entry).
pub const STATE_MAP: &str = "cp_state";

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
    #[error("map {0} is missing from the object (compiled out?)")]
    MissingMap(String),
    #[error("map {map}: {op} failed: {source}")]
    Map {
        map: String,
        op: &'static str,
        source: std::io::Error,
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
    /// Initial endpoint state; `None` writes [`default_state`].
    pub state: Option<EpState>,
}

/// Revision 1, TCP entries live 6 h after their last packet, others 60 s, all events on.
pub fn default_state() -> EpState {
    EpState {
        policy_rev: 1,
        ct_timeout_tcp_s: 21_600,
        ct_timeout_other_s: 60,
        events_mask: codegen::layout::EVENTS_DROP | codegen::layout::EVENTS_VERDICT,
    }
}

/// A loaded endpoint datapath (programs loaded, not attached).
pub struct Datapath {
    pub ebpf: Ebpf,
}

/// Loads `object`: both programs through the verifier, then images and state into the maps.
pub fn load(object: &[u8], opts: &LoadOptions<'_>) -> Result<Datapath, LoadError> {
    let mut loader = EbpfLoader::new();
    if let Some(g) = &opts.globals {
        loader
            .override_global("ep_id", &g.ep_id, true)
            .override_global("ep_identity", &g.ep_identity, true)
            .override_global("ep_ipv4_be", &g.ep_ipv4_be, true)
            .override_global("ep_ipv6_be", &g.ep_ipv6_be, true);
    }
    for (name, path) in &opts.map_pins {
        loader.map_pin_path(name, path.as_path());
    }
    let mut ebpf = loader.load(object)?;
    for name in [PROG_FROM_CONTAINER, PROG_TO_CONTAINER] {
        let prog = ebpf
            .program_mut(name)
            .ok_or(LoadError::MissingProgram { name })?;
        let prog: &mut SchedClassifier = prog
            .try_into()
            .map_err(|source| LoadError::ProgramType { name, source })?;
        prog.load().map_err(|source| {
            let log = match &source {
                aya::programs::ProgramError::LoadError { verifier_log, .. } => {
                    verifier_log.to_string()
                }
                _ => String::new(),
            };
            LoadError::Verifier { name, source, log }
        })?;
    }
    let dp = Datapath { ebpf };
    for img in &opts.images {
        dp.fill(img)?;
    }
    dp.set_state(&opts.state.unwrap_or_else(default_state))?;
    Ok(dp)
}

impl Datapath {
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

    /// The file descriptor of a map of the object.
    pub fn map_fd(&self, name: &str) -> Result<BorrowedFd<'_>, LoadError> {
        let map = self
            .ebpf
            .map(name)
            .ok_or_else(|| LoadError::MissingMap(name.to_string()))?;
        let data = match map {
            Map::LpmTrie(d)
            | Map::LruHashMap(d)
            | Map::HashMap(d)
            | Map::Array(d)
            | Map::PerCpuArray(d)
            | Map::RingBuf(d) => d,
            _ => return Err(LoadError::MissingMap(name.to_string())),
        };
        Ok(data.fd().as_fd())
    }

    /// Writes every entry of `image` into its map (existing entries with other keys stay).
    pub fn fill(&self, image: &MapImage) -> Result<(), LoadError> {
        let name = image.kind.map_name();
        let fd = self.map_fd(name)?;
        for (k, v) in &image.entries {
            map_update(fd, k, v).map_err(|source| LoadError::Map {
                map: name.to_string(),
                op: "update",
                source,
            })?;
        }
        Ok(())
    }

    /// Writes the endpoint state (policy revision, CT timeouts, event mask).
    pub fn set_state(&self, state: &EpState) -> Result<(), LoadError> {
        let fd = self.map_fd(STATE_MAP)?;
        map_update(fd, &0u32.to_ne_bytes(), state.as_bytes()).map_err(|source| LoadError::Map {
            map: STATE_MAP.to_string(),
            op: "update",
            source,
        })
    }

    /// Raw lookup of `key` in map `name` (value of `value_len` bytes).
    pub fn lookup(
        &self,
        name: &str,
        key: &[u8],
        value_len: usize,
    ) -> Result<Option<Vec<u8>>, LoadError> {
        let fd = self.map_fd(name)?;
        map_lookup(fd, key, value_len).map_err(|source| LoadError::Map {
            map: name.to_string(),
            op: "lookup",
            source,
        })
    }
}

#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

fn bpf(cmd: libc::c_long, attr: &mut MapElemAttr) -> std::io::Result<()> {
    // SAFETY: attr is a valid bpf_attr prefix for the map element commands; key/value pointers
    // point at buffers of the map's key/value sizes (checked by the kernel against the map).
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut MapElemAttr,
            size_of::<MapElemAttr>(),
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// BPF_MAP_UPDATE_ELEM with BPF_ANY.
pub fn map_update(fd: BorrowedFd<'_>, key: &[u8], value: &[u8]) -> std::io::Result<()> {
    let mut attr = MapElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value: value.as_ptr() as u64,
        ..Default::default()
    };
    bpf(2, &mut attr)
}

/// BPF_MAP_DELETE_ELEM; `Ok(false)` when the key was absent.
pub fn map_delete(fd: BorrowedFd<'_>, key: &[u8]) -> std::io::Result<bool> {
    let mut attr = MapElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        ..Default::default()
    };
    match bpf(3, &mut attr) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// BPF_MAP_LOOKUP_ELEM; `Ok(None)` when absent. Per-CPU maps need `value_len` × CPUs.
pub fn map_lookup(
    fd: BorrowedFd<'_>,
    key: &[u8],
    value_len: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut value = vec![0u8; value_len];
    let mut attr = MapElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value: value.as_mut_ptr() as u64,
        ..Default::default()
    };
    match bpf(1, &mut attr) {
        Ok(()) => Ok(Some(value)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}
