//! How a reader of the datapath's events ring waits between drains (the agent's monitor, the
//! per-packet benchmark's reader).
//!
//! The datapath submits with the kernel's adaptive wakeup: a record wakes the ring's waiters
//! only if the reader had consumed everything before it, i.e. had caught up. A reader that
//! waits in `poll(2)` right after every drain catches up often under a flood, and each catch-up
//! costs the next packet a wakeup (`irq_work`, a self-interrupt; a VM exit here), about
//! doubling a dropped packet's cost. So after a drain that found events the reader first lets
//! the next ones gather for [`COALESCE`] (while it has not caught up the datapath wakes
//! nobody), drains again, and only a drain that finds the ring empty blocks in `poll(2)`
//! without a timeout. An idle ring costs nothing and wakes nobody; under a flood there is at
//! most one wakeup per [`COALESCE`]; an event waits at most about [`COALESCE`] plus a drain.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// How long events gather after a drain that found some.
pub const COALESCE: Duration = Duration::from_millis(1);

/// Waits after a drain that found `drained` records: [`COALESCE`] when there were any, else
/// until `ring` (or `also`, e.g. a stop eventfd) is readable.
pub fn wait(ring: RawFd, also: Option<RawFd>, drained: usize) -> io::Result<()> {
    if drained > 0 {
        std::thread::sleep(COALESCE);
        return Ok(());
    }
    let mut fds: Vec<libc::pollfd> = std::iter::once(ring)
        .chain(also)
        .map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: valid pollfds for the duration of the call.
        if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) } >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
