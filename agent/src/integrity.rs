//! What the agent checks in the kernel before it answers "enforced": that the pins it writes
//! hold the maps its attached programs really use, and that the programs attached to an
//! endpoint's interface are exactly the endpoint's own (its tcx links, or its `cls_bpf`
//! filter in netlink mode), so that no program of another node name or of an older run
//! decides in front of them. Raw `bpf(2)` commands (object by pin, object info, tcx query,
//! link detach): aya has no query by link; classic filters through
//! [`runtime_loader::tcfilter`].

use runtime_loader::Hook;
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

const BPF_PROG_DETACH: i64 = 9;
const BPF_OBJ_GET: i64 = 7;
const BPF_PROG_GET_FD_BY_ID: i64 = 13;
const BPF_MAP_GET_FD_BY_ID: i64 = 14;
const BPF_OBJ_GET_INFO_BY_FD: i64 = 15;
const BPF_PROG_QUERY: i64 = 16;
const BPF_LINK_GET_FD_BY_ID: i64 = 30;
const BPF_LINK_DETACH: i64 = 34;
const BPF_TCX_INGRESS: u32 = 46;
const BPF_TCX_EGRESS: u32 = 47;

#[derive(Debug, thiserror::Error)]
pub enum IntegrityError {
    #[error("{what}: {source}")]
    Bpf {
        what: String,
        source: std::io::Error,
    },
    #[error("{}: the pin is missing", path.display())]
    MissingPin { path: PathBuf },
    #[error("{}: pinned map {pinned} is not the map {used} the endpoint's programs use", path.display())]
    ForeignPin {
        path: PathBuf,
        pinned: u32,
        used: u32,
    },
    #[error("{}: the endpoint's programs use map {name} (id {id}), which is pinned nowhere", path.display())]
    UnpinnedMap {
        path: PathBuf,
        name: String,
        id: u32,
    },
    #[error("interface {iface} ({hook}): the endpoint's link {link} is not attached")]
    NotAttached {
        iface: String,
        hook: &'static str,
        link: u32,
    },
    #[error("interface {iface} ({hook}): the endpoint's tc filter is not attached")]
    FilterMissing { iface: String, hook: &'static str },
    #[error(
        "interface {iface} ({hook}): runs program {found} where the agent attached program {want}"
    )]
    ForeignProgram {
        iface: String,
        hook: &'static str,
        found: u32,
        want: u32,
    },
    #[error("interface {iface} ({hook}): {what}: {source}")]
    Netlink {
        iface: String,
        hook: &'static str,
        what: &'static str,
        source: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, IntegrityError>;

/// A `union bpf_attr`, as 8-byte words (every command used here fits in 64 bytes).
#[derive(Default)]
struct Attr([u64; 8]);

impl Attr {
    fn set_u32(&mut self, off: usize, v: u32) -> &mut Self {
        let w = &mut self.0[off / 8];
        let shift = (off % 8) * 8;
        *w = (*w & !(0xffff_ffffu64 << shift)) | (u64::from(v) << shift);
        self
    }
    fn set_u64(&mut self, off: usize, v: u64) -> &mut Self {
        self.0[off / 8] = v;
        self
    }
    fn u32_at(&self, off: usize) -> u32 {
        (self.0[off / 8] >> ((off % 8) * 8)) as u32
    }
}

/// `bpf(cmd, attr)`; `what` names the operation in the error.
fn bpf(cmd: i64, attr: &mut Attr, what: impl FnOnce() -> String) -> Result<i64> {
    // SAFETY: `attr` is a valid, writable 64-byte bpf_attr for the duration of the call;
    // pointers inside it (set by the callers) point to live buffers.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.0.as_mut_ptr(),
            std::mem::size_of::<Attr>(),
        )
    };
    if rc < 0 {
        return Err(IntegrityError::Bpf {
            what: what(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(rc)
}

fn fd(rc: i64) -> OwnedFd {
    // SAFETY: a successful BPF_*_GET_FD* / BPF_OBJ_GET returns a new descriptor we own.
    unsafe { OwnedFd::from_raw_fd(rc as i32) }
}

/// The object pinned at `path`; `None` when nothing is pinned there.
fn obj_get(path: &Path) -> Result<Option<OwnedFd>> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| {
        IntegrityError::MissingPin {
            path: path.to_path_buf(),
        }
    })?;
    let mut a = Attr::default();
    a.set_u64(0, c.as_ptr() as u64);
    match bpf(BPF_OBJ_GET, &mut a, || {
        format!("{}: BPF_OBJ_GET", path.display())
    }) {
        Ok(rc) => Ok(Some(fd(rc))),
        Err(IntegrityError::Bpf { source, .. }) if source.raw_os_error() == Some(libc::ENOENT) => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// `BPF_OBJ_GET_INFO_BY_FD` into a zeroed buffer of `len` bytes.
fn info(fd: &OwnedFd, len: usize, what: &str) -> Result<Vec<u8>> {
    info_with(fd, vec![0u8; len], what)
}

fn info_with(fd: &OwnedFd, mut buf: Vec<u8>, what: &str) -> Result<Vec<u8>> {
    let mut a = Attr::default();
    a.set_u32(0, fd.as_raw_fd() as u32)
        .set_u32(4, buf.len() as u32)
        .set_u64(8, buf.as_mut_ptr() as u64);
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a, || format!("{what}: info"))?;
    Ok(buf)
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

fn get_fd_by_id(cmd: i64, id: u32, what: &str) -> Result<OwnedFd> {
    let mut a = Attr::default();
    a.set_u32(0, id);
    bpf(cmd, &mut a, || format!("{what} {id}")).map(fd)
}

/// `bpf_link_info`: (link id, program id).
fn link_ids(link: &OwnedFd, what: &str) -> Result<(u32, u32)> {
    let b = info(link, 64, what)?;
    Ok((u32_at(&b, 4), u32_at(&b, 8)))
}

/// The ids of the maps a program uses (`bpf_prog_info.map_ids`).
fn prog_map_ids(prog_id: u32) -> Result<Vec<u32>> {
    let prog = get_fd_by_id(BPF_PROG_GET_FD_BY_ID, prog_id, "program")?;
    let what = format!("program {prog_id}");
    let nr = u32_at(&info(&prog, 64, &what)?, 52) as usize;
    let mut ids = vec![0u32; nr];
    let mut buf = vec![0u8; 64];
    buf[52..56].copy_from_slice(&(nr as u32).to_ne_bytes());
    buf[56..64].copy_from_slice(&(ids.as_mut_ptr() as u64).to_ne_bytes());
    info_with(&prog, buf, &what)?;
    Ok(ids)
}

/// A map's (id, name) (`bpf_map_info`).
fn map_id_name(map: &OwnedFd, what: &str) -> Result<(u32, String)> {
    let b = info(map, 80, what)?;
    let name = &b[24..40];
    let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
    Ok((
        u32_at(&b, 4),
        String::from_utf8_lossy(&name[..end]).into_owned(),
    ))
}

/// The pins an endpoint's programs rely on, by map name (shared and its own).
pub type Pins = BTreeMap<String, PathBuf>;

/// The program attached through the link pinned at `path`.
pub fn link_program(path: &Path) -> Result<u32> {
    let link = obj_get(path)?.ok_or_else(|| IntegrityError::MissingPin {
        path: path.to_path_buf(),
    })?;
    Ok(link_ids(&link, &path.display().to_string())?.1)
}

/// The program our `cls_bpf` filter runs on `hook` of `iface` (netlink mode).
pub fn filter_program(iface: &str, ifindex: u32, hook: Hook) -> Result<u32> {
    let filters = runtime_loader::tcfilter::list(ifindex, hook).map_err(listing(iface, hook))?;
    own_filter_program(iface, hook, &filters)
}

/// The error of listing the classic filters on `hook` of `iface`.
fn listing(iface: &str, hook: Hook) -> impl FnOnce(std::io::Error) -> IntegrityError + '_ {
    move |source| IntegrityError::Netlink {
        iface: iface.into(),
        hook: hook.name(),
        what: "listing tc filters",
        source,
    }
}

/// The program the endpoint's own filter among `filters` runs.
fn own_filter_program(
    iface: &str,
    hook: Hook,
    filters: &[runtime_loader::tcfilter::Filter],
) -> Result<u32> {
    filters
        .iter()
        .find(|f| runtime_loader::attach::is_own_filter(f))
        .and_then(|f| f.prog_id)
        .ok_or_else(|| IntegrityError::FilterMissing {
            iface: iface.into(),
            hook: hook.name(),
        })
}

/// Checks that every map the endpoint's programs `progs` use under a name in `pins` is
/// pinned there (the node's CT tables included), and that each pin in `pins` that exists holds
/// a map they use.
pub fn check_pins(progs: &[u32], pins: &Pins) -> Result<()> {
    let mut used: BTreeMap<String, u32> = BTreeMap::new();
    let mut used_ids = Vec::new();
    for &prog in progs {
        for id in prog_map_ids(prog)? {
            let map = get_fd_by_id(BPF_MAP_GET_FD_BY_ID, id, "map")?;
            let (id, name) = map_id_name(&map, &format!("map {id}"))?;
            used.insert(name, id);
            used_ids.push(id);
        }
    }
    for (name, path) in pins {
        let pinned = match obj_get(path)? {
            Some(m) => Some(map_id_name(&m, &path.display().to_string())?.0),
            None => None,
        };
        match (used.get(name.as_str()), pinned) {
            (Some(&u), None) => {
                return Err(IntegrityError::UnpinnedMap {
                    path: path.clone(),
                    name: name.clone(),
                    id: u,
                })
            }
            (Some(&u), Some(p)) if u != p => {
                return Err(IntegrityError::ForeignPin {
                    path: path.clone(),
                    pinned: p,
                    used: u,
                })
            }
            (None, Some(p)) if !used_ids.contains(&p) => {
                // A pin of a map the programs do not declare (compiled out now): left for the
                // loader, which retires or reuses it at the next load; never written.
            }
            _ => {}
        }
    }
    Ok(())
}

/// Detaches from `ifindex`'s tcx hook (`ingress` or egress) every program attached other
/// than through the link pinned at `own` (every program when `own` is `None`: netlink mode,
/// where a tcx program would run in front of the endpoint's filter); returns what was
/// detached (as `link N` / `program N`). Fails if the own link is not attached there. With
/// `remove` false nothing is detached: what would be is returned (a check).
pub fn keep_only_own_link(
    iface: &str,
    ifindex: u32,
    ingress: bool,
    own: Option<&Path>,
    remove: bool,
) -> Result<Vec<String>> {
    let hook = if ingress { "ingress" } else { "egress" };
    let attach_type = if ingress {
        BPF_TCX_INGRESS
    } else {
        BPF_TCX_EGRESS
    };
    let own_id = match own {
        Some(own) => {
            let link = obj_get(own)?.ok_or_else(|| IntegrityError::MissingPin {
                path: own.to_path_buf(),
            })?;
            Some(link_ids(&link, &own.display().to_string())?.0)
        }
        None => None,
    };
    let what = || format!("interface {iface} ({hook}): BPF_PROG_QUERY");
    let mut progs = vec![0u32; 64];
    let mut links = vec![0u32; 64];
    let mut a = Attr::default();
    a.set_u32(0, ifindex)
        .set_u32(4, attach_type)
        .set_u64(16, progs.as_mut_ptr() as u64)
        .set_u32(24, progs.len() as u32)
        .set_u64(40, links.as_mut_ptr() as u64);
    bpf(BPF_PROG_QUERY, &mut a, what)?;
    let n = (a.u32_at(24) as usize).min(progs.len());
    let mut detached = Vec::new();
    let mut found = false;
    for (&prog, &l) in progs[..n].iter().zip(&links[..n]) {
        if Some(l) == own_id {
            found = true;
            continue;
        }
        if !remove {
            detached.push(format!("tcx link {l} (program {prog})"));
        } else if l != 0 {
            let fd = get_fd_by_id(BPF_LINK_GET_FD_BY_ID, l, "link")?;
            let mut d = Attr::default();
            d.set_u32(0, fd.as_raw_fd() as u32);
            bpf(BPF_LINK_DETACH, &mut d, || format!("detaching link {l}"))?;
            detached.push(format!("link {l} (program {prog})"));
        } else {
            let fd = get_fd_by_id(BPF_PROG_GET_FD_BY_ID, prog, "program")?;
            let mut d = Attr::default();
            d.set_u32(0, ifindex)
                .set_u32(4, fd.as_raw_fd() as u32)
                .set_u32(8, attach_type);
            bpf(BPF_PROG_DETACH, &mut d, || {
                format!("detaching program {prog}")
            })?;
            detached.push(format!("program {prog}"));
        }
    }
    match own_id {
        Some(link) if !found => Err(IntegrityError::NotAttached {
            iface: iface.to_string(),
            hook,
            link,
        }),
        _ => Ok(detached),
    }
}

/// Netlink mode: deletes from `hook` of `iface` every classic tc filter but the endpoint's
/// own, and detaches every tcx program (tcx runs before the classic filters); returns what
/// was removed. Fails, removing nothing, if the endpoint's own filter is not there. With `remove` false nothing
/// is removed: what would be is returned (a check).
pub fn keep_only_own_filter(
    iface: &str,
    ifindex: u32,
    hook: Hook,
    remove: bool,
) -> Result<Vec<String>> {
    let nl = |what: &'static str| {
        move |source| IntegrityError::Netlink {
            iface: iface.into(),
            hook: hook.name(),
            what,
            source,
        }
    };
    let filters =
        runtime_loader::tcfilter::list(ifindex, hook).map_err(nl("listing tc filters"))?;
    // Nothing is removed from a hook whose own filter is gone: that would leave it with no
    // program at all, where the sync that follows attaches the endpoint's again.
    if !filters.iter().any(runtime_loader::attach::is_own_filter) {
        return Err(IntegrityError::FilterMissing {
            iface: iface.into(),
            hook: hook.name(),
        });
    }
    let mut removed = keep_only_own_link(iface, ifindex, hook == Hook::FromEndpoint, None, remove)?;
    for f in filters {
        if runtime_loader::attach::is_own_filter(&f) {
            continue;
        }
        if remove {
            runtime_loader::tcfilter::delete(ifindex, hook, &f)
                .map_err(nl("deleting a tc filter"))?;
        }
        removed.push(describe(&f));
    }
    Ok(removed)
}

fn describe(f: &runtime_loader::tcfilter::Filter) -> String {
    format!(
        "tc filter {} priority {} handle {:#x}{}",
        f.kind,
        f.priority,
        f.handle,
        f.prog_id
            .map_or_else(String::new, |p| format!(" (program {p})"))
    )
}

/// Netlink mode, changing nothing, with one filter dump over `lister`'s socket: the program
/// the endpoint's own filter on `hook` runs, and what else runs there (other filters, tcx
/// programs).
pub fn tc_hook(
    iface: &str,
    ifindex: u32,
    hook: Hook,
    lister: &mut runtime_loader::tcfilter::Lister,
) -> Result<(u32, Vec<String>)> {
    let filters = lister.list(ifindex, hook).map_err(listing(iface, hook))?;
    let own = own_filter_program(iface, hook, &filters)?;
    let mut others = keep_only_own_link(iface, ifindex, hook == Hook::FromEndpoint, None, false)?;
    others.extend(
        filters
            .iter()
            .filter(|f| !runtime_loader::attach::is_own_filter(f))
            .map(describe),
    );
    Ok((own, others))
}

pub use runtime_loader::attach::ifindex;
