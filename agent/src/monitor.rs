//! The datapath's drop and verdict events (dp's ring buffer, pinned under the node), published
//! to every listener (`GET /v1/monitor`, the flow export) as a flow with the policies behind its
//! verdict (`flows`) and a text line in the seed's format (§6.2) ending with them.

use super::flows::{attribution_suffix, event_addr, FlowBuilder};
use super::writer::Handle;
use codegen::layout::{Event, DIR_INGRESS, EVENT_DROP};
use compiler::flow::Flow;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::SystemTime;
use tokio::sync::broadcast;

/// One event: its kind (`drop`, `policy-verdict`, `l7`), the text line and, for datapath
/// events, the flow.
#[derive(Clone, Debug)]
pub struct Line {
    pub kind: &'static str,
    pub text: String,
    pub flow: Option<Arc<Flow>>,
}

/// The channel events are published on (give its sender to [`Handle::spawn`] and
/// [`spawn_reader`]).
pub fn channel() -> broadcast::Sender<Line> {
    broadcast::channel(4096).0
}

/// Tells the monitor thread that the events ring buffer exists: the first endpoint's load
/// creates and pins it, and the writer checks after each job until it is there
/// ([`RingReady::check`]). Nothing polls for it on a timer.
pub(crate) struct RingReady {
    pin: PathBuf,
    seen: AtomicBool,
    ready: Mutex<bool>,
    changed: Condvar,
}

impl RingReady {
    pub(crate) fn new(pin: PathBuf) -> Arc<RingReady> {
        let r = Arc::new(RingReady {
            pin,
            seen: AtomicBool::new(false),
            ready: Mutex::new(false),
            changed: Condvar::new(),
        });
        r.check();
        r
    }

    /// Wakes the monitor thread if the ring has just been pinned (a stat until then, nothing
    /// after).
    pub(crate) fn check(&self) {
        if self.seen.load(Ordering::Acquire) || !self.pin.exists() {
            return;
        }
        self.seen.store(true, Ordering::Release);
        *self.ready.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.changed.notify_all();
    }

    /// Blocks until [`RingReady::check`] saw the ring.
    fn wait(&self) {
        let ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        drop(
            self.changed
                .wait_while(ready, |r| !*r)
                .unwrap_or_else(|e| e.into_inner()),
        );
    }

    /// The pinned ring could not be opened: wait for the writer to see it again.
    fn forget(&self) {
        *self.ready.lock().unwrap_or_else(|e| e.into_inner()) = false;
        self.seen.store(false, Ordering::Release);
    }
}

/// Starts the reader thread: waits until the first endpoint created the pinned ring buffer
/// (woken by the writer), then blocks on the ring and publishes every event while anyone
/// listens, named from `agent`'s snapshots. The datapath wakes the reader when it submits an
/// event the reader had caught up with (`events.h`); between drains the reader waits as
/// `runtime_loader::ring` says (events gather for a millisecond after a drain that found some,
/// an empty ring is waited on without a timeout).
pub fn spawn_reader(out: broadcast::Sender<Line>, agent: Handle, node: String) {
    let Some(ring_ready) = agent.events_ring() else {
        return;
    };
    let mut flows = FlowBuilder::new(node);
    std::thread::Builder::new()
        .name("monitor".into())
        .spawn(move || loop {
            ring_ready.wait();
            let pin = &ring_ready.pin;
            let Ok(data) = aya::maps::MapData::from_pin(pin) else {
                tracing::warn!(pin = %pin.display(), "the events ring buffer cannot be opened");
                ring_ready.forget();
                continue;
            };
            let Ok(mut ring) = aya::maps::RingBuf::try_from(aya::maps::Map::RingBuf(data)) else {
                tracing::error!(pin = %pin.display(), "the pinned events map is not a ring buffer");
                return;
            };
            loop {
                let mut drained = 0;
                while let Some(item) = ring.next() {
                    drained += 1;
                    // Drained either way (a full ring loses the next client's first events);
                    // named and formatted only for a listener.
                    if out.receiver_count() == 0 {
                        continue;
                    }
                    if let Some(ev) = Event::from_bytes(&item) {
                        let snap = agent.snapshot();
                        let flow = flows.flow(&ev, &snap, SystemTime::now());
                        let _ = out.send(line_of(&ev, flow));
                    }
                }
                if let Err(e) = runtime_loader::ring::wait(ring.as_raw_fd(), None, drained) {
                    tracing::error!(error = %e, "waiting on the events ring buffer; the monitor stops");
                    return;
                }
            }
        })
        .expect("spawning the monitor thread");
}

/// The published event of `e` and its flow.
pub fn line_of(e: &Event, flow: Flow) -> Line {
    let (kind, text) = format_event(e);
    Line {
        kind,
        text: text + &attribution_suffix(&flow),
        flow: Some(Arc::new(flow)),
    }
}

/// `xx drop (REASON) to endpoint ID, identity SRC->DST: SADDR:SPORT -> DADDR:DPORT PROTO` for
/// drops (as seed §6.2), `-> verdict ...` for allowed decisions.
pub fn format_event(e: &Event) -> (&'static str, String) {
    let (s, d) = (event_addr(e.family, e.saddr), event_addr(e.family, e.daddr));
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
        (
            "drop",
            format!(
                "xx drop ({reason}) {side} endpoint {}, identity {src}->{dst}: {flow}",
                e.ep_id
            ),
        )
    } else {
        (
            "policy-verdict",
            format!(
                "-> verdict allow {side} endpoint {}, identity {src}->{dst}: {flow}",
                e.ep_id
            ),
        )
    }
}
