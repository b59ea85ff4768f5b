//! Garbage collection of CNI endpoints whose container went away without a CNI DEL (killed,
//! runtime crash): their host-side veth disappears with the container's network namespace. The
//! agent listens to the kernel's link notifications (rtnetlink `RTMGRP_LINK`) and, after each
//! batch, deletes the CNI endpoints whose interface no longer exists — endpoint, maps and pins,
//! as a DEL would. Event-driven: nothing runs while no link changes.

use super::state::Agent;
use super::{EndpointRef, Handle};
use std::os::fd::{AsRawFd, OwnedFd};

/// `RTMGRP_LINK`: the multicast group of link (interface) changes.
const RTMGRP_LINK: u32 = 1;

/// A netlink socket subscribed to link changes.
fn link_events() -> std::io::Result<OwnedFd> {
    runtime_loader::tcfilter::socket(RTMGRP_LINK)
}

/// Blocks until the next batch of link notifications (or an error such as ENOBUFS, which also
/// means "something changed").
fn wait(fd: &OwnedFd, buf: &mut [u8]) {
    // SAFETY: `buf` is a valid writable buffer of its length.
    unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    // Drain what queued up behind it, so one burst (50 containers leaving) is one sweep.
    loop {
        // SAFETY: as above, non-blocking.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n <= 0 {
            break;
        }
    }
}

/// Deletes the CNI endpoints whose interface is gone; returns their ids. Runs on the writer.
pub fn sweep(a: &mut Agent) -> Vec<u16> {
    let gone: Vec<(u16, String)> = a
        .cni_endpoints()
        .filter(|(_, iface)| !runtime_loader::attach::interface_exists(iface))
        .collect();
    let mut deleted = Vec::new();
    for (id, iface) in gone {
        match a.delete_endpoint(&EndpointRef::Id(id)) {
            Ok(_) => {
                tracing::info!(id, %iface, "CNI endpoint's interface is gone: endpoint deleted");
                deleted.push(id);
            }
            Err(e) => {
                tracing::warn!(id, %iface, error = %e, "deleting a CNI endpoint whose interface is gone")
            }
        }
    }
    deleted
}

/// Runs the collector on its own thread for the agent's lifetime: one sweep at start (links
/// that vanished while the agent was down), then one after every batch of link changes.
pub fn spawn(agent: Handle) {
    let fd = match link_events() {
        Ok(fd) => fd,
        Err(e) => {
            tracing::warn!(error = %e, "no link notifications: CNI endpoints of vanished containers are not collected");
            return;
        }
    };
    std::thread::Builder::new()
        .name("cni-gc".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                if agent.write_blocking(|a| Ok(sweep(a))).is_err() {
                    return; // the agent is stopping
                }
                wait(&fd, &mut buf);
            }
        })
        .map(drop)
        .unwrap_or_else(|e| tracing::warn!(error = %e, "starting the CNI endpoint collector"));
}
