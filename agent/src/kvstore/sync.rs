//! The cluster-wide ipcache through etcd. Each agent publishes its local endpoints (address →
//! identity, `kvstore::ipcache`) under `PREFIX/NODE/ID`, under its lease, and watches the
//! whole prefix (an etcd watch) for the other nodes' endpoints, which go into its world and
//! its datapath's ipcache as remote endpoints through the agent's one writer.
//!
//! - Publishing: after every change the writer hands the node's entries over
//!   ([`IpcacheSync::publish`], never waiting); a task writes what differs from what it
//!   wrote, and everything again under a new lease. At its first run it reads what a
//!   previous run of the node left and deletes what is no longer there.
//! - Watching: the task reads the prefix, hands the writer the whole set of remote endpoints
//!   ([`crate::state::Agent::apply_remote`] applies the difference), then watches from the
//!   revision it read; each batch of events that arrived together is one more hand-over.
//!   When the watch breaks (etcd away), it starts again with a full read, so nothing
//!   deleted meanwhile stays. Until then the node keeps what it has.
//! - Keeping: the remote endpoints the node enforces are kept in the state directory
//!   ([`super::remote_cache`]) and restored at start ([`IpcacheSync::restore`]), so that they
//!   stay while etcd does not answer; the first read of the prefix replaces them. The writer
//!   only hands them over ([`IpcacheSync::remember`]); a task writes the latest, at most once
//!   per [`KEEP_INTERVAL`], on the blocking pool, so the writer never waits for the disk and a
//!   burst of batches costs one write. A crash loses at most the last interval's changes (the
//!   restored set is then a little older: the first read of etcd replaces it all the same).

use super::etcd::{describe, Etcd};
use super::ipcache::parse_remote;
use super::lease::Lease;
use super::remote_cache::RemoteCache;
use crate::remote::RemoteEndpoint;
use crate::writer::Handle;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Pause before trying again after etcd did not answer.
const RETRY: Duration = Duration::from_secs(1);
/// The remote endpoints are written to disk at most this often.
pub const KEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Remote endpoints as the writer last handed them over for the disk.
type Kept = Option<BTreeMap<String, RemoteEndpoint>>;

#[derive(Debug)]
pub struct IpcacheSync {
    etcd: Etcd,
    lease: Lease,
    prefix: String,
    node: String,
    /// The node's entries as the writer last handed them over.
    desired: watch::Sender<Option<BTreeMap<String, String>>>,
    /// The remote endpoints on disk.
    cache: RemoteCache,
    /// The remote endpoints to write there next.
    kept: watch::Sender<Kept>,
}

impl IpcacheSync {
    /// Starts publishing for `node` under `prefix` (nothing is written before the first
    /// [`IpcacheSync::publish`]); the remote endpoints are kept in `cache`.
    pub fn start(
        etcd: Etcd,
        lease: Lease,
        prefix: &str,
        node: &str,
        cache: RemoteCache,
    ) -> Arc<IpcacheSync> {
        let (desired, rx) = watch::channel(None);
        let (kept, to_keep) = watch::channel(None);
        let sync = Arc::new(IpcacheSync {
            etcd: etcd.clone(),
            lease,
            prefix: format!("{}/", prefix.trim_end_matches('/')),
            node: node.to_string(),
            desired,
            cache,
            kept,
        });
        etcd.runtime().spawn(sync.clone().publisher(rx));
        etcd.runtime().spawn(sync.clone().keeper(to_keep));
        sync
    }

    /// The node's entries now (key suffix `NODE/ID` → value); written in the background.
    pub fn publish(&self, entries: BTreeMap<String, String>) {
        self.desired.send_if_modified(|d| {
            let changed = d.as_ref() != Some(&entries);
            *d = Some(entries);
            changed
        });
    }

