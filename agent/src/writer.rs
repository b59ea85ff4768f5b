//! The agent's one writer. Every change (API writes, the `--policy-dir` watcher, the CNI link
//! collector, switching datapath events on and off) is a job sent to one thread that owns the
//! [`Agent`]; jobs run one at a time in arrival order. After each job the writer publishes a
//! new [`Snapshot`] (before the job's reply goes out, so a client reads its own write), and
//! reads load the last one without waiting for the job in progress. Changes accepted without
//! waiting for enforcement are enforced as soon as no job is queued: the writer wakes itself,
//! nothing polls.

use super::error::AgentError;
use super::fqdn::bump;
use super::metrics::AgentMetrics;
use super::model::PolicyReply;
use super::monitor::{Line, RingReady};
use super::proxy::{dns_config, L7Events, L7Listener, L7Shared, Supervisor};
use super::snapshot::Snapshot;
use super::state::Agent;
use super::world::World;
use arc_swap::ArcSwap;
use l7proxy::dns::learn::{Learn, Learned};
use runtime_loader::layout::NodeLayout;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, RwLock};
use std::time::Instant;
use tokio::sync::{broadcast, oneshot};

/// A job: runs on the agent and returns what delivers its reply (called once the snapshot
/// that includes the job's effect is published).
type Job = Box<dyn FnOnce(&mut Agent) -> Reply + Send>;
type Reply = Box<dyn FnOnce() + Send>;

/// The handle every task holds: sends jobs to the writer and loads snapshots.
#[derive(Clone)]
pub struct Handle {
    jobs: mpsc::Sender<Job>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    world: Arc<RwLock<World>>,
    events: Option<broadcast::Sender<Line>>,
    metrics: Arc<AgentMetrics>,
    layout: Option<Arc<NodeLayout>>,
    /// The L7 proxy, when this agent runs one ([`Handle::start_proxy`]).
    proxy: Option<Arc<ProxyRuntime>>,
    /// Whether the datapath's events ring exists yet (none without a datapath).
    ring: Option<Arc<RingReady>>,
}

/// The running L7 proxy: its supervisor and its events' listeners.
struct ProxyRuntime {
    supervisor: Supervisor,
    events: Option<Arc<L7Events>>,
    /// The proxy's event sink, for its request counts.
    counters: l7proxy::Events,
}

fn stopped() -> AgentError {
    AgentError::Internal("the agent's writer has stopped".into())
}

impl Handle {
    /// Starts the writer thread, which owns `agent` from now on. `events` publishes the
    /// datapath's events (none without a datapath).
    pub fn spawn(
        mut agent: Agent,
        events: Option<broadcast::Sender<Line>>,
    ) -> Result<Handle, AgentError> {
        let first = agent.snapshot(None);
        let snapshot = Arc::new(ArcSwap::from_pointee(first));
        let world = agent.shared_world();
        let layout = agent.node_layout().map(Arc::new);
        let ring = agent.events_pin().map(RingReady::new);
        let metrics = Arc::new(AgentMetrics::default());
        if let Some(p) = agent.program_pool_stats() {
            let _ = metrics.programs.set(p);
        }
        let (jobs, rx) = mpsc::channel::<Job>();
        let published = snapshot.clone();
        let m = metrics.clone();
        let r = ring.clone();
        std::thread::Builder::new()
            .name("agent-writer".into())
            .spawn(move || run(agent, rx, published, &m, r.as_deref()))
            .map_err(|source| AgentError::Io {
                context: "starting the agent's writer thread".into(),
                source,
            })?;
        Ok(Handle {
            jobs,
            snapshot,
            world,
            events,
            metrics,
            layout,
            proxy: None,
            ring,
        })
    }

