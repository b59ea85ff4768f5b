//! The node's etcd lease. Every key the node claims is put under it; a task keeps it alive
//! (a keep-alive every third of the TTL) while the agent runs. When the node dies, etcd
//! deletes its keys a TTL after the last keep-alive. When etcd does not answer, the same lease
//! is kept alive again once it does; if it expired meanwhile, a new one is granted and
//! subscribers ([`Lease::subscribe`]) put their keys again under it.

use super::etcd::Etcd;
use super::KvError;
use std::time::Duration;
use tokio::sync::watch;

/// How long a request that needs the lease waits for a first one.
const WAIT: Duration = Duration::from_secs(3);
/// Longest pause between two attempts while etcd does not answer.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

#[derive(Clone, Debug)]
pub struct Lease {
    endpoint: String,
    /// The lease in force (0 while there is none).
    id: watch::Receiver<i64>,
}

/// Why keeping a lease alive stopped.
enum Stopped {
    /// etcd says the lease is gone: grant another.
    Expired,
    /// etcd did not answer: try the same lease again.
    Failed(String),
}

impl Lease {
    /// Starts keeping a lease of `ttl` seconds on `etcd`'s runtime (granted once etcd answers).
    pub fn start(etcd: Etcd, ttl: i64) -> Lease {
        let (tx, rx) = watch::channel(0);
        let endpoint = etcd.endpoint().to_string();
        etcd.runtime().spawn(keep(etcd.clone(), ttl, tx));
        Lease { endpoint, id: rx }
    }

    /// The lease in force, waiting a little for the first one.
    pub async fn id(&self) -> Result<i64, KvError> {
        let mut rx = self.id.clone();
        let id = match tokio::time::timeout(WAIT, rx.wait_for(|id| *id != 0)).await {
            Ok(Ok(id)) => Some(*id),
            _ => None,
        };
        id.ok_or_else(|| KvError::Call {
            endpoint: self.endpoint.clone(),
            op: "lease",
            why: "no lease: etcd has not answered".into(),
        })
    }

    /// The lease in force now (0: none), without waiting.
    pub fn current(&self) -> i64 {
        *self.id.borrow()
    }

    /// Sees every lease granted from now on.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.id.clone()
    }
}

/// Grants a lease and keeps it alive, for as long as the agent runs.
async fn keep(etcd: Etcd, ttl: i64, tx: watch::Sender<i64>) {
    let mut client = etcd.client();
    let mut backoff = Duration::from_millis(100);
    let mut failing = false;
    let mut id = 0;
    loop {
        if id == 0 {
            match client.lease_grant(ttl, None).await {
                Ok(r) => {
                    id = r.id();
                    tracing::info!(lease = id, ttl, "kvstore lease granted");
                    tx.send_replace(id);
                    failing = false;
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(endpoint = etcd.endpoint(), error = %super::etcd::describe(&e),
                            "kvstore lease: etcd does not answer; retrying");
                    }
                    failing = true;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
        }
        match keep_alive(&mut client, id, ttl, &mut failing).await {
            Stopped::Expired => {
                tracing::warn!(
                    lease = id,
                    "kvstore lease expired; the node's keys are put again under a new one"
                );
                tx.send_replace(0);
                id = 0;
            }
            Stopped::Failed(why) => {
                // The pause is reset after an answer and doubled while there is none.
                if !failing {
                    backoff = Duration::from_millis(100);
                    tracing::warn!(
                        lease = id,
                        error = why,
                        "kvstore lease: keep-alive failed; retrying (the datapath keeps enforcing)"
                    );
                }
                failing = true;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Keeps lease `id` alive until etcd says it is gone or does not answer. An answer clears
/// `failing` (and says so when it was set).
async fn keep_alive(
    client: &mut etcd_client::Client,
    id: i64,
    ttl: i64,
    failing: &mut bool,
) -> Stopped {
    let describe = |e: etcd_client::Error| Stopped::Failed(super::etcd::describe(&e));
    let period = Duration::from_millis((ttl.max(1) as u64) * 1000 / 3);
    let (mut keeper, mut stream) = match client.lease_keep_alive(id).await {
        Ok(k) => k,
        Err(e) => return describe(e),
    };
    loop {
        if let Err(e) = keeper.keep_alive().await {
            return describe(e);
        }
        match tokio::time::timeout(period, stream.message()).await {
            Ok(Ok(Some(r))) if r.ttl() > 0 => {
                if std::mem::take(failing) {
                    tracing::info!(lease = id, "kvstore lease: etcd answers again");
                }
            }
            Ok(Ok(Some(_))) => return Stopped::Expired,
            Ok(Ok(None)) => return Stopped::Failed("keep-alive stream closed".into()),
            Ok(Err(e)) => return describe(e),
            Err(_) => return Stopped::Failed(format!("no keep-alive answer in {period:?}")),
        }
        tokio::time::sleep(period).await;
    }
}
