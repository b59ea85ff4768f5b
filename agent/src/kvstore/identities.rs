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
//! Every node therefore agrees on every number, two label sets never share one, and a number
//! is freed only when no node claims its label set, whatever the concurrency.

use super::etcd::{op, Etcd};
use compiler::identity::SharedIdentities;
use ir::NumericIdentity;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

pub const DEFAULT_PREFIX: &str = "/cilium-policy/identities";
/// Transactions tried for one label set before giving up.
const MAX_TRIES: u32 = 1024;
/// The cluster identity range (as [`compiler::identity::IdAllocator::cluster`]).
const FIRST: u32 = NumericIdentity::MIN_ALLOCATED.0;
const LAST: u32 = 65535;

#[derive(Debug)]
pub struct EtcdIdentities {
    etcd: Etcd,
    prefix: String,
    node: String,
    /// Label sets this node claims, with their numbers (each costs one lookup per claim).
    known: Mutex<HashMap<String, NumericIdentity>>,
    /// Claims made by earlier runs of this node, read at the first release.
    earlier: Mutex<Option<BTreeSet<String>>>,
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
    pub fn new(etcd: Etcd, prefix: &str, node: &str) -> EtcdIdentities {
        EtcdIdentities {
            etcd,
            prefix: prefix.trim_end_matches('/').to_string(),
            node: node.to_string(),
            known: Mutex::new(HashMap::new()),
            earlier: Mutex::new(None),
        }
    }

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

    fn parse(&self, key: &str, v: &str) -> Result<u32, String> {
        match v.parse::<u32>() {
            Ok(n) if (FIRST..=LAST).contains(&n) => Ok(n),
            _ => Err(format!(
                "{}: {} holds {v:?}, not an identity in {FIRST}..={LAST}",
                self.etcd.endpoint(),
                self.value_key(key)
            )),
        }
    }

    fn fetch_or_create(&self, key: &str, candidate: NumericIdentity) -> Result<u32, String> {
        let e = |e: super::KvError| e.to_string();
        let value_key = self.value_key(key);
        let claims = self.claim_keys(key);
        let claim_ops = || claims.iter().map(|k| op::put(k, "")).collect::<Vec<_>>();
        let mut n = candidate.0.clamp(FIRST, LAST);
        let mut stored = self.etcd.get(&value_key).map_err(e)?;
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
                    .map_err(e)?;
                if t.succeeded {
                    return Ok(have);
                }
                // Freed (or replaced) meanwhile: start over from what is stored now.
                stored = t.values.into_iter().next().flatten();
                continue;
            }
            let id_key = self.id_key(n);
            let mut ops = vec![op::put(&id_key, key), op::put(&value_key, &n.to_string())];
            ops.extend(claim_ops());
            let t = self
                .etcd
                .txn(
                    vec![op::absent(&id_key), op::absent(&value_key)],
                    ops,
                    vec![op::get(&value_key)],
                )
                .map_err(e)?;
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
        Err(format!(
            "{}: no identity for {key} after {MAX_TRIES} tries from {}",
            self.etcd.endpoint(),
            candidate.0
        ))
    }

    /// Drops this node's claim on `l` and frees its number if no node claims it any more.
    fn release(&self, l: &str) -> Result<(), super::KvError> {
        let drop_claims = self.claim_keys(l).iter().map(|k| op::delete(k)).collect();
        self.etcd.txn(vec![], drop_claims, vec![])?;
        let value_key = self.value_key(l);
        let Some(v) = self.etcd.get(&value_key)? else {
            return Ok(());
        };
        let freed = self.etcd.txn(
            vec![op::none_under(&self.users(l)), op::holds(&value_key, &v)],
            vec![
                op::delete(&value_key),
                op::delete(&format!("{}/id/{v}", self.prefix)),
            ],
            vec![],
        )?;
        if freed.succeeded {
            tracing::info!(labels = l, identity = %v, "identity freed in the kvstore");
        }
        Ok(())
    }
}

impl SharedIdentities for EtcdIdentities {
    fn allocate(&self, key: &str, candidate: NumericIdentity) -> Result<NumericIdentity, String> {
        if let Some(id) = self.known.lock().ok().and_then(|k| k.get(key).copied()) {
            return Ok(id);
        }
        let id = NumericIdentity(self.fetch_or_create(key, candidate)?);
        if let Ok(mut k) = self.known.lock() {
            k.insert(key.to_string(), id);
        }
        Ok(id)
    }

    fn retain(&self, in_use: &BTreeSet<String>) -> Result<(), String> {
        let mut earlier = self.earlier.lock().map_err(|e| e.to_string())?;
        if earlier.is_none() {
            let index = format!("{}/nodes/{}/", self.prefix, self.node);
            let keys = self.etcd.keys_under(&index).map_err(|e| e.to_string())?;
            *earlier = Some(keys.iter().filter_map(|k| unhex(k)).collect());
        }
        let mut known = self.known.lock().map_err(|e| e.to_string())?;
        let claimed: BTreeSet<String> = known
            .keys()
            .cloned()
            .chain(earlier.iter().flatten().cloned())
            .collect();
        for l in claimed.difference(in_use) {
            self.release(l).map_err(|e| e.to_string())?;
            known.remove(l);
            if let Some(e) = earlier.as_mut() {
                e.remove(l);
            }
        }
        Ok(())
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
