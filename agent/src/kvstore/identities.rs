//! Cluster identities allocated through etcd, with per-node claims and garbage collection.
//!
//! A label set `L` (its canonical text) with number `N` is two keys, `PREFIX/id/N` → `L` and
//! `PREFIX/value/L` → `N`. A node using `L` claims it with `PREFIX/users/HEX(L)/NODE` (and
//! `PREFIX/nodes/NODE/HEX(L)`, its own index, read back after a restart).
//!
//! - Allocation: look `PREFIX/value/L` up; if it holds `N`, claim `L` in a transaction that
//!   requires `PREFIX/value/L` to still hold `N`. If it is missing, create the pair and the
//!   claim in one transaction that requires `PREFIX/id/N` and `PREFIX/value/L` to be absent,
//!   trying the number local allocation would give first; on failure take the number another
//!   node stored for `L` meanwhile, or (`N` held by another label set) try the next number.
//! - Release ([`SharedIdentities::retain`], after every change): drop this node's claims on
//!   label sets it no longer uses, then delete the pair in a transaction that requires no claim
//!   under `PREFIX/users/HEX(L)/` and `PREFIX/value/L` to still hold `N`.
//!
//! - Leases: both claim keys are put under the node's lease ([`Lease`]). When the node dies
//!   they vanish a TTL later; every agent watches `PREFIX/users/` and, for each claim deleted,
//!   frees the number as a release does (and sweeps all of `PREFIX/value/` whenever its watch
//!   starts, so that nothing deleted while it was not watching stays). When this node's lease
//!   expired while etcd did not answer, its claims are put again under the new lease.
//! - Offline start (`offline`): the numbers are cached in the state directory
//!   ([`super::id_cache`]); at start, a cached label set gets its cached number when etcd does
//!   not answer, and is claimed with it once etcd answers, as after an expired lease.
//!
//! Every node therefore agrees on every number, two label sets never share one, and a number
//! is freed only when no node claims its label set, whatever the concurrency.

use super::etcd::{op, Etcd};
use super::id_cache::IdCache;
use super::lease::Lease;
use super::KvError;
use compiler::identity::SharedIdentities;
use ir::NumericIdentity;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const DEFAULT_PREFIX: &str = "/cilium-policy/identities";
/// Transactions tried for one label set before giving up.
const MAX_TRIES: u32 = 1024;
/// The cluster identity range (as [`compiler::identity::IdAllocator::cluster`]).
const FIRST: u32 = NumericIdentity::MIN_ALLOCATED.0;
const LAST: u32 = super::ipcache::MAX_IDENTITY;

/// Pause before watching again after a watch failed.
const REWATCH: Duration = Duration::from_secs(1);

#[path = "identities_offline.rs"]
mod offline;

#[derive(Debug)]
pub struct EtcdIdentities {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    etcd: Etcd,
    lease: Lease,
    prefix: String,
    node: String,
    /// Label sets this node claims, with their numbers (each costs one lookup per claim).
    known: Mutex<HashMap<String, NumericIdentity>>,
    /// Claims made by earlier runs of this node, read at the first release.
    earlier: Mutex<Option<BTreeSet<String>>>,
    /// The numbers the previous run cached, given while etcd does not answer until the first
    /// release (after the agent's start).
    cached: Mutex<HashMap<String, NumericIdentity>>,
    /// Label sets numbered from `cached` without etcd, not claimed under a lease yet.
    unclaimed: Mutex<BTreeSet<String>>,
    /// Wakes the task that claims them.
    wake: tokio::sync::Notify,
    /// Held while claims are released or made again, so that neither undoes the other.
    claiming: tokio::sync::Mutex<()>,
    /// `known` (and `cached` until it is dropped) on disk.
    file: IdCache,
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect();
    String::from_utf8(bytes?).ok()
}

impl EtcdIdentities {
    /// The allocator of `node` with the numbers cached in `file`, and its background tasks:
    /// claims put again under each new lease (and made for label sets numbered from the cache),
    /// and numbers of label sets no node claims any more freed.
    pub fn start(
        etcd: Etcd,
        lease: Lease,
        prefix: &str,
        node: &str,
        file: IdCache,
    ) -> EtcdIdentities {
        let cached = super::id_cache::load(&file).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the cached identity numbers are not used: \
                label sets need etcd to be numbered at start");
            Default::default()
        });
        let inner = Arc::new(Inner {
            etcd: etcd.clone(),
            lease,
            prefix: prefix.trim_end_matches('/').to_string(),
            node: node.to_string(),
            known: Mutex::new(HashMap::new()),
            earlier: Mutex::new(None),
            cached: Mutex::new(cached.into_iter().collect()),
            unclaimed: Mutex::new(BTreeSet::new()),
            wake: tokio::sync::Notify::new(),
            claiming: tokio::sync::Mutex::new(()),
            file,
        });
        etcd.runtime().spawn(inner.clone().claim_again());
        etcd.runtime().spawn(inner.clone().free_unclaimed());
        EtcdIdentities { inner }
    }
}

