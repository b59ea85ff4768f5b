//! Numbers without etcd, and claims made again once it answers.
//!
//! - The label sets the node claims are kept in `--state-dir/kvstore-identities.json`
//!   ([`super::super::id_cache`]), written when they change. At start, a label set that etcd
//!   cannot number (it does not answer) gets the number cached for it, if any; a label set not
//!   cached is refused as without the cache. After the first release (the end of the start),
//!   the cache gives no more numbers: only label sets the node holds are numbered without etcd.
//! - What was numbered from the cache is claimed under the node's lease as soon as there is
//!   one, as every claim is when the lease expired while etcd did not answer ([`Inner::reclaim`]):
//!   a number freed meanwhile is stored again for the same label set, one taken by another
//!   label set meanwhile is logged as a conflict. What fails is tried again.

use super::{op, Inner, KvError};
use ir::NumericIdentity;
use std::sync::Arc;
use std::time::Duration;

/// Pause before trying claims again that failed.
const RETRY: Duration = Duration::from_secs(1);

impl Inner {
    /// The cached number of `key` when etcd is known not to answer (there is no lease and a
    /// label set was numbered from the cache already), without waiting for etcd again.
    pub(super) fn offline_number(&self, key: &str) -> Option<NumericIdentity> {
        let waiting =
            self.lease.current() == 0 && self.unclaimed.lock().is_ok_and(|u| !u.is_empty());
        let id = waiting.then(|| self.cached.lock().ok()?.get(key).copied())??;
        self.numbered_offline(key, id, "etcd has not answered");
        Some(id)
    }

    /// The cached number of `key` when numbering it in etcd failed with `e` because etcd did
    /// not answer (not when etcd answered with something wrong).
    pub(super) fn cached_number(&self, key: &str, e: &KvError) -> Option<NumericIdentity> {
        if !matches!(e, KvError::Call { .. }) {
            return None;
        }
        let id = self.cached.lock().ok()?.get(key).copied()?;
        self.numbered_offline(key, id, &e.to_string());
        Some(id)
    }

    fn numbered_offline(&self, key: &str, id: NumericIdentity, why: &str) {
        tracing::warn!(
            labels = key,
            identity = id.0,
            why,
            file = %self.file.path().display(),
            "identity numbered from the cache without etcd; claimed once etcd answers"
        );
        // Known before it is to be claimed: the claiming task claims only known label sets.
        if let Ok(mut k) = self.known.lock() {
            k.insert(key.to_string(), id);
        }
        if let Ok(mut u) = self.unclaimed.lock() {
            u.insert(key.to_string());
        }
        self.wake.notify_one();
    }

    /// Writes the numbers the node holds (and the cached ones, until they are dropped) if they
    /// changed. A failure is logged: etcd stays the source, the cache only serves a start
    /// without it.
    pub(super) fn save_cache(&self) {
        let mut numbers: super::super::id_cache::Numbers = match self.cached.lock() {
            Ok(c) => c.iter().map(|(l, n)| (l.clone(), *n)).collect(),
            Err(_) => return,
        };
        if let Ok(k) = self.known.lock() {
            numbers.extend(k.iter().map(|(l, n)| (l.clone(), *n)));
        }
        if let Err(e) = super::super::id_cache::save(&self.file, &numbers) {
            tracing::warn!(error = %e, "caching the node's identity numbers failed");
        }
    }

    /// Claims `l` (numbered `n` by this node) again under `lease`: its claims expired with
    /// an earlier lease, or it was numbered from the cache. If the number was freed meanwhile,
    /// it is stored again (or claimed, when another node stored the same pair meanwhile); if
    /// another label set took it, or `l` another number, the conflict is logged (this node
    /// keeps enforcing with `n` until the agent restarts and renumbers).
    async fn reclaim(&self, l: &str, n: NumericIdentity, lease: i64) -> Result<(), KvError> {
        let value_key = self.value_key(l);
        let claims: Vec<_> = self
            .claim_keys(l)
            .iter()
            .map(|k| op::put(k, "", lease))
            .collect();
        let n_text = n.0.to_string();
        // Twice at most: once more when another node stored the same pair between the two.
        for _ in 0..2 {
            let held = self
                .etcd
                .txn(vec![op::holds(&value_key, &n_text)], claims.clone(), vec![])
                .await?;
            if held.succeeded {
                return Ok(());
            }
            let stored = self.store_pair(l, n.0, claims.clone()).await?;
            if stored.succeeded {
                return Ok(());
            }
            if stored.values.first() != Some(&Some(n_text.clone())) {
                break;
            }
        }
        tracing::error!(
            labels = l,
            identity = n.0,
            "while this node's claims were gone, its identity went to another label set \
             (or its label set to another identity); restart the agent to renumber"
        );
        Ok(())
    }

    /// Puts this node's claims again under every lease granted after the first, and claims
    /// the label sets numbered from the cache under the lease in force. Failures are tried
    /// again after [`RETRY`] (or at the next lease).
    pub(super) async fn claim_again(self: Arc<Self>) {
        let mut leases = self.lease.subscribe();
        // The lease every claim of `known` is under (0: none yet).
        let mut claimed = 0;
        loop {
            let lease = *leases.borrow_and_update();
            let mut failed = false;
            if lease != 0 {
                let _claiming = self.claiming.lock().await;
                let all = claimed != 0 && claimed != lease;
                let todo: Vec<(String, NumericIdentity)> = {
                    let known = self.known.lock().map(|k| k.clone()).unwrap_or_default();
                    let unclaimed = self.unclaimed.lock().unwrap_or_else(|e| e.into_inner());
                    known
                        .into_iter()
                        .filter(|(l, _)| all || unclaimed.contains(l))
                        .collect()
                };
                for (l, n) in &todo {
                    match self.reclaim(l, *n, lease).await {
                        Ok(()) => {
                            if let Ok(mut u) = self.unclaimed.lock() {
                                u.remove(l);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(labels = l, error = %e, "claiming again under the lease failed");
                            failed = true;
                        }
                    }
                }
                if !failed {
                    if !todo.is_empty() {
                        tracing::info!(
                            lease,
                            claims = todo.len(),
                            "kvstore claims put (again) under the lease"
                        );
                    }
                    claimed = lease;
                } else if claimed == 0 {
                    claimed = lease;
                }
            }
            tokio::select! {
                r = leases.changed() => if r.is_err() { return },
                () = self.wake.notified() => {}
                () = tokio::time::sleep(RETRY), if failed => {}
            }
        }
    }
}
