//! Events: one per request (and one per connection refused before HTTP), sent on a bounded
//! channel. Nothing is built while nobody subscribes; when the subscriber lags, events are
//! dropped and counted rather than buffered.

use arc_swap::ArcSwapOption;
use ir::{Direction, NumericIdentity};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Forwarded,
    Denied,
    /// Allowed, but the original destination could not be reached.
    Error,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Forwarded => "Forwarded",
            Verdict::Denied => "Denied",
            Verdict::Error => "Error",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    Request {
        method: String,
        /// `http://HOST/PATH` (HOST: the `Host` header, else the original destination).
        url: String,
        host: String,
        verdict: Verdict,
        /// The status sent to the client (403 for a denial).
        status: u16,
        /// From the request head to the response head.
        latency: Duration,
        /// The IR rule whose HTTP rule allowed it, or the rules of the key a denied request
        /// failed (empty: no L7 rule decided, e.g. an L3/L4 denial or no HTTP rules).
        rules: Vec<ir::RuleId>,
    },
    /// The first bytes were not an HTTP request line; the connection was closed.
    NotHttp,
    /// The connection ended on an HTTP error (malformed request, header section too large,
    /// header timeout); hyper answered 400/431 when it could.
    BadRequest { reason: String },
    /// A DNS query: `name` (lower-case, trailing dot) of type `qtype`; `rcode` of the answer
    /// sent to the client (5 `REFUSED` for a denial; none when nothing was sent).
    Dns {
        name: String,
        qtype: u16,
        verdict: Verdict,
        rcode: Option<u8>,
        /// From the query to the answer.
        latency: Duration,
        /// The transport's protocol (6 TCP, 17 UDP).
        protocol: u8,
        /// What a relayed answer gives the name (empty for the proxy's own answers).
        answer: DnsAnswer,
        /// The IR rule whose `rules.dns` allowed it, or the rules at the key a denied query
        /// failed (empty: no DNS rule decided).
        rules: Vec<ir::RuleId>,
    },
    /// A query or answer that is not a valid DNS message, dropped (over TCP the client's
    /// connection is closed); `protocol` is the transport's (6 TCP, 17 UDP).
    BadDns { reason: String, protocol: u8 },
}

/// What a relayed DNS answer gives the question's name, its CNAMEs followed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsAnswer {
    pub ips: Vec<std::net::IpAddr>,
    /// The lowest TTL on the way to the addresses (0 without any).
    pub ttl: u32,
    /// The aliases on the way, in order.
    pub cnames: Vec<String>,
}

impl DnsAnswer {
    /// The answer's addresses as the proxy learned them (`dns::learn`).
    pub fn of(learned: &[crate::dns::learn::Learned]) -> DnsAnswer {
        let mut cnames: Vec<String> = Vec::new();
        for l in learned {
            for n in l.names.iter().skip(1) {
                if !cnames.contains(n) {
                    cnames.push(n.clone());
                }
            }
        }
        DnsAnswer {
            ips: learned.iter().map(|l| l.addr).collect(),
            ttl: learned.iter().map(|l| l.ttl).min().unwrap_or(0),
            cnames,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub endpoint: u16,
    pub endpoint_identity: NumericIdentity,
    pub direction: Direction,
    pub peer_identity: NumericIdentity,
    pub client: SocketAddr,
    pub original_dst: SocketAddr,
    pub kind: EventKind,
}

/// What the proxy counts for every request or refused connection, listened to or not (one
/// relaxed atomic add each): `Verdict`s of requests, and connections closed before HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Forwarded,
    Denied,
    Error,
    NotHttp,
    BadRequest,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Forwarded,
        Outcome::Denied,
        Outcome::Error,
        Outcome::NotHttp,
        Outcome::BadRequest,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Forwarded => "forwarded",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
            Outcome::NotHttp => "not_http",
            Outcome::BadRequest => "bad_request",
        }
    }
}

impl From<Verdict> for Outcome {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Forwarded => Outcome::Forwarded,
            Verdict::Denied => Outcome::Denied,
            Verdict::Error => Outcome::Error,
        }
    }
}

