//! The datapath's drop and verdict events (dp's ring buffer, pinned under the node) as text
//! lines in the seed's format (§6.2), published to every listener (`GET /v1/monitor`).

use codegen::layout::{Event, DIR_INGRESS, EVENT_DROP, FAMILY_IPV4};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::broadcast;

/// One formatted event and its kind (`drop` or `verdict`).
#[derive(Clone, Debug)]
pub struct Line {
    pub kind: &'static str,
    pub text: String,
}

/// Starts the reader thread: opens the pinned ring buffer (once the first endpoint created
/// it) and publishes every event.
pub fn spawn_reader(pin: PathBuf) -> broadcast::Sender<Line> {
    let (tx, _) = broadcast::channel(4096);
    let out = tx.clone();
    std::thread::Builder::new()
        .name("monitor".into())
        .spawn(move || loop {
            let Ok(data) = aya::maps::MapData::from_pin(&pin) else {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            };
            let Ok(mut ring) = aya::maps::RingBuf::try_from(aya::maps::Map::RingBuf(data)) else {
                tracing::error!(pin = %pin.display(), "the pinned events map is not a ring buffer");
                return;
            };
            loop {
                let mut any = false;
                while let Some(item) = ring.next() {
                    any = true;
                    // Drained either way (a full ring loses the next client's first events);
                    // formatted only for a listening client.
                    if out.receiver_count() == 0 {
                        continue;
                    }
                    if let Some(ev) = Event::from_bytes(&item) {
                        let _ = out.send(format_event(&ev));
                    }
                }
                if !any {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        })
        .expect("spawning the monitor thread");
    tx
}

fn addr(family: u8, b: [u8; 16]) -> IpAddr {
    if family == FAMILY_IPV4 {
        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(b))
    }
}

/// `xx drop (REASON) to endpoint ID, identity SRC->DST: SADDR:SPORT -> DADDR:DPORT PROTO` for
/// drops (as seed §6.2), `-> verdict ...` for allowed decisions.
pub fn format_event(e: &Event) -> Line {
    let (s, d) = (addr(e.family, e.saddr), addr(e.family, e.daddr));
    let (sp, dp) = (u16::from_be(e.sport_be), u16::from_be(e.dport_be));
    // `10.0.0.1:80`, `[fd00::1]:80` (as Cilium's monitor prints IPv6 endpoints).
    let (ss, ds) = (SocketAddr::new(s, sp), SocketAddr::new(d, dp));
    let flow = match e.protocol {
        6 => format!("{ss} -> {ds} tcp"),
        17 => format!("{ss} -> {ds} udp"),
        132 => format!("{ss} -> {ds} sctp"),
        1 | 58 => {
            let what = match (e.protocol, dp) {
                (1, 8) | (58, 128) => "EchoRequest".to_string(),
                (1, 0) | (58, 129) => "EchoReply".to_string(),
                (_, t) => format!("ICMP type {t}"),
            };
            format!("{s} -> {d} {what}")
        }
        p => format!("{s} -> {d} proto {p}"),
    };
    let ingress = e.direction == DIR_INGRESS;
    let (src, dst) = if ingress {
        (e.peer_identity, e.ep_identity)
    } else {
        (e.ep_identity, e.peer_identity)
    };
    let side = if ingress { "to" } else { "from" };
    if e.kind == EVENT_DROP {
        let reason = codegen::reasons::legacy_name(e.reason)
            .map_or_else(|| format!("reason {}", e.reason), str::to_string);
        Line {
            kind: "drop",
            text: format!(
                "xx drop ({reason}) {side} endpoint {}, identity {src}->{dst}: {flow}",
                e.ep_id
            ),
        }
    } else {
        Line {
            kind: "verdict",
            text: format!(
                "-> verdict allow {side} endpoint {}, identity {src}->{dst}: {flow}",
                e.ep_id
            ),
        }
    }
}