    /// The remote endpoints the node last enforced before it stopped (none when the file is
    /// missing or unusable: the reason is logged, and etcd gives them again once it answers).
    pub fn restore(&self) -> BTreeMap<String, RemoteEndpoint> {
        super::remote_cache::load(&self.cache, &self.node).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the other nodes' endpoints of the previous run are not \
                restored: they come back when etcd answers");
            BTreeMap::new()
        })
    }

    /// Hands over `remote`, the remote endpoints the node enforces now, to be kept on disk
    /// (in the background, never waiting).
    pub fn remember(&self, remote: &BTreeMap<String, RemoteEndpoint>) {
        self.kept.send_replace(Some(remote.clone()));
    }

    /// Writes the remote endpoints handed over last, if they differ from the file's, at most
    /// once per [`KEEP_INTERVAL`] (a failure is logged: they are written at the next change).
    async fn keeper(self: Arc<Self>, mut handed: watch::Receiver<Kept>) {
        while handed.changed().await.is_ok() {
            let Some(remote) = handed.borrow_and_update().clone() else {
                continue;
            };
            let me = self.clone();
            let saved = tokio::task::spawn_blocking(move || {
                super::remote_cache::save(&me.cache, &remote).map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            if let Err(e) = saved {
                tracing::warn!(error = %e, "keeping the other nodes' endpoints on disk failed");
            }
            tokio::time::sleep(KEEP_INTERVAL).await;
        }
    }

    /// Starts watching the other nodes' entries, handing them to the writer of `agent`.
    pub fn watch(self: &Arc<Self>, agent: Handle) {
        self.etcd.runtime().spawn(self.clone().watcher(agent));
    }

    async fn publisher(
        self: Arc<Self>,
        mut desired: watch::Receiver<Option<BTreeMap<String, String>>>,
    ) {
        let mut leases = self.lease.subscribe();
        // What etcd holds for this node, as far as this task knows (None: read it first).
        let mut written: Option<BTreeMap<String, String>> = None;
        let mut lease = 0;
        loop {
            let want = desired.borrow_and_update().clone();
            if let Some(want) = want {
                match self.write(&want, &mut written, &mut lease).await {
                    Ok(()) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "publishing the node's endpoints to the kvstore failed; retrying");
                        tokio::time::sleep(RETRY).await;
                        continue;
                    }
                }
            }
            tokio::select! {
                r = desired.changed() => if r.is_err() { return },
                r = leases.changed() => if r.is_err() { return },
            }
        }
    }

    /// Brings etcd to `want` from `written` (what this task wrote under `lease`). At the
    /// first run the node's keys are read (a previous run's, under a lease that may still
    /// run) and all are written again under the node's lease or deleted; under a new lease
    /// everything is written again (the keys went with the old one).
    async fn write(
        &self,
        want: &BTreeMap<String, String>,
        written: &mut Option<BTreeMap<String, String>>,
        lease: &mut i64,
    ) -> Result<(), super::KvError> {
        let current = self.lease.id().await?;
        let mut done = match written.take() {
            Some(w) if current == *lease => w,
            Some(_) => BTreeMap::new(),
            None => {
                let mine = format!("{}{}/", self.prefix, self.node);
                let (kvs, _) = self.etcd.list(&mine).await?;
                // An empty value matches no entry: every wanted key is put again.
                kvs.into_iter()
                    .map(|(k, _)| (format!("{}/{k}", self.node), String::new()))
                    .collect()
            }
        };
        *lease = current;
        let stale: Vec<String> = done
            .keys()
            .filter(|k| !want.contains_key(*k))
            .cloned()
            .collect();
        let result = async {
            for k in stale {
                self.etcd.delete(&format!("{}{k}", self.prefix)).await?;
                done.remove(&k);
            }
            for (k, v) in want {
                if done.get(k) != Some(v) {
                    let key = format!("{}{k}", self.prefix);
                    self.etcd.put(&key, v, current).await?;
                    done.insert(k.clone(), v.clone());
                }
            }
            Ok(())
        }
        .await;
        *written = Some(done);
        result
    }

    async fn watcher(self: Arc<Self>, agent: Handle) {
        loop {
            if let Err(e) = self.follow(&agent).await {
                tracing::warn!(error = %e, "watching the other nodes' endpoints failed; the node keeps what it has and reads them again");
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    /// One read of the prefix and the watch that follows it, until the watch breaks.
    async fn follow(&self, agent: &Handle) -> Result<(), String> {
        let (kvs, revision) = self
            .etcd
            .list(&self.prefix)
            .await
            .map_err(|e| e.to_string())?;
        let mut remote = BTreeMap::new();
        for (suffix, value) in kvs {
            self.take(&mut remote, &suffix, Some(&value));
        }
        self.hand_over(agent, &remote).await;
        let mut client = self.etcd.client();
        let opts = etcd_client::WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1);
        let mut stream = client
            .watch(self.prefix.as_str(), Some(opts))
            .await
            .map_err(|e| describe(&e))?;
        loop {
            let mut batch = match stream.message().await {
                Ok(Some(r)) if !r.canceled() => vec![r],
                Ok(Some(r)) => return Err(format!("watch canceled: {}", r.cancel_reason())),
                Ok(None) => return Err("watch ended".into()),
                Err(e) => return Err(describe(&e)),
            };
            // What arrived meanwhile goes in the same hand-over.
            while let Ok(Ok(Some(r))) = tokio::time::timeout(Duration::ZERO, stream.message()).await
            {
                batch.push(r);
            }
            for r in &batch {
                for ev in r.events() {
                    let Some(kv) = ev.kv() else { continue };
                    let Some(suffix) = kv.key_str().ok().and_then(|k| k.strip_prefix(&self.prefix))
                    else {
                        continue;
                    };
                    let value =
                        (ev.event_type() == etcd_client::EventType::Put).then(|| kv.value());
                    self.take(&mut remote, suffix, value);
                }
            }
            self.hand_over(agent, &remote).await;
        }
    }

    /// Puts (`Some`) or removes (`None`) the entry of key suffix `suffix` in `remote`; an
    /// entry of this node is ignored, one that does not parse is dropped with a log line.
    fn take(
        &self,
        remote: &mut BTreeMap<String, RemoteEndpoint>,
        suffix: &str,
        value: Option<&[u8]>,
    ) {
        if suffix.split('/').next() == Some(self.node.as_str()) {
            return;
        }
        let name = format!("kvstore:{suffix}");
        match value.map(|v| parse_remote(suffix, v)) {
            None => {
                remote.remove(&name);
            }
            Some(Ok((name, r))) => {
                remote.insert(name, r);
            }
            Some(Err(why)) => {
                tracing::warn!(
                    key = format!("{}{suffix}", self.prefix),
                    why,
                    "skipping another node's ipcache entry"
                );
                remote.remove(&name);
            }
        }
    }

    async fn hand_over(&self, agent: &Handle, remote: &BTreeMap<String, RemoteEndpoint>) {
        let want = remote.clone();
        if let Err(e) = agent.write(move |a| a.apply_remote(&want)).await {
            tracing::warn!(error = %e, "applying the other nodes' endpoints failed");
        }
    }
}