/// The event sink shared by every connection of a proxy.
#[derive(Clone, Default)]
pub struct Events {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    tx: ArcSwapOption<mpsc::Sender<Event>>,
    dropped: AtomicU64,
    /// By [`Outcome`], in the order of [`Outcome::ALL`].
    counts: [AtomicU64; 5],
}

impl Events {
    /// A new subscriber (replacing any previous one) receiving up to `capacity` queued events.
    pub fn subscribe(&self, capacity: usize) -> mpsc::Receiver<Event> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        self.inner.tx.store(Some(Arc::new(tx)));
        rx
    }

    /// Whether a subscriber is listening (events are built only then).
    pub fn active(&self) -> bool {
        self.inner
            .tx
            .load()
            .as_ref()
            .is_some_and(|t| !t.is_closed())
    }

    /// Sends the event `make` builds, if someone listens; never waits.
    pub fn emit(&self, make: impl FnOnce() -> Event) {
        let guard = self.inner.tx.load();
        let Some(tx) = guard.as_ref().filter(|t| !t.is_closed()) else {
            return;
        };
        if tx.try_send(make()).is_err() {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one outcome.
    pub fn count(&self, o: Outcome) {
        self.inner.counts[o as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Every outcome's count.
    pub fn counts(&self) -> [(Outcome, u64); 5] {
        Outcome::ALL.map(|o| (o, self.inner.counts[o as usize].load(Ordering::Relaxed)))
    }

    /// Events dropped because the subscriber's queue was full.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }
}

/// How the formatter names an identity: the endpoint id holding it (0 if none) and its labels.
pub trait Names {
    fn endpoint_of(&self, identity: NumericIdentity) -> u16;
    fn labels_of(&self, identity: NumericIdentity) -> String;
}

/// The seed's §6 style line of an event, e.g. `<- Request http from 3 ([k8s:id=app2]) to 1
/// ([k8s:id=app1]), identity 12345->54321, verdict Denied GET http://10.0.0.11/private => 403`.
/// For ingress the peer is the source; for egress the endpoint is.
pub fn format_event(e: &Event, names: &dyn Names) -> String {
    let ep = (
        e.endpoint,
        names.labels_of(e.endpoint_identity),
        e.endpoint_identity,
    );
    let peer = (
        names.endpoint_of(e.peer_identity),
        names.labels_of(e.peer_identity),
        e.peer_identity,
    );
    let (src, dst) = match e.direction {
        Direction::Ingress => (peer, ep),
        Direction::Egress => (ep, peer),
    };
    let parties = format!(
        "from {} ([{}]) to {} ([{}]), identity {}->{}",
        src.0, src.1, dst.0, dst.1, src.2, dst.2
    );
    match &e.kind {
        EventKind::Request {
            method,
            url,
            verdict,
            status,
            latency,
            ..
        } => {
            let mut line = format!(
                "<- Request http {parties}, verdict {} {method} {url} => {status}",
                verdict.name()
            );
            if *verdict != Verdict::Denied {
                line.push_str(&format!(" ({} µs)", latency.as_micros()));
            }
            line
        }
        EventKind::NotHttp => format!(
            "xx drop (Not HTTP) {parties}: {} -> {} tcp",
            e.client, e.original_dst
        ),
        EventKind::BadRequest { reason } => format!(
            "xx drop (Bad HTTP request: {reason}) {parties}: {} -> {} tcp",
            e.client, e.original_dst
        ),
        EventKind::Dns {
            name,
            qtype,
            verdict,
            rcode,
            latency,
            ..
        } => {
            let answer = rcode.map_or("no answer".to_string(), rcode_name);
            let mut line = format!(
                "<- Request dns {parties}, verdict {} {name} {} to {} => {answer}",
                verdict.name(),
                qtype_name(*qtype),
                e.original_dst
            );
            if *verdict != Verdict::Denied {
                line.push_str(&format!(" ({} µs)", latency.as_micros()));
            }
            line
        }
        EventKind::BadDns { reason, protocol } => format!(
            "xx drop (Bad DNS message: {reason}) {parties}: {} -> {} {}",
            e.client,
            e.original_dst,
            if *protocol == crate::table::TCP {
                "tcp"
            } else {
                "udp"
            }
        ),
    }
}

fn rcode_name(rcode: u8) -> String {
    match rcode {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        n => format!("RCODE{n}"),
    }
}

/// `A`, `AAAA`, `CNAME`, else `TYPE<n>` (RFC 3597).
pub fn qtype_name(qtype: u16) -> String {
    match qtype {
        1 => "A".into(),
        5 => "CNAME".into(),
        28 => "AAAA".into(),
        n => format!("TYPE{n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl Names for Fixed {
        fn endpoint_of(&self, identity: NumericIdentity) -> u16 {
            if identity.0 == 12345 {
                3
            } else {
                0
            }
        }
        fn labels_of(&self, identity: NumericIdentity) -> String {
            match identity.0 {
                12345 => "k8s:id=app2".into(),
                54321 => "k8s:id=app1".into(),
                _ => String::new(),
            }
        }
    }

    fn event(kind: EventKind) -> Event {
        Event {
            endpoint: 1,
            endpoint_identity: NumericIdentity(54321),
            direction: Direction::Ingress,
            peer_identity: NumericIdentity(12345),
            client: "10.0.0.12:40000".parse().unwrap(),
            original_dst: "10.0.0.11:80".parse().unwrap(),
            kind,
        }
    }

    #[test]
    fn seed_style_lines() {
        let denied = event(EventKind::Request {
            method: "GET".into(),
            url: "http://10.0.0.11/private".into(),
            host: "10.0.0.11".into(),
            verdict: Verdict::Denied,
            status: 403,
            latency: Duration::from_micros(12),
            rules: vec![],
        });
        assert_eq!(
            format_event(&denied, &Fixed),
            "<- Request http from 3 ([k8s:id=app2]) to 1 ([k8s:id=app1]), identity \
             12345->54321, verdict Denied GET http://10.0.0.11/private => 403"
        );
        let mut ok = denied.clone();
        if let EventKind::Request {
            verdict, status, ..
        } = &mut ok.kind
        {
            *verdict = Verdict::Forwarded;
            *status = 200;
        }
        assert!(format_event(&ok, &Fixed)
            .ends_with("verdict Forwarded GET http://10.0.0.11/private => 200 (12 µs)"));
        assert_eq!(
            format_event(&event(EventKind::NotHttp), &Fixed),
            "xx drop (Not HTTP) from 3 ([k8s:id=app2]) to 1 ([k8s:id=app1]), identity \
             12345->54321: 10.0.0.12:40000 -> 10.0.0.11:80 tcp"
        );
    }

    #[test]
    fn dns_lines() {
        let kind = |verdict, rcode| EventKind::Dns {
            name: "blocked.test.".into(),
            qtype: 1,
            verdict,
            rcode,
            latency: Duration::from_micros(84),
            protocol: crate::table::UDP,
            answer: DnsAnswer::default(),
            rules: Vec::new(),
        };
        assert_eq!(
            format_event(&event(kind(Verdict::Denied, Some(5))), &Fixed),
            "<- Request dns from 3 ([k8s:id=app2]) to 1 ([k8s:id=app1]), identity \
             12345->54321, verdict Denied blocked.test. A to 10.0.0.11:80 => REFUSED"
        );
        assert!(format_event(&event(kind(Verdict::Error, None)), &Fixed)
            .ends_with("verdict Error blocked.test. A to 10.0.0.11:80 => no answer (84 µs)"));
    }

    #[test]
    fn nothing_is_built_without_a_subscriber() {
        let events = Events::default();
        events.emit(|| panic!("built without a subscriber"));
        let rx = events.subscribe(1);
        assert!(events.active());
        drop(rx);
        assert!(!events.active());
        events.emit(|| panic!("built after the subscriber left"));
        let mut rx = events.subscribe(1);
        events.emit(|| event(EventKind::NotHttp));
        events.emit(|| event(EventKind::NotHttp));
        assert_eq!(events.dropped(), 1);
        assert_eq!(rx.try_recv().unwrap().kind, EventKind::NotHttp);
    }
}