impl Inner {
    fn value_key(&self, l: &str) -> String {
        format!("{}/value/{l}", self.prefix)
    }
    fn id_key(&self, n: u32) -> String {
        format!("{}/id/{n}", self.prefix)
    }
    fn users(&self, l: &str) -> String {
        format!("{}/users/{}/", self.prefix, hex(l))
    }
    fn claim_keys(&self, l: &str) -> [String; 2] {
        [
            format!("{}{}", self.users(l), self.node),
            format!("{}/nodes/{}/{}", self.prefix, self.node, hex(l)),
        ]
    }

    fn parse(&self, key: &str, v: &str) -> Result<u32, KvError> {
        match v.parse::<u32>() {
            Ok(n) if (FIRST..=LAST).contains(&n) => Ok(n),
            _ => Err(KvError::Stored {
                endpoint: self.etcd.endpoint().to_string(),
                key: self.value_key(key),
                why: format!("holds {v:?}, not an identity in {FIRST}..={LAST}"),
            }),
        }
    }

    async fn fetch_or_create(&self, key: &str, candidate: NumericIdentity) -> Result<u32, KvError> {
        let value_key = self.value_key(key);
        let claims = self.claim_keys(key);
        let lease = self.lease.id().await?;
        let claim_ops = || {
            claims
                .iter()
                .map(|k| op::put(k, "", lease))
                .collect::<Vec<_>>()
        };
        let mut n = candidate.0.clamp(FIRST, LAST);
        let mut stored = self.etcd.get(&value_key).await?;
        for _ in 0..MAX_TRIES {
            if let Some(v) = stored.take() {
                let have = self.parse(key, &v)?;
                let t = self
                    .etcd
                    .txn(
                        vec![op::holds(&value_key, &v)],
                        claim_ops(),
                        vec![op::get(&value_key)],
                    )
                    .await?;
                if t.succeeded {
                    return Ok(have);
                }
                // Freed (or replaced) meanwhile: start over from what is stored now.
                stored = t.values.into_iter().next().flatten();
                continue;
            }
            let t = self.store_pair(key, n, claim_ops()).await?;
            if t.succeeded {
                tracing::info!(
                    labels = key,
                    identity = n,
                    "identity allocated in the kvstore"
                );
                return Ok(n);
            }
            stored = t.values.into_iter().next().flatten();
            if stored.is_none() {
                // The number belongs to another label set: probe on.
                n = if n == LAST { FIRST } else { n + 1 };
            }
        }
        Err(KvError::Exhausted {
            endpoint: self.etcd.endpoint().to_string(),
            labels: key.to_string(),
            tries: MAX_TRIES,
            from: candidate.0,
        })
    }

    /// Stores the pair of `l` numbered `n` with `claims`, in one transaction that requires
    /// both keys to be absent; else reads what `PREFIX/value/L` holds.
    async fn store_pair(
        &self,
        l: &str,
        n: u32,
        claims: Vec<etcd_client::TxnOp>,
    ) -> Result<super::etcd::TxnResult, KvError> {
        let (value_key, id_key) = (self.value_key(l), self.id_key(n));
        let mut ops = vec![
            op::put(&id_key, l, 0),
            op::put(&value_key, &n.to_string(), 0),
        ];
        ops.extend(claims);
        self.etcd
            .txn(
                vec![op::absent(&id_key), op::absent(&value_key)],
                ops,
                vec![op::get(&value_key)],
            )
            .await
    }

    /// Drops this node's claim on `l` and frees its number if no node claims it any more.
    async fn release(&self, l: &str) -> Result<(), KvError> {
        let drop_claims = self.claim_keys(l).iter().map(|k| op::delete(k)).collect();
        self.etcd.txn(vec![], drop_claims, vec![]).await?;
        self.free_if_unclaimed(l).await
    }

    /// Deletes the pair of `l` if no node claims `l` (in one transaction that requires it).
    async fn free_if_unclaimed(&self, l: &str) -> Result<(), KvError> {
        let value_key = self.value_key(l);
        let Some(v) = self.etcd.get(&value_key).await? else {
            return Ok(());
        };
        let freed = self
            .etcd
            .txn(
                vec![op::none_under(&self.users(l)), op::holds(&value_key, &v)],
                vec![
                    op::delete(&value_key),
                    op::delete(&format!("{}/id/{v}", self.prefix)),
                ],
                vec![],
            )
            .await?;
        if freed.succeeded {
            tracing::info!(labels = l, identity = %v, "identity freed in the kvstore");
        }
        Ok(())
    }

