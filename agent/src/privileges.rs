//! What the datapath needs from the process, checked at start so that an agent without it
//! stops with what is missing instead of starting and failing at the first endpoint.

/// Capability numbers (linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

/// The process's effective capability set, as a bit set by capability number.
fn effective() -> std::io::Result<u64> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget writes at most two `Data` (version 3) through valid pointers.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(u64::from(data[0].effective) | (u64::from(data[1].effective) << 32))
}

/// The capabilities the datapath needs that `caps` lacks: CAP_BPF (or CAP_SYS_ADMIN, which
/// implies it) to load programs and maps, CAP_NET_ADMIN to attach them to interfaces.
fn missing_from(caps: u64) -> Vec<&'static str> {
    let has = |c: u32| caps & (1 << c) != 0;
    let mut missing = Vec::new();
    if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_BPF");
    }
    if !has(CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    missing
}

/// Fails with what is missing when the process cannot run the datapath.
pub fn check_datapath() -> Result<(), String> {
    let caps = effective().map_err(|e| format!("reading the process's capabilities: {e}"))?;
    let missing = missing_from(caps);
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the datapath needs CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN; this process lacks {}: \
         run the agent as root (or with those capabilities), or with --no-datapath",
        missing.join(" and ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_capabilities_are_named() {
        assert_eq!(missing_from(0), ["CAP_BPF", "CAP_NET_ADMIN"]);
        assert_eq!(missing_from(1 << CAP_SYS_ADMIN), ["CAP_NET_ADMIN"]);
        assert!(missing_from((1 << CAP_BPF) | (1 << CAP_NET_ADMIN)).is_empty());
        // This process's own set is readable.
        effective().unwrap();
    }
}
