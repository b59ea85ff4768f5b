//! What the DNS proxy does with one query, whatever carried it (`udp.rs`, `tcp.rs`): the
//! query is judged by the `rules.dns` of the deciding redirect key ([`SharedTable`], looked up
//! with the transport's protocol and the original port); an allowed one is exchanged with the
//! original server by the transport, the answer checked against the question and its addresses
//! handed to the [`Learn`] hook (at most `learn_wait`) before it is relayed; a denied one is
//! answered `REFUSED`, an allowed one the server did not answer `SERVFAIL`. Every query gives
//! one event (`monitor --type l7`).

use super::learn::{learned, Learn, Learned};
use super::message::{self, Question, MAX_MESSAGE};
use crate::event::{DnsAnswer, Event, EventKind, Events, Verdict};
use crate::proxy::ConnInfo;
use crate::table::{Decision, Flow, SharedTable};
use ir::Direction;
use std::future::Future;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// RCODE 2, sent when the server does not answer in time.
const RCODE_SERVFAIL: u8 = 2;

#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// Time allowed for the server's answer; then the client gets `SERVFAIL`. Over TCP also
    /// the time a query may take to arrive once its first byte did.
    pub query_timeout: Duration,
    /// Queries over UDP being handled at once.
    pub max_inflight: usize,
    /// Client connections over TCP served at once (more wait in the listen backlog).
    pub max_tcp_connections: usize,
    /// How long a client's TCP connection may stay without a query before it is closed.
    pub tcp_idle_timeout: Duration,
    /// Send queries to the server from the client's address (`IP_TRANSPARENT`).
    pub transparent_source: bool,
    /// `SO_MARK` of the sockets after an ingress and after an egress redirect.
    pub marks: Option<crate::proxy::Marks>,
    /// How long an allowed answer waits for the [`Learn`] hook before it is relayed anyway.
    pub learn_wait: Duration,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            query_timeout: Duration::from_secs(5),
            max_inflight: 1024,
            max_tcp_connections: 256,
            tcp_idle_timeout: Duration::from_secs(10),
            transparent_source: false,
            marks: None,
            learn_wait: Duration::from_millis(100),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DnsProxyError {
    #[error("receiving a DNS query failed: {0}")]
    Receive(std::io::Error),
    #[error("accepting a DNS connection failed: {0}")]
    Accept(std::io::Error),
    #[error("max_inflight and max_tcp_connections must be at least 1")]
    NoQueries,
}

pub(super) struct Shared {
    pub config: DnsConfig,
    table: SharedTable,
    events: Events,
    learn: Option<Learn>,
}

/// The DNS proxy: cheap to clone; clones share the table, events and the caps.
#[derive(Clone)]
pub struct DnsProxy {
    pub(super) shared: Arc<Shared>,
    /// Queries over UDP in flight.
    pub(super) slots: Arc<Semaphore>,
    /// Client connections over TCP.
    pub(super) tcp_slots: Arc<Semaphore>,
    /// Client connections over TCP being served (shared, see [`DnsProxy::counting`]).
    pub(super) tcp_active: Arc<AtomicUsize>,
}

impl DnsProxy {
    /// A proxy judging queries by `table`; `learn`, if given, gets the addresses of every
    /// allowed answer before it is relayed.
    pub fn new(
        config: DnsConfig,
        table: SharedTable,
        events: Events,
        learn: Option<Learn>,
    ) -> Result<DnsProxy, DnsProxyError> {
        Self::counting(config, table, events, learn, Arc::default())
    }

    /// A proxy that counts the TCP connections it serves in `active`, as
    /// `Proxy::counting` does for HTTP (whoever builds the table needs to know whether
    /// connections redirected earlier are still open).
    pub fn counting(
        config: DnsConfig,
        table: SharedTable,
        events: Events,
        learn: Option<Learn>,
        active: Arc<AtomicUsize>,
    ) -> Result<DnsProxy, DnsProxyError> {
        if config.max_inflight == 0 || config.max_tcp_connections == 0 {
            return Err(DnsProxyError::NoQueries);
        }
        let slots = Arc::new(Semaphore::new(config.max_inflight));
        let tcp_slots = Arc::new(Semaphore::new(config.max_tcp_connections));
        Ok(DnsProxy {
            shared: Arc::new(Shared {
                config,
                table,
                events,
                learn,
            }),
            slots,
            tcp_slots,
            tcp_active: active,
        })
    }
}

/// Why the server's side of an exchange gave no answer to relay.
pub(super) enum Exchange {
    /// The server's answer is not a valid DNS message: nothing is relayed.
    Malformed(String),
    /// No answer (unreachable, timed out, connection lost): the client gets `SERVFAIL`.
    Failed,
}

/// The answer the proxy sends the client for one query, and what its event reports.
pub(super) struct Answer {
    pub bytes: Vec<u8>,
    question: Question,
    verdict: Verdict,
    endpoint_identity: ir::NumericIdentity,
    start: Instant,
    protocol: u8,
    /// What the server's answer gives the name (empty for the proxy's own answers).
    given: DnsAnswer,
    /// The rule that allowed the query, or those it failed.
    rules: Vec<ir::RuleId>,
}