    /// Starts the L7 proxy's listeners and their supervisor on a thread of their own
    /// (`Supervisor::spawn_thread`), serving with what the writer publishes in `l7`
    /// (`Agent::l7_shared`); the events' forwarding stays on the current tokio runtime.
    pub fn start_proxy(mut self, l7: L7Shared, node: String) -> Result<Handle, AgentError> {
        let events = self
            .events
            .clone()
            .map(|out| L7Events::new(l7.events.clone(), out, self.snapshot.clone(), node));
        let counters = l7.events.clone();
        let learn = self.fqdn_learner();
        let supervisor = Supervisor::spawn_thread(l7, Some(learn))
            .map_err(|e| AgentError::Internal(format!("starting the L7 proxy: {e}")))?;
        self.proxy = Some(Arc::new(ProxyRuntime {
            supervisor,
            events,
            counters,
        }));
        Ok(self)
    }

    /// The DNS proxy's hook for `toFQDNs`: each allowed answer's addresses are learned by the
    /// writer (`Agent::learn_fqdn`); the hook returns once they are enforced. A learn that
    /// outlasts the proxy's wait still completes, counted as late.
    fn fqdn_learner(&self) -> Learn {
        let handle = self.clone();
        Arc::new(move |_info, learned: Vec<Learned>| {
            let (handle, asked) = (handle.clone(), Instant::now());
            let metrics = handle.metrics.clone();
            // Without a toFQDNs rule there is nothing to learn: answers do not queue behind
            // the writer's jobs.
            let none = !handle.snapshot().fqdn_rules;
            Box::pin(async move {
                if none {
                    return;
                }
                let done = handle.write(move |a| {
                    let learnt = a.learn_fqdn(&learned);
                    if asked.elapsed() > dns_config().learn_wait {
                        bump(&metrics.fqdn.late, 1);
                    }
                    if let Ok(l) = &learnt {
                        metrics.fqdn.record(l);
                    }
                    learnt
                });
                if let Err(e) = done.await {
                    tracing::warn!(error = %e, "toFQDNs: learning a DNS answer's addresses failed");
                }
            })
        })
    }

    /// The L7 proxy's supervisor, when the agent runs the proxy.
    pub fn proxy(&self) -> Option<&Supervisor> {
        self.proxy.as_deref().map(|p| &p.supervisor)
    }

    /// A listener of the L7 proxy's events, published as `l7` lines with the datapath's
    /// events while it is held (none without a proxy).
    pub fn listen_l7(&self) -> Option<L7Listener> {
        let events = self.proxy.as_ref()?.events.as_ref()?;
        Some(events.listen())
    }

    /// The agent's own counters (the flow exporter registers its own here).
    pub fn metrics(&self) -> &Arc<AgentMetrics> {
        &self.metrics
    }

    /// Every metric in Prometheus text format, read now.
    pub fn metrics_text(&self) -> String {
        super::metrics::render(
            &self.metrics,
            &self.snapshot(),
            self.layout.as_deref(),
            self.proxy.as_ref().map(|p| p.counters.counts()),
        )
    }

    /// Whether the events ring exists yet, for the monitor thread.
    pub(crate) fn events_ring(&self) -> Option<Arc<RingReady>> {
        self.ring.clone()
    }

