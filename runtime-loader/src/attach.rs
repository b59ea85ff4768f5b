//! Attaching an endpoint's programs on the host side of its veth, replacing them atomically,
//! and detaching them.
//!
//! Two mechanisms, chosen by the caller (the agent's `--attach-mode`; [`AttachMode::detect`]
//! says whether the kernel has tcx):
//! - **tcx** (kernels ≥ 6.6): a BPF link per hook, pinned under the endpoint's directory.
//!   Replacing is `BPF_LINK_UPDATE` on that link, which swaps the program pointer in one step:
//!   every packet sees either the old or the new program, never none. The pinned link keeps the
//!   program attached while no agent runs, and nothing but the pin owner can detach it. Every
//!   new link waits in the kernel for an RCU grace period while holding RTNL (10–13 ms here).
//! - **netlink** (`tc`, every kernel): a clsact qdisc and a `cls_bpf` direct-action filter at a
//!   fixed priority and handle ([`NL_PRIORITY`], [`NL_HANDLE`]). Replacing re-sends the filter
//!   at the same priority/handle without `NLM_F_EXCL`, which `cls_bpf` handles by swapping the
//!   program under RCU, again without a gap. Filters outlive the agent by themselves; after a
//!   restart they are found again by their fixed priority/handle ([`own_filter`]). Attaching
//!   waits for no grace period (well under 1 ms). Anyone with CAP_NET_ADMIN can add a filter
//!   in front of ours: the agent lists and removes them ([`crate::tcfilter`]).
//!
//! Direction: the host-side *ingress* hook sees packets the endpoint sends (its egress
//! policy), the host-side *egress* hook packets delivered to it (its ingress policy).

use crate::error::{LoaderError, Result};
use crate::layout::validate_name;
use aya::programs::links::{FdLink, LinkError, PinnedLink};
use aya::programs::tc::{self, NlOptions, SchedClassifierLink, TcAttachOptions, TcHandle};
use aya::programs::{LinkOrder, SchedClassifier, TcAttachType};
use std::path::Path;

/// Priority of our `cls_bpf` filters in netlink mode.
pub const NL_PRIORITY: u16 = 1;
/// Handle of our `cls_bpf` filters in netlink mode.
pub const NL_HANDLE: TcHandle = TcHandle::new(0, 1);

/// Which hook of the host-side interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hook {
    /// tc ingress of the host-side veth: traffic from the endpoint (its egress policy).
    FromEndpoint,
    /// tc egress of the host-side veth: traffic to the endpoint (its ingress policy).
    ToEndpoint,
}

impl Hook {
    pub const BOTH: [Hook; 2] = [Hook::FromEndpoint, Hook::ToEndpoint];
    pub fn name(self) -> &'static str {
        match self {
            Hook::FromEndpoint => "from-endpoint",
            Hook::ToEndpoint => "to-endpoint",
        }
    }
    fn tc(self) -> TcAttachType {
        match self {
            Hook::FromEndpoint => TcAttachType::Ingress,
            Hook::ToEndpoint => TcAttachType::Egress,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    Tcx,
    Netlink,
}

impl AttachMode {
    /// The agent's `--attach-mode` name: `tc` (netlink) or `tcx`.
    pub fn name(self) -> &'static str {
        match self {
            AttachMode::Tcx => "tcx",
            AttachMode::Netlink => "tc",
        }
    }

    /// tcx where the kernel has it (6.6+), netlink otherwise.
    pub fn detect() -> AttachMode {
        match aya::util::KernelVersion::current() {
            Ok(v) if v >= aya::util::KernelVersion::new(6, 6, 0) => AttachMode::Tcx,
            _ => AttachMode::Netlink,
        }
    }
}

/// Whether an attach created a new attachment or replaced the program of an existing one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attached {
    Created,
    Replaced,
}

/// Attaches `prog` (loaded) to `iface`'s `hook`, or atomically replaces the program already
/// attached there by us. `link_pin` is where the tcx link is pinned (unused in netlink mode).
pub fn attach_or_replace(
    prog: &mut SchedClassifier,
    iface: &str,
    hook: Hook,
    mode: AttachMode,
    link_pin: &Path,
) -> Result<Attached> {
    validate_name("interface name", iface, 15)?;
    let err = |message: String| LoaderError::Attach {
        iface: iface.into(),
        hook: hook.name(),
        message,
    };
    match mode {
        AttachMode::Tcx => {
            if let Some(link) = open_pinned_link(link_pin)? {
                match prog.attach_to_link(link) {
                    Ok(id) => {
                        // The pin still references the (updated) link; our fd can go.
                        drop(prog.take_link(id).map_err(|e| err(e.to_string()))?);
                        return Ok(Attached::Replaced);
                    }
                    Err(e) => {
                        // The link is defunct (its interface was deleted): start afresh.
                        tracing::warn!(iface, hook = hook.name(), error = %e, "stale tcx link, re-creating");
                        std::fs::remove_file(link_pin).map_err(|e| LoaderError::io(link_pin, e))?;
                    }
                }
            }
            let id = prog
                .attach_with_options(
                    iface,
                    hook.tc(),
                    TcAttachOptions::TcxOrder(LinkOrder::default()),
                )
                .map_err(|e| err(e.to_string()))?;
            let link = prog.take_link(id).map_err(|e| err(e.to_string()))?;
            let fd: FdLink = link.try_into().map_err(|e: LinkError| err(e.to_string()))?;
            fd.pin(link_pin)
                .map_err(|e| err(format!("pinning the link at {}: {e}", link_pin.display())))?;
            Ok(Attached::Created)
        }
        AttachMode::Netlink => {
            add_clsact(iface)?;
            let opts = NlOptions {
                priority: NL_PRIORITY,
                handle: NL_HANDLE,
                ..NlOptions::default()
            };
            // Create exclusively; when our filter is already there, replace its program.
            let (res, how) =
                match prog.attach_with_options(iface, hook.tc(), TcAttachOptions::Netlink(opts)) {
                    Err(e) if is_eexist(&e) => {
                        let link = SchedClassifierLink::attached(
                            iface,
                            hook.tc(),
                            NL_PRIORITY,
                            NL_HANDLE,
                            None,
                        )
                        .map_err(|e| err(e.to_string()))?;
                        (prog.attach_to_link(link), Attached::Replaced)
                    }
                    other => (other, Attached::Created),
                };
            let id = res.map_err(|e| err(e.to_string()))?;
            // Dropping an aya netlink link detaches the filter; the filter must outlive us.
            std::mem::forget(prog.take_link(id).map_err(|e| err(e.to_string()))?);
            // A tcx link of an agent that ran in tcx mode decides in front of the filter: it
            // goes once the filter is in place, so that no packet meets neither program.
            if let Some(stale) = open_pinned_raw(link_pin)? {
                stale.unpin().map_err(|e| LoaderError::io(link_pin, e))?;
            }
            Ok(how)
        }
    }
}