impl Shared {
    pub(super) fn event(
        &self,
        info: &ConnInfo,
        endpoint_identity: ir::NumericIdentity,
        kind: impl FnOnce() -> EventKind,
    ) {
        self.events.emit(|| Event {
            endpoint: info.endpoint,
            endpoint_identity,
            direction: info.direction,
            peer_identity: info.peer_identity,
            client: info.client,
            original_dst: info.original_dst,
            kind: kind(),
        });
    }

    /// Hands an allowed answer's addresses to the hook and waits for it, at most `learn_wait`.
    async fn learn(&self, info: &ConnInfo, addresses: Vec<Learned>) {
        let Some(learn) = &self.learn else { return };
        if addresses.is_empty() {
            return;
        }
        let wait = self.config.learn_wait;
        let _ = tokio::time::timeout(wait, learn(*info, addresses)).await;
    }

    /// The mark of the sockets of a query redirected in `direction`.
    pub(super) fn mark(&self, direction: Direction) -> Option<u32> {
        self.config.marks.map(|m| m.of(direction))
    }

    /// Judges `query` (received over `protocol`; `too_long` when it did not fit
    /// [`MAX_MESSAGE`]) and, when allowed, has `exchange` send it to the original server and
    /// return the server's answer. `None`: nothing to answer (the query or the server's answer
    /// is malformed; the event is emitted). Otherwise the answer for the client: send it, then
    /// report it with [`Shared::answered`].
    pub(super) async fn answer<F, Fut>(
        &self,
        info: &ConnInfo,
        protocol: u8,
        query: &[u8],
        too_long: bool,
        exchange: F,
    ) -> Option<Answer>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<u8>, Exchange>>,
    {
        let start = Instant::now();
        let peer_addr = match info.direction {
            Direction::Ingress => info.client.ip(),
            Direction::Egress => info.original_dst.ip(),
        };
        let resolved = self.table.load().resolve(&Flow {
            endpoint: info.endpoint,
            direction: info.direction,
            peer: info.peer_identity,
            peer_addr: Some(peer_addr),
            protocol,
            port: info.original_dst.port(),
        });
        let ep_id = resolved.endpoint_identity;
        let parsed = if too_long {
            Err(format!("query longer than {MAX_MESSAGE} bytes"))
        } else {
            message::parse_query(query).map_err(|e| e.to_string())
        };
        let q = match parsed {
            Ok(q) => q,
            Err(reason) => {
                self.event(info, ep_id, || EventKind::BadDns { reason, protocol });
                return None;
            }
        };
        // Whether it is allowed, and the rules behind the verdict.
        let (allowed, rules) = match &resolved.decision {
            Decision::AllowAll => (true, Vec::new()),
            Decision::Dns(dns) => match dns.allowing(&q.name) {
                Some(id) => (true, vec![id]),
                None => (false, dns.rules()),
            },
            Decision::DenyAll(_) | Decision::Rules(_) => (false, Vec::new()),
        };
        let mut given = DnsAnswer::default();
        let (verdict, bytes) = if !allowed {
            let refused = message::error_answer(query, &q, message::RCODE_REFUSED);
            (Verdict::Denied, refused)
        } else {
            let checked = match exchange().await {
                Ok(answer) => check(query, &q, answer),
                Err(e) => Err(e),
            };
            match checked {
                Ok((answer, addresses)) => {
                    // Only for an event someone reads.
                    if self.events.active() {
                        given = DnsAnswer::of(&addresses);
                    }
                    self.learn(info, addresses).await;
                    (Verdict::Forwarded, answer)
                }
                Err(Exchange::Malformed(reason)) => {
                    self.event(info, ep_id, || EventKind::BadDns { reason, protocol });
                    return None;
                }
                Err(Exchange::Failed) => (
                    Verdict::Error,
                    message::error_answer(query, &q, RCODE_SERVFAIL),
                ),
            }
        };
        Some(Answer {
            bytes,
            question: q,
            verdict,
            endpoint_identity: ep_id,
            start,
            protocol,
            given,
            rules,
        })
    }

    /// The event of an answer, once sending it to the client succeeded (`sent`) or not.
    pub(super) fn answered(&self, info: &ConnInfo, a: Answer, sent: bool) {
        let rcode = if sent { message::rcode(&a.bytes) } else { None };
        self.event(info, a.endpoint_identity, || EventKind::Dns {
            name: a.question.name,
            qtype: a.question.qtype,
            verdict: a.verdict,
            rcode,
            latency: a.start.elapsed(),
            protocol: a.protocol,
            answer: a.given,
            rules: a.rules,
        });
    }
}

/// The server's `answer` to `query` (question `q`) with the addresses it gives the question's
/// name, if it is an answer to that query: its id, and its question.
fn check(query: &[u8], q: &Question, answer: Vec<u8>) -> Result<(Vec<u8>, Vec<Learned>), Exchange> {
    if answer.get(..2) != query.get(..2) {
        return Err(Exchange::Malformed("answer with another id".into()));
    }
    let (aq, records, aliases) =
        message::parse_answer_aliases(&answer).map_err(|e| Exchange::Malformed(e.to_string()))?;
    if aq.name != q.name || aq.qtype != q.qtype {
        return Err(Exchange::Malformed(format!(
            "answer for {} type {} to a query for {} type {}",
            aq.name, aq.qtype, q.name, q.qtype
        )));
    }
    let addresses = learned(&q.name, &records, &aliases);
    Ok((answer, addresses))
}