    /// The agent as of its last completed write.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    fn send<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Agent) -> Result<T, AgentError> + Send + 'static,
    ) -> Result<oneshot::Receiver<Result<T, AgentError>>, AgentError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |a| {
            let res = f(a);
            Box::new(move || {
                // The requester may have gone (a client that hung up): nothing to deliver.
                let _ = tx.send(res);
            })
        });
        self.jobs.send(job).map_err(|_| stopped())?;
        Ok(rx)
    }

    /// Runs `f` on the writer and returns its result once a snapshot including it is
    /// published.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Agent) -> Result<T, AgentError> + Send + 'static,
    ) -> Result<T, AgentError> {
        self.send(f)?.await.map_err(|_| stopped())?
    }

    /// [`Handle::write`] from a thread outside the async runtime.
    pub fn write_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Agent) -> Result<T, AgentError> + Send + 'static,
    ) -> Result<T, AgentError> {
        self.send(f)?.blocking_recv().map_err(|_| stopped())?
    }

    /// `GET /v1/policy` as of the last snapshot.
    pub fn policy(&self) -> Result<PolicyReply, AgentError> {
        self.snapshot().policy()
    }

    /// `GET /v1/policy/resolve`, as of the last snapshot; a query naming a cluster endpoint
    /// that is not local reads the world (`resolve.rs` says why).
    pub fn resolve(&self, q: &BTreeMap<String, String>) -> Result<serde_json::Value, AgentError> {
        super::resolve::resolve(&self.snapshot(), &self.world, q)
    }

    /// A new listener of the datapath's events (none without a datapath). The endpoints emit
    /// events only while someone listens: call [`Handle::update_listening`] after subscribing
    /// and after a listener went away.
    pub fn subscribe_events(&self) -> Option<broadcast::Receiver<Line>> {
        self.events.as_ref().map(broadcast::Sender::subscribe)
    }

    /// Turns the endpoints' datapath events on when anyone listens and off otherwise (decided
    /// when the writer runs it, so racing subscribers and leavers settle on the right state).
    pub async fn update_listening(&self) {
        let Some(events) = self.events.clone() else {
            return;
        };
        let _ = self
            .write(move |a| {
                a.set_listening(events.receiver_count() > 0);
                Ok(())
            })
            .await;
    }

    /// [`Handle::update_listening`] without waiting (from a `Drop`).
    pub fn update_listening_later(&self) {
        let Some(events) = self.events.clone() else {
            return;
        };
        let _ = self.send(move |a| {
            a.set_listening(events.receiver_count() > 0);
            Ok(())
        });
    }
}

/// What the writer does next.
enum Work {
    Job(Job),
    /// Enforce the changes accepted without waiting.
    Pending,
    /// What is due by time: forget the learned `toFQDNs` addresses that expired, check the
    /// datapath (`--datapath-check-interval`).
    Timers,
}

/// The earliest of the learned addresses' next expiry and the next datapath check.
fn timers_deadline(agent: &Agent) -> Option<Instant> {
    [agent.fqdn_deadline(), agent.check_deadline()]
        .into_iter()
        .flatten()
        .min()
}

/// What is due at `now`: expired learned addresses, the datapath check. Whether the agent may
/// have changed (a check that found everything in place changes nothing).
fn run_timers(agent: &mut Agent, metrics: &AgentMetrics) -> bool {
    let now = Instant::now();
    let mut changed = false;
    if agent.fqdn_deadline().is_some_and(|d| d <= now) {
        agent.expire_fqdn(&metrics.fqdn);
        changed = true;
    }
    if agent.check_deadline().is_some_and(|d| d <= now) {
        let repaired = agent.guard_datapath();
        crate::fqdn::bump(&metrics.datapath_repairs, repaired);
        changed |= repaired > 0;
    }
    changed
}

/// The next work: what is due by time first (expired learned addresses must not stay allowed
/// while jobs keep coming; a datapath changed behind the agent's back is repaired between
/// jobs), then a queued job, then pending changes; with nothing to do, it sleeps until the
/// next job or the next deadline. `None`: every handle is gone.
fn next(agent: &Agent, jobs: &mpsc::Receiver<Job>) -> Option<Work> {
    let deadline = timers_deadline(agent);
    if deadline.is_some_and(|d| d <= Instant::now()) {
        return Some(Work::Timers);
    }
    match jobs.try_recv() {
        Ok(job) => return Some(Work::Job(job)),
        Err(TryRecvError::Empty) if agent.has_pending() => return Some(Work::Pending),
        Err(TryRecvError::Empty) => {}
        Err(TryRecvError::Disconnected) => return None,
    }
    let Some(deadline) = deadline else {
        return jobs.recv().ok().map(Work::Job);
    };
    match jobs.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(job) => Some(Work::Job(job)),
        Err(RecvTimeoutError::Timeout) => Some(Work::Timers),
        Err(RecvTimeoutError::Disconnected) => None,
    }
}

