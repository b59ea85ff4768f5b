//! Cluster identities allocated through etcd. A label set `L` (its canonical text) with number
//! `N` is stored as two keys, `PREFIX/id/N` → `L` and `PREFIX/value/L` → `N`, created together
//! by one transaction that succeeds only if both are absent. A node looks `PREFIX/value/L` up
//! first; if it is missing it tries the number local allocation would give, and on a failed
//! transaction either takes the number another node stored for `L` meanwhile, or (`N` held by
//! another label set) tries the next number. Every node therefore agrees on every number, and
//! two label sets never share one, whatever the order or concurrency of allocations.

use super::etcd::{Created, Etcd};
use compiler::identity::SharedIdentities;
use ir::NumericIdentity;
use std::collections::HashMap;
use std::sync::Mutex;

pub const DEFAULT_PREFIX: &str = "/cilium-policy/identities";
/// Numbers tried for one label set before giving up (each try is one transaction).
const MAX_PROBES: u32 = 1024;
/// The cluster identity range (as [`compiler::identity::IdAllocator::cluster`]).
const FIRST: u32 = NumericIdentity::MIN_ALLOCATED.0;
const LAST: u32 = 65535;

#[derive(Debug)]
pub struct EtcdIdentities {
    etcd: Etcd,
    prefix: String,
    /// Numbers this agent has read or allocated: they never change while stored, so each label
    /// set costs one lookup per agent run (the agent rebuilds its cluster on changes).
    known: Mutex<HashMap<String, NumericIdentity>>,
}

impl EtcdIdentities {
    pub fn new(etcd: Etcd, prefix: &str) -> EtcdIdentities {
        EtcdIdentities {
            etcd,
            prefix: prefix.trim_end_matches('/').to_string(),
            known: Mutex::new(HashMap::new()),
        }
    }

    fn parse(&self, key: &str, v: &str) -> Result<NumericIdentity, String> {
        match v.parse::<u32>() {
            Ok(n) if (FIRST..=LAST).contains(&n) => Ok(NumericIdentity(n)),
            _ => Err(format!(
                "{}: {}/value/{key} holds {v:?}, not an identity in {FIRST}..={LAST}",
                self.etcd.endpoint(),
                self.prefix
            )),
        }
    }
}

impl SharedIdentities for EtcdIdentities {
    fn allocate(&self, key: &str, candidate: NumericIdentity) -> Result<NumericIdentity, String> {
        if let Some(id) = self.known.lock().ok().and_then(|k| k.get(key).copied()) {
            return Ok(id);
        }
        let id = self.fetch_or_create(key, candidate)?;
        if let Ok(mut k) = self.known.lock() {
            k.insert(key.to_string(), id);
        }
        Ok(id)
    }
}

impl EtcdIdentities {
    fn fetch_or_create(
        &self,
        key: &str,
        candidate: NumericIdentity,
    ) -> Result<NumericIdentity, String> {
        let value_key = format!("{}/value/{key}", self.prefix);
        if let Some(v) = self.etcd.get(&value_key).map_err(|e| e.to_string())? {
            return self.parse(key, &v);
        }
        let mut n = candidate.0.clamp(FIRST, LAST);
        for _ in 0..MAX_PROBES {
            let id_key = format!("{}/id/{n}", self.prefix);
            let outcome = self
                .etcd
                .create_both((&id_key, key), (&value_key, &n.to_string()))
                .map_err(|e| e.to_string())?;
            match outcome {
                Created::Yes => {
                    tracing::info!(
                        labels = key,
                        identity = n,
                        "identity allocated in the kvstore"
                    );
                    return Ok(NumericIdentity(n));
                }
                // Another node allocated this label set meanwhile: its number wins.
                Created::No {
                    second: Some(v), ..
                } => return self.parse(key, &v),
                // The number belongs to another label set: probe on.
                Created::No { .. } => n = if n == LAST { FIRST } else { n + 1 },
            }
        }
        Err(format!(
            "{}: no free identity for {key} after {MAX_PROBES} tries from {}",
            self.etcd.endpoint(),
            candidate.0
        ))
    }
}
