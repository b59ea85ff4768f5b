//! The socket options the transparent proxy needs on its listeners and upstream sockets
//! (`IP_TRANSPARENT`/`IPV6_TRANSPARENT`, `SO_MARK`, `IPV6_V6ONLY`), set through `libc` on
//! tokio sockets before they bind.

use std::io;
use std::os::fd::AsRawFd;

/// Sets an `int`-valued option.
pub fn set_int(
    fd: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: a valid socket descriptor and an int option of the right size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `IP_TRANSPARENT` (IPv4) or `IPV6_TRANSPARENT`: bind a non-local address, accept
/// connections assigned by `bpf_sk_assign`. Needs CAP_NET_ADMIN.
pub fn set_transparent(fd: &impl AsRawFd, v4: bool) -> io::Result<()> {
    if v4 {
        set_int(fd, libc::SOL_IP, libc::IP_TRANSPARENT, 1)
    } else {
        set_int(fd, libc::SOL_IPV6, libc::IPV6_TRANSPARENT, 1)
    }
}

/// `SO_MARK`. Needs CAP_NET_ADMIN.
pub fn set_mark(fd: &impl AsRawFd, mark: u32) -> io::Result<()> {
    set_int(fd, libc::SOL_SOCKET, libc::SO_MARK, mark as libc::c_int)
}

/// `IPV6_V6ONLY`: an IPv6 socket that does not also take IPv4-mapped connections.
pub fn set_v6_only(fd: &impl AsRawFd) -> io::Result<()> {
    set_int(fd, libc::SOL_IPV6, libc::IPV6_V6ONLY, 1)
}
