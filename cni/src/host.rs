//! The host's view of the previous plugin's result: which interface is the host side of the
//! container's veth, and which addresses are the container's.

use crate::types::PrevResult;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The container's addresses in a result: those on a sandbox interface (or on no named
/// interface); the first of each family.
pub fn container_addrs(r: &PrevResult) -> Result<(Option<Ipv4Addr>, Option<Ipv6Addr>), String> {
    let (mut v4, mut v6) = (None, None);
    for (i, ip) in r.ips.iter().enumerate() {
        let in_sandbox = match ip.interface {
            None => true,
            Some(n) => r
                .interfaces
                .get(n)
                .ok_or_else(|| format!("prevResult.ips[{i}].interface: no interface {n}"))?
                .sandbox
                .as_deref()
                .is_some_and(|s| !s.is_empty()),
        };
        if !in_sandbox {
            continue;
        }
        let net: ipnet::IpNet = ip.address.parse().map_err(|_| {
            format!(
                "prevResult.ips[{i}].address: `{}` is not ADDRESS/PREFIX",
                ip.address
            )
        })?;
        match net.addr() {
            std::net::IpAddr::V4(a) => {
                v4.get_or_insert(a);
            }
            std::net::IpAddr::V6(a) => {
                v6.get_or_insert(a);
            }
        }
    }
    if v4.is_none() && v6.is_none() {
        return Err("prevResult has no address for the container".into());
    }
    Ok((v4, v6))
}

/// `struct ethtool_drvinfo` (linux/ethtool.h): what `ETHTOOL_GDRVINFO` fills in.
#[repr(C)]
struct DrvInfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

const ETHTOOL_GDRVINFO: u32 = 3;
const SIOCETHTOOL: libc::c_ulong = 0x8946;

/// The kernel driver of interface `name` in the calling thread's network namespace (`veth`,
/// `bridge`, …), asked with the ethtool ioctl (sysfs would show the namespace it was mounted in).
pub fn driver(name: &str) -> Option<String> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return None;
    }
    // SAFETY: plain socket(2), closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `DrvInfo` is plain data; zeroed is valid.
    let mut info: DrvInfo = unsafe { std::mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    // SAFETY: `ifreq` is plain data (a name and a union of plain data); zeroed is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    req.ifr_ifru.ifru_data = (&mut info as *mut DrvInfo).cast();
    // SAFETY: `req` names the interface and points at `info`, which outlives the call.
    let rc = unsafe { libc::ioctl(fd, SIOCETHTOOL as _, &mut req) };
    // SAFETY: `fd` is ours.
    unsafe { libc::close(fd) };
    if rc < 0 {
        return None;
    }
    let end = info.driver.iter().position(|b| *b == 0).unwrap_or(32);
    Some(String::from_utf8_lossy(&info.driver[..end]).into_owned())
}

/// The host side of the container's veth: the one host interface (no `sandbox`) of the result
/// that is a veth here (`is_veth`: [`driver`] is `veth`; a parameter for the tests).
pub fn host_veth(r: &PrevResult, is_veth: impl Fn(&str) -> bool) -> Result<String, String> {
    let host: Vec<&str> = r
        .interfaces
        .iter()
        .filter(|i| i.sandbox.as_deref().is_none_or(str::is_empty))
        .map(|i| i.name.as_str())
        .collect();
    let veths: Vec<&str> = host.iter().copied().filter(|n| is_veth(n)).collect();
    match veths.as_slice() {
        [one] => Ok(one.to_string()),
        [] => {
            Err(format!(
            "prevResult names no host-side veth (host interfaces: {}); chain cilium-policy-cni \
             after a plugin that creates one (ptp, bridge)",
            if host.is_empty() { "none".to_string() } else { host.join(", ") }
        ))
        }
        many => Err(format!(
            "prevResult names several host-side veths ({}); cannot tell which is the container's",
            many.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Interface, IpConfig};

    fn result(ifaces: &[(&str, bool)], ips: &[(&str, Option<usize>)]) -> PrevResult {
        PrevResult {
            interfaces: ifaces
                .iter()
                .map(|(n, sb)| Interface {
                    name: n.to_string(),
                    sandbox: sb.then(|| "/var/run/netns/x".to_string()),
                })
                .collect(),
            ips: ips
                .iter()
                .map(|(a, i)| IpConfig {
                    address: a.to_string(),
                    interface: *i,
                })
                .collect(),
        }
    }

    fn veth(n: &str) -> bool {
        n.starts_with("veth")
    }

    #[test]
    fn ptp_and_bridge_results() {
        let ptp = result(
            &[("veth1", false), ("eth0", true)],
            &[("10.88.0.2/24", Some(1))],
        );
        assert_eq!(host_veth(&ptp, veth).unwrap(), "veth1");
        assert_eq!(
            container_addrs(&ptp).unwrap(),
            (Some("10.88.0.2".parse().unwrap()), None)
        );
        let bridge = result(
            &[("cni0", false), ("veth1", false), ("eth0", true)],
            &[
                ("10.88.0.3/16", Some(2)),
                ("fd00::3/64", Some(2)),
                ("10.88.0.1/16", Some(0)),
            ],
        );
        assert_eq!(host_veth(&bridge, veth).unwrap(), "veth1");
        assert_eq!(
            container_addrs(&bridge).unwrap(),
            (
                Some("10.88.0.3".parse().unwrap()),
                Some("fd00::3".parse().unwrap())
            )
        );
    }

    #[test]
    fn the_loopback_is_no_veth() {
        assert_ne!(driver("lo").as_deref(), Some("veth"));
        assert_eq!(driver("no-such-if0"), None);
    }

    #[test]
    fn no_veth_or_no_address_is_an_error() {
        let r = result(
            &[("cni0", false), ("eth0", true)],
            &[("10.0.0.1/24", Some(0))],
        );
        assert!(host_veth(&r, veth).unwrap_err().contains("ptp, bridge"));
        assert!(container_addrs(&r).is_err());
        let r = result(&[("eth0", true)], &[("10.0.0.2/24", Some(4))]);
        assert!(container_addrs(&r).unwrap_err().contains("no interface 4"));
    }
}
