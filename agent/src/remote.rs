//! Endpoints of other nodes, learnt from the kvstore (`kvstore::sync`): each is a cluster
//! endpoint named `NODE/ID` with the identity labels and addresses its node published, so
//! that it enters the ipcache and the selectors like any workload. They are not in the
//! journal: the kvstore is their source, a rebuilt world takes them over from the one it
//! replaces, and the kvstore's cache file (`kvstore::remote_cache`) keeps them for a start
//! while etcd does not answer.

use super::change::Change;
use super::error::AgentError;
use super::world::World;
use compiler::cluster::ClusterEndpoint;
use ir::{LabelSet, NumericIdentity};
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

/// An endpoint of another node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteEndpoint {
    pub node: String,
    /// Its identity's labels (the identity-relevant ones).
    pub labels: LabelSet,
    /// The identity its node gave it (this node allocates the labels itself, and warns if the
    /// numbers differ).
    pub identity: NumericIdentity,
    pub ips: Vec<IpAddr>,
}

/// The changes that turn `have` into `want`: removals first, so that an address moving
/// between two remote endpoints is free when the second one claims it.
pub fn diff(
    have: &BTreeMap<String, RemoteEndpoint>,
    want: &BTreeMap<String, RemoteEndpoint>,
) -> Vec<Change> {
    let gone = have
        .keys()
        .filter(|k| !want.contains_key(*k))
        .map(|name| Change::Remote {
            name: name.clone(),
            to: None,
        });
    let new = want
        .iter()
        .filter(|(k, v)| have.get(*k) != Some(v))
        .map(|(name, r)| Change::Remote {
            name: name.clone(),
            to: Some(r.clone()),
        });
    gone.chain(new).collect()
}

impl World {
    /// The remote endpoints the world holds.
    pub fn remote(&self) -> &BTreeMap<String, RemoteEndpoint> {
        &self.remote
    }

    /// Puts or removes the remote endpoint `name`; returns the inverse. An address that a
    /// local endpoint or a workload holds is refused before anything changes.
    pub(super) fn apply_remote(
        &mut self,
        name: String,
        to: Option<RemoteEndpoint>,
    ) -> Result<Change, AgentError> {
        if let Some(r) = &to {
            self.check_addresses(&name, &r.ips, &HashSet::new())?;
            self.prenumber([r.labels.clone()])?;
            let cep = ClusterEndpoint {
                name: name.clone(),
                namespace: None,
                kind: "Remote".into(),
                workload: None,
                labels: r.labels.clone(),
                identity: NumericIdentity::WILDCARD,
                ips: r.ips.clone(),
                ports: Vec::new(),
                origin: Some(format!("kvstore, node {}", r.node)),
            };
            let replaced = self.engine.cluster.endpoint(&name).is_some();
            let deltas = match self.engine.add_endpoint(cep) {
                Ok(deltas) => deltas,
                Err(e) => {
                    // The engine took the endpoint it replaces out before it failed.
                    self.half_applied |= replaced;
                    return Err(AgentError::cluster(e, AgentError::Internal));
                }
            };
            self.note(deltas);
            let ours = self.engine.cluster.endpoint(&name).map(|e| e.identity);
            if ours.is_some_and(|n| n != r.identity) {
                tracing::warn!(endpoint = name, published = r.identity.0, here = ?ours,
                    "a remote endpoint's identity differs from this node's number for its labels");
            }
        }
        let was = self.remote.remove(&name);
        if let Some(old) = &was {
            self.release_addresses(&name, &old.ips);
        }
        match to {
            Some(r) => {
                self.claim_addresses(&name, &r.ips);
                self.remote.insert(name.clone(), r);
            }
            None => {
                let deltas = self.engine.remove_endpoint(&name);
                self.note(deltas);
            }
        }
        Ok(Change::Remote { name, to: was })
    }
}