/// The writer's loop: one job at a time; with none queued, the changes accepted without
/// waiting are enforced; learned addresses are forgotten at their expiry and the datapath is
/// checked at its interval; with nothing to do, it sleeps until the next job or deadline.
fn run(
    mut agent: Agent,
    jobs: mpsc::Receiver<Job>,
    published: Arc<ArcSwap<Snapshot>>,
    metrics: &AgentMetrics,
    ring: Option<&RingReady>,
) {
    while let Some(work) = next(&agent, &jobs) {
        let started = Instant::now();
        let pending = matches!(work, Work::Pending);
        let mut idle = false;
        let reply = std::panic::catch_unwind(AssertUnwindSafe(|| match work {
            Work::Job(job) => {
                let _job = tracing::debug_span!("job").entered();
                Some(job(&mut agent))
            }
            Work::Pending => {
                let _pending = tracing::debug_span!("sync_pending").entered();
                agent.sync_pending();
                None
            }
            Work::Timers => {
                idle = !run_timers(&mut agent, metrics);
                None
            }
        }));
        let (reply, panicked) = match reply {
            Ok(reply) => (reply, false),
            Err(_) => {
                // The job's reply is dropped: its requester gets an error. The agent goes on.
                tracing::error!("an agent job panicked; its request failed");
                (None, true)
            }
        };
        // Nothing changed (a datapath check that found everything in place): the published
        // snapshot stays.
        if idle && !panicked {
            continue;
        }
        let before = published.load().healthz.policy_revision;
        let next = {
            let _snapshot = tracing::debug_span!("snapshot").entered();
            // After a panic the record of what the job touched may be incomplete: the
            // snapshot is built whole rather than from the previous one.
            let previous = (!panicked).then(|| published.load_full());
            agent.snapshot(previous.as_deref())
        };
        if pending || next.healthz.policy_revision != before {
            metrics.regeneration.observe(started.elapsed());
        }
        published.store(Arc::new(next));
        if let Some(ring) = ring {
            ring.check();
        }
        if let Some(reply) = reply {
            reply();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::{agent, put};

    const RULE: &str = r#"[{"endpointSelector": {"matchLabels": {"app": "a"}},
        "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "b"}}]}]}]"#;

    #[test]
    fn reads_answer_while_a_write_is_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let h = Handle::spawn(agent(dir.path()), None).unwrap();
        let (started_tx, started) = mpsc::channel();
        let (release, gate) = mpsc::channel::<()>();
        let writer = std::thread::spawn({
            let h = h.clone();
            move || {
                h.write_blocking(move |a| {
                    started_tx.send(()).unwrap();
                    gate.recv().unwrap();
                    put(a, "a.json", RULE)
                })
            }
        });
        started.recv().unwrap();
        // The writer is inside the job: reads still answer, from the state before it.
        let before = h.snapshot();
        assert_eq!(before.healthz.policy_revision, 0);
        assert!(before.policy.is_none());
        release.send(()).unwrap();
        let reply = writer.join().unwrap().unwrap();
        // Its reply went out after its snapshot: the next read sees the write.
        let after = h.snapshot();
        assert_eq!(after.healthz.policy_revision, reply.revision);
        assert_eq!(h.policy().unwrap().revision, reply.revision);
    }

    #[test]
    fn a_refused_write_leaves_the_published_state_alone() {
        let dir = tempfile::tempdir().unwrap();
        let h = Handle::spawn(agent(dir.path()), None).unwrap();
        h.write_blocking(|a| put(a, "a.json", RULE)).unwrap();
        let e = h
            .write_blocking(|a| put(a, "b.json", "[{\"endpointSelector\": 7}]"))
            .unwrap_err();
        assert!(matches!(e, AgentError::Invalid { .. }), "{e:?}");
        let s = h.snapshot();
        assert_eq!(s.healthz.policy_revision, 1);
        assert_eq!(h.policy().unwrap().sources.len(), 1);
    }

    #[test]
    fn a_job_that_panics_fails_its_request_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let h = Handle::spawn(agent(dir.path()), None).unwrap();
        let e = h
            .write_blocking(|_| -> Result<(), AgentError> { panic!("a bug") })
            .unwrap_err();
        assert!(matches!(e, AgentError::Internal(_)), "{e:?}");
        let reply = h.write_blocking(|a| put(a, "a.json", RULE)).unwrap();
        assert_eq!(reply.revision, 1);
    }
}