fn is_eexist(e: &aya::programs::ProgramError) -> bool {
    matches!(e, aya::programs::ProgramError::TcError(tc::TcError::NetlinkError(n)) if n.raw_os_error() == Some(libc::EEXIST))
}

/// Detaches what we attached to `hook` of `iface` (a missing attachment is not an error).
pub fn detach(iface: &str, hook: Hook, mode: AttachMode, link_pin: &Path) -> Result<()> {
    validate_name("interface name", iface, 15)?;
    match mode {
        AttachMode::Tcx => {
            if let Some(pinned) = open_pinned_raw(link_pin)? {
                // Unpinning drops the last reference: the kernel detaches the link.
                pinned.unpin().map_err(|e| LoaderError::io(link_pin, e))?;
            }
            Ok(())
        }
        AttachMode::Netlink => {
            if !interface_exists(iface) {
                return Ok(()); // deleting the interface removed its filters
            }
            let link =
                SchedClassifierLink::attached(iface, hook.tc(), NL_PRIORITY, NL_HANDLE, None)
                    .map_err(|e| LoaderError::Interface {
                        iface: iface.into(),
                        message: e.to_string(),
                    })?;
            match aya::programs::Link::detach(link) {
                Ok(()) => Ok(()),
                Err(aya::programs::ProgramError::TcError(tc::TcError::NetlinkError(n)))
                    if n.raw_os_error() == Some(libc::ENOENT) =>
                {
                    Ok(())
                }
                Err(e) => Err(LoaderError::Interface {
                    iface: iface.into(),
                    message: format!("detaching: {e}"),
                }),
            }
        }
    }
}

/// Our `cls_bpf` filter on `hook` of interface `ifindex` (netlink mode), if attached.
pub fn own_filter(ifindex: u32, hook: Hook) -> std::io::Result<Option<crate::tcfilter::Filter>> {
    Ok(crate::tcfilter::list(ifindex, hook)?
        .into_iter()
        .find(is_own_filter))
}

/// Whether `f` is the filter [`attach_or_replace`] creates in netlink mode.
pub fn is_own_filter(f: &crate::tcfilter::Filter) -> bool {
    f.priority == NL_PRIORITY && f.handle == u32::from(NL_HANDLE) && f.kind == "bpf"
}

/// The interface's index, 0 when it does not exist.
pub fn ifindex(iface: &str) -> u32 {
    let Ok(c) = std::ffi::CString::new(iface) else {
        return 0;
    };
    // SAFETY: a NUL-terminated name that outlives the call.
    unsafe { libc::if_nametoindex(c.as_ptr()) }
}

pub fn interface_exists(iface: &str) -> bool {
    ifindex(iface) != 0
}

/// Whether a program [`attach_or_replace`] attached is on `hook` of `iface`: its pinned link
/// (tcx), or its filter (netlink mode, which pins no link).
pub fn is_attached(iface: &str, hook: Hook, mode: AttachMode, link_pin: &Path) -> bool {
    match mode {
        AttachMode::Tcx => link_pin.exists(),
        AttachMode::Netlink => own_filter(ifindex(iface), hook).is_ok_and(|f| f.is_some()),
    }
}

fn add_clsact(iface: &str) -> Result<()> {
    match tc::qdisc_add_clsact(iface) {
        Ok(()) => Ok(()),
        Err(tc::TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(LoaderError::Interface {
            iface: iface.into(),
            message: format!("adding clsact: {e}"),
        }),
    }
}

fn open_pinned_raw(path: &Path) -> Result<Option<PinnedLink>> {
    match PinnedLink::from_pin(path) {
        Ok(l) => Ok(Some(l)),
        Err(LinkError::SyscallError(e)) if e.io_error.kind() == std::io::ErrorKind::NotFound => {
            Ok(None)
        }
        Err(e) => Err(LoaderError::Map {
            path: path.into(),
            message: format!("opening pinned link: {e}"),
        }),
    }
}

fn open_pinned_link(path: &Path) -> Result<Option<SchedClassifierLink>> {
    let Some(pinned) = open_pinned_raw(path)? else {
        return Ok(None);
    };
    let fd = FdLink::from(pinned);
    let link = SchedClassifierLink::try_from(fd).map_err(|e| LoaderError::Map {
        path: path.into(),
        message: format!("not a tcx link: {e}"),
    })?;
    Ok(Some(link))
}
