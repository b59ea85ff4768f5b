//! The agent's side of the cluster-wide ipcache (`kvstore::sync`): the other nodes'
//! endpoints applied through the writer like any change (all or nothing for the datapath and
//! the L7 proxy's table, no new revision; kept in the kvstore's cache file, not in the
//! journal, and restored at start until etcd gives them again), and this node's endpoints
//! handed to the kvstore after every change.

use super::Agent;
use crate::change::Change;
use crate::config::AgentConfig;
use crate::error::AgentError;
use crate::remote::{diff, RemoteEndpoint};
use crate::world::World;
use std::collections::BTreeMap;

impl Agent {
    /// Makes the world's remote endpoints `want` and brings the datapath's ipcache and the
    /// endpoints whose policy they change to it. An endpoint refused by the world (an address
    /// this node already gives another endpoint) is skipped with a log line; should the
    /// datapath refuse the result, nothing of it stays.
    pub fn apply_remote(
        &mut self,
        want: &BTreeMap<String, RemoteEndpoint>,
    ) -> Result<(), AgentError> {
        let changes = diff(self.world().remote(), want);
        if changes.is_empty() {
            return Ok(());
        }
        let mut undo = Vec::new();
        for c in changes {
            let name = match &c {
                Change::Remote { name, .. } => name.clone(),
                _ => String::new(),
            };
            let applied = self.world_mut().apply(c);
            match applied {
                Ok(inverse) => undo.push(inverse),
                Err(e @ AgentError::Invalid { .. }) if !self.world().half_applied => {
                    tracing::warn!(endpoint = name, error = %e, "skipping another node's endpoint");
                }
                Err(e) => return Err(self.rollback(undo, e)),
            }
        }
        self.enforce_unversioned(undo)?;
        super::super::kvstore::retain_in_use(&self.cfg, &self.world().engine.cluster);
        if let Some(sync) = &self.cfg.ipcache_sync {
            sync.remember(self.world().remote());
        }
        Ok(())
    }

    /// Hands this node's endpoints to the kvstore (when it shares the ipcache).
    pub(super) fn publish_local(&self) {
        let Some(sync) = &self.cfg.ipcache_sync else {
            return;
        };
        let world = self.world();
        let cluster = &world.engine.cluster;
        let entries =
            crate::kvstore::ipcache::local_entries(&self.cfg.node, world.endpoints.iter(), |id| {
                cluster.identity(id).map(|i| i.labels.clone())
            });
        sync.publish(entries);
    }

    /// The remote endpoints of the world `old`, applied to the rebuilt world `new`.
    pub(super) fn carry_remote(old: &World, new: &mut World) {
        put_remote(
            new,
            old.remote(),
            "a remote endpoint did not survive the rebuild",
        );
    }

    /// At start: the remote endpoints the previous run kept (`kvstore::remote_cache`), into
    /// the world before its first sync, until the kvstore's watch reads etcd again. One the
    /// world refuses (an address of a local endpoint, a label set etcd cannot number now) is
    /// left out with a log line.
    pub(super) fn restore_remote(cfg: &AgentConfig, world: &mut World) {
        let Some(sync) = &cfg.ipcache_sync else {
            return;
        };
        let restored = sync.restore();
        if restored.is_empty() {
            return;
        }
        put_remote(world, &restored, "a kept remote endpoint is not restored");
        tracing::info!(
            endpoints = world.remote().len(),
            "the other nodes' endpoints of the previous run restored, until etcd gives them again"
        );
    }
}

/// Puts every endpoint of `remote` into `world` (each refused one logged with `refused`), and
/// refreshes it.
fn put_remote(world: &mut World, remote: &BTreeMap<String, RemoteEndpoint>, refused: &str) {
    for (name, r) in remote {
        let change = Change::Remote {
            name: name.clone(),
            to: Some(r.clone()),
        };
        if let Err(e) = world.apply(change) {
            tracing::warn!(endpoint = name, error = %e, "{refused}");
        }
    }
    if let Err(e) = world.refresh() {
        tracing::warn!(error = %e, "refreshing the world");
    }
}
