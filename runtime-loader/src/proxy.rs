//! The node's side of the L7 redirect (Documentation/datapath.md, "L7 redirect"): what the
//! endpoint programs need around them so that a redirected flow reaches the agent's
//! transparent proxy.
//!
//! - **Policy routing**: packets marked `MARK_MAGIC_TO_PROXY` (assigned to a proxy socket,
//!   or replies to the proxy's upstream connections) are routed as local:
//!   `ip rule add fwmark 0x200/0xf00 pref 9 lookup 2004` and
//!   `ip route add local 0.0.0.0/0 dev lo table 2004`, and the same for IPv6. No iptables.
//! - **No TCP early demux** (`net.ipv4.tcp_early_demux = 0`, which covers IPv6 too): after an
//!   ingress redirect the proxy's accepted socket has the very 4-tuple of the connection the
//!   node forwards to the server's veth; early demux would attach that socket to the client's
//!   forwarded packets, and `ip_forward` drops a packet with a socket, before the server's
//!   `cil_to_container` could redirect it. Local TCP then costs one route lookup more.
//! - **The node program** `cil_lo_to_proxy` (`bpf-templates/bpf_node.c`) on the tc ingress
//!   hook of `lo`: assigns the packets an endpoint's `cil_to_container` redirected there.
//!
//! [`install_node_redirect`] sets all of it up and can be called again (it replaces the
//! program in place and leaves existing rules and routes as they are); [`remove_node_redirect`]
//! takes it all away and also succeeds when nothing is installed. Both act on the calling
//! thread's network namespace.

use crate::attach::{self, AttachMode, Hook};
use crate::error::LoaderError;
use aya::programs::SchedClassifier;
use aya::EbpfLoader;
use codegen::layout::{MARK_MAGIC_MASK, MARK_MAGIC_TO_PROXY};
use std::path::Path;
use std::process::Command;

