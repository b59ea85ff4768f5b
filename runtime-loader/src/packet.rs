//! Builds test packets (Ethernet frames) for BPF_PROG_TEST_RUN: IPv4/IPv6, TCP/UDP/SCTP/ICMP/
//! ICMPv6 and any other protocol number, optionally with IPv6 extension headers or as a
//! fragment.

use std::net::IpAddr;

/// What goes into a packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketSpec {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IANA protocol number.
    pub protocol: u8,
    /// TCP/UDP/SCTP source port; ICMP echo identifier.
    pub sport: u16,
    /// TCP/UDP/SCTP destination port; ICMP/ICMPv6 message type (low 8 bits).
    pub dport: u16,
    /// TCP flags (SYN = 0x02, ACK = 0x10).
    pub tcp_flags: u8,
    /// IPv6 hop-by-hop and destination-options headers to insert (count).
    pub ipv6_ext_headers: u8,
    /// Fragment offset in 8-byte units (0 = first or not fragmented); `Some` adds fragmentation.
    pub fragment_offset: Option<u16>,
}

impl PacketSpec {
    pub fn new(src: IpAddr, dst: IpAddr, protocol: u8, sport: u16, dport: u16) -> Self {
        PacketSpec {
            src,
            dst,
            protocol,
            sport,
            dport,
            tcp_flags: 0x02,
            ipv6_ext_headers: 0,
            fragment_offset: None,
        }
    }

    /// The reply: addresses and ports swapped; TCP SYN+ACK; ICMP echo request → reply.
    pub fn reply(&self) -> Self {
        let dport = match (self.protocol, self.dport) {
            (1, 8) => 0,
            (58, 128) => 129,
            (1 | 58, t) => t,
            _ => self.sport,
        };
        let sport = if matches!(self.protocol, 1 | 58) {
            self.sport
        } else {
            self.dport
        };
        PacketSpec {
            src: self.dst,
            dst: self.src,
            sport,
            dport,
            tcp_flags: 0x12,
            ..self.clone()
        }
    }

    /// The Ethernet frame.
    pub fn build(&self) -> Vec<u8> {
        let l4 = self.l4();
        let mut f = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01];
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f.extend_from_slice(&0x0800u16.to_be_bytes());
                let total = 20 + l4.len();
                let frag = self
                    .fragment_offset
                    .map(|o| 0x2000 | (o & 0x1fff))
                    .unwrap_or(0x4000);
                let mut ip = vec![0x45, 0];
                ip.extend_from_slice(&(total as u16).to_be_bytes());
                ip.extend_from_slice(&[0x12, 0x34]);
                ip.extend_from_slice(&frag.to_be_bytes());
                ip.extend_from_slice(&[64, self.protocol, 0, 0]);
                ip.extend_from_slice(&s.octets());
                ip.extend_from_slice(&d.octets());
                let sum = checksum(&ip);
                ip[10..12].copy_from_slice(&sum.to_be_bytes());
                f.extend_from_slice(&ip);
            }
            (s, d) => {
                let (s, d) = (v6(s), v6(d));
                f.extend_from_slice(&0x86DDu16.to_be_bytes());
                let mut ext = Vec::new();
                let mut next = Vec::new();
                for i in 0..self.ipv6_ext_headers {
                    next.push(if i % 2 == 0 { 0u8 } else { 60u8 });
                }
                if self.fragment_offset.is_some() {
                    next.push(44);
                }
                // Chain: fixed header's next header = first ext (or the protocol).
                let first = next.first().copied().unwrap_or(self.protocol);
                for (i, kind) in next.iter().enumerate() {
                    let nh = next.get(i + 1).copied().unwrap_or(self.protocol);
                    if *kind == 44 {
                        let off = self.fragment_offset.unwrap_or(0) << 3;
                        ext.extend_from_slice(&[nh, 0]);
                        ext.extend_from_slice(&(off | 1).to_be_bytes());
                        ext.extend_from_slice(&[0, 0, 0, 7]);
                    } else {
                        ext.extend_from_slice(&[nh, 0, 1, 4, 0, 0, 0, 0]);
                    }
                }
                f.extend_from_slice(&[0x60, 0, 0, 0]);
                f.extend_from_slice(&((ext.len() + l4.len()) as u16).to_be_bytes());
                f.extend_from_slice(&[first, 64]);
                f.extend_from_slice(&s);
                f.extend_from_slice(&d);
                f.extend_from_slice(&ext);
            }
        }
        f.extend_from_slice(&l4);
        f
    }

    fn l4(&self) -> Vec<u8> {
        let (sp, dp) = (self.sport.to_be_bytes(), self.dport.to_be_bytes());
        match self.protocol {
            6 => {
                let mut t = vec![
                    sp[0],
                    sp[1],
                    dp[0],
                    dp[1],
                    0,
                    0,
                    0,
                    1,
                    0,
                    0,
                    0,
                    0,
                    0x50,
                    self.tcp_flags,
                    0xff,
                    0xff,
                ];
                t.extend_from_slice(&[0, 0, 0, 0]);
                t
            }
            17 => vec![
                sp[0], sp[1], dp[0], dp[1], 0, 16, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
            ],
            132 => vec![sp[0], sp[1], dp[0], dp[1], 0, 0, 0, 1, 0, 0, 0, 0],
            1 | 58 => vec![self.dport as u8, 0, 0, 0, sp[0], sp[1], 0, 1],
            _ => vec![0; 8],
        }
    }
}

fn v6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
    }
}

fn checksum(b: &[u8]) -> u16 {
    let mut s: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}