    /// Frees the numbers of label sets no node claims: all of them when a watch starts, then
    /// each label set whose claim is deleted (released, or expired with a node's lease).
    async fn free_unclaimed(self: Arc<Self>) {
        let users = format!("{}/users/", self.prefix);
        loop {
            let mut client = self.etcd.client();
            let opts = etcd_client::WatchOptions::new()
                .with_prefix()
                .with_filters([etcd_client::WatchFilterType::NoPut]);
            match client.watch(users.as_str(), Some(opts)).await {
                Ok(mut stream) => {
                    self.sweep().await;
                    loop {
                        let events = match stream.message().await {
                            Ok(Some(r)) if !r.canceled() => r,
                            Ok(_) => break,
                            Err(e) => {
                                tracing::debug!(error = %super::etcd::describe(&e), "kvstore watch ended");
                                break;
                            }
                        };
                        for ev in events.events() {
                            let Some(l) =
                                ev.kv().and_then(|kv| self.claimed_labels(&users, kv.key()))
                            else {
                                continue;
                            };
                            if let Err(e) = self.free_if_unclaimed(&l).await {
                                tracing::warn!(labels = l, error = %e, "freeing an unclaimed identity failed");
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %super::etcd::describe(&e), "kvstore watch failed")
                }
            }
            tokio::time::sleep(REWATCH).await;
        }
    }

    /// The label set of a claim key `USERS/HEX(L)/NODE`.
    fn claimed_labels(&self, users: &str, key: &[u8]) -> Option<String> {
        let rest = std::str::from_utf8(key).ok()?.strip_prefix(users)?;
        unhex(rest.split_once('/')?.0)
    }

    /// Tries to free every stored label set (see [`Inner::free_unclaimed`]).
    async fn sweep(&self) {
        let labels = match self
            .etcd
            .keys_under(&format!("{}/value/", self.prefix))
            .await
        {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "kvstore sweep failed");
                return;
            }
        };
        for l in labels {
            if let Err(e) = self.free_if_unclaimed(&l).await {
                tracing::debug!(labels = l, error = %e, "kvstore sweep failed");
                return;
            }
        }
    }

    async fn retain(&self, in_use: &BTreeSet<String>) -> Result<(), KvError> {
        let _claiming = self.claiming.lock().await;
        let unread = self.earlier.lock().map(|e| e.is_none()).unwrap_or(true);
        if unread {
            let index = format!("{}/nodes/{}/", self.prefix, self.node);
            let keys = self.etcd.keys_under(&index).await?;
            if let Ok(mut e) = self.earlier.lock() {
                *e = Some(keys.iter().filter_map(|k| unhex(k)).collect());
            }
        }
        let claimed: BTreeSet<String> = {
            let known = self
                .known
                .lock()
                .map(|k| k.keys().cloned().collect::<Vec<_>>());
            let earlier = self.earlier.lock().map(|e| e.clone().unwrap_or_default());
            known
                .unwrap_or_default()
                .into_iter()
                .chain(earlier.unwrap_or_default())
                .collect()
        };
        for l in claimed.difference(in_use) {
            self.release(l).await?;
            if let Ok(mut k) = self.known.lock() {
                k.remove(l);
            }
            if let Ok(mut e) = self.earlier.lock() {
                if let Some(e) = e.as_mut() {
                    e.remove(l);
                }
            }
            if let Ok(mut u) = self.unclaimed.lock() {
                u.remove(l);
            }
        }
        Ok(())
    }
}

impl SharedIdentities for EtcdIdentities {
    fn allocate(&self, key: &str, candidate: NumericIdentity) -> Result<NumericIdentity, String> {
        let inner = &self.inner;
        if let Some(id) = inner.known.lock().ok().and_then(|k| k.get(key).copied()) {
            return Ok(id);
        }
        // etcd is known not to answer: a cached number is given without waiting for it again.
        let offline = inner.offline_number(key);
        let id = match offline {
            Some(id) => id,
            None => {
                let (task, label) = (inner.clone(), key.to_string());
                let fetched = inner
                    .etcd
                    .block_on(async move { task.fetch_or_create(&label, candidate).await });
                match fetched {
                    Ok(n) => NumericIdentity(n),
                    Err(e) => inner.cached_number(key, &e).ok_or_else(|| e.to_string())?,
                }
            }
        };
        if let Ok(mut k) = inner.known.lock() {
            k.insert(key.to_string(), id);
        }
        inner.save_cache();
        Ok(id)
    }

    fn retain(&self, in_use: &BTreeSet<String>) -> Result<(), String> {
        let (task, in_use) = (self.inner.clone(), in_use.clone());
        let retained = self
            .inner
            .etcd
            .block_on(async move { task.retain(&in_use).await })
            .map_err(|e| e.to_string());
        // Every label set in use is numbered now: the cache served the start.
        if let Ok(mut c) = self.inner.cached.lock() {
            c.clear();
        }
        self.inner.save_cache();
        retained
    }
}

#[cfg(test)]
mod tests {
    use super::{hex, unhex};

    #[test]
    fn hex_round_trip() {
        let l = "k8s:app=web;k8s:io.kubernetes.pod.namespace=a/b";
        assert_eq!(unhex(&hex(l)).as_deref(), Some(l));
        assert_eq!(unhex("zz"), None);
    }
}