/// The routing table holding the local default routes (Cilium's number).
pub const ROUTE_TABLE: u32 = 2004;
/// The preference of the fwmark rules: after the `local` table's rule (0), ahead of `main`
/// (32766), Cilium's number.
pub const RULE_PREF: u32 = 9;
/// The node program in `bpf_node.c`.
pub const PROG_LO: &str = "cil_lo_to_proxy";
/// The interface the node program is attached to.
pub const LO: &str = "lo";

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("running `ip {args}`: {source} (is iproute2 installed?)")]
    Spawn {
        args: String,
        source: std::io::Error,
    },
    #[error("`ip {args}` failed: {stderr}")]
    Ip { args: String, stderr: String },
    #[error("loading the node program: {0}")]
    Object(#[from] aya::EbpfError),
    #[error("the node object has no program {PROG_LO}")]
    MissingProgram,
    #[error("the verifier rejected {PROG_LO}: {source}\n{log}")]
    Verifier {
        source: aya::programs::ProgramError,
        log: String,
    },
    #[error("writing {path}: {source}")]
    Sysctl {
        path: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Loader(#[from] LoaderError),
}

/// The fwmark selector of the rules: `0x200/0xf00`.
pub fn fwmark() -> String {
    format!("{MARK_MAGIC_TO_PROXY:#x}/{MARK_MAGIC_MASK:#x}")
}

/// `ip` arguments adding or deleting (`verb`) the rule of `family` (`-4`, `-6`).
fn rule(family: &'static str, verb: &str) -> Vec<String> {
    [
        family,
        "rule",
        verb,
        "fwmark",
        &fwmark(),
        "pref",
        &RULE_PREF.to_string(),
        "lookup",
        &ROUTE_TABLE.to_string(),
    ]
    .map(String::from)
    .to_vec()
}

/// The local default route of each family in [`ROUTE_TABLE`].
fn route(family: &'static str, verb: &str) -> Vec<String> {
    let default = if family == "-4" { "0.0.0.0/0" } else { "::/0" };
    [
        family,
        "route",
        verb,
        "local",
        default,
        "dev",
        LO,
        "table",
        &ROUTE_TABLE.to_string(),
    ]
    .map(String::from)
    .to_vec()
}

/// Runs `ip args`; `Ok(false)` when it failed with one of the `tolerated` messages.
fn ip(args: &[String], tolerated: &[&str]) -> Result<bool, ProxyError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|source| ProxyError::Spawn {
            args: args.join(" "),
            source,
        })?;
    if out.status.success() {
        return Ok(true);
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if tolerated.iter().any(|t| stderr.contains(t)) {
        return Ok(false);
    }
    Err(ProxyError::Ip {
        args: args.join(" "),
        stderr,
    })
}

const FAMILIES: [&str; 2] = ["-4", "-6"];

/// Installs the routing rules and routes, then loads `node_object` (the compiled
/// `bpf_node.c`, `codegen::clang::ObjectCache::node_object`) and attaches its program on
/// `lo`'s ingress hook, the tcx link pinned at `link_pin` (`NodeLayout::proxy_link`). Called
/// again, it replaces the program atomically. The program is verified before anything is
/// changed; a later failure removes what this call added.
pub fn install_node_redirect(
    node_object: &[u8],
    link_pin: &Path,
    mode: AttachMode,
) -> Result<(), ProxyError> {
    let mut ebpf = EbpfLoader::new().load(node_object)?;
    let prog: &mut SchedClassifier = ebpf
        .program_mut(PROG_LO)
        .ok_or(ProxyError::MissingProgram)?
        .try_into()
        .map_err(|source| ProxyError::Verifier {
            source,
            log: String::new(),
        })?;
    crate::verify::load_verified(prog)
        .map_err(|(source, log)| ProxyError::Verifier { source, log })?;
    let existed = attach::is_attached(LO, Hook::FromEndpoint, mode, link_pin);
    let result = routing_add().and_then(|()| {
        Ok(attach::attach_or_replace(
            prog,
            LO,
            Hook::FromEndpoint,
            mode,
            link_pin,
        )?)
    });
    if let Err(e) = result {
        // Nothing half-applied: a first install that failed is taken back whole (a failed
        // reinstall leaves the previous one, whose rules and routes are the same).
        if !existed {
            let _ = remove_node_redirect(link_pin, mode);
        }
        return Err(e);
    }
    Ok(())
}

/// The per-namespace switch of TCP early demux.
pub const TCP_EARLY_DEMUX: &str = "/proc/sys/net/ipv4/tcp_early_demux";

fn set_early_demux(on: bool) -> Result<(), ProxyError> {
    std::fs::write(TCP_EARLY_DEMUX, if on { "1" } else { "0" }).map_err(|source| {
        ProxyError::Sysctl {
            path: TCP_EARLY_DEMUX,
            source,
        }
    })
}

fn routing_add() -> Result<(), ProxyError> {
    set_early_demux(false)?;
    for family in FAMILIES {
        ip(&route(family, "replace"), &[])?;
        // The kernel refuses a duplicate rule (EEXIST): the rule is there already.
        ip(&rule(family, "add"), &["File exists"])?;
    }
    Ok(())
}

/// Detaches the node program and removes the rules and routes (each family's rule as often as
/// it is present). Succeeds when some or all of it is already gone.
pub fn remove_node_redirect(link_pin: &Path, mode: AttachMode) -> Result<(), ProxyError> {
    if attach::interface_exists(LO) {
        attach::detach(LO, Hook::FromEndpoint, mode, link_pin)?;
    }
    for family in FAMILIES {
        while ip(&rule(family, "del"), &["No such file", "not exist"])? {}
        ip(
            &route(family, "del"),
            &["No such process", "No such file", "not exist"],
        )?;
    }
    // The kernel's default.
    set_early_demux(true)
}

/// Whether both families' rules are in place (for checks and tests).
pub fn rules_installed() -> Result<bool, ProxyError> {
    for family in FAMILIES {
        let args: Vec<String> = [family, "rule", "show", "pref", &RULE_PREF.to_string()]
            .map(String::from)
            .to_vec();
        let out = Command::new("ip")
            .args(&args)
            .output()
            .map_err(|source| ProxyError::Spawn {
                args: args.join(" "),
                source,
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !text.contains(&ROUTE_TABLE.to_string()) {
            return Ok(false);
        }
    }
    Ok(true)
}
