//! Applying a change to the world, and undoing it. Policies, Pods, Namespaces and local
//! endpoints are applied incrementally (`change.rs`, each change returning its inverse). The
//! objects the cluster holds whole — CiliumCIDRGroups, Services, EndpointSlices and Nodes, which
//! peers (`cidrGroupRef`, `toServices`) and node addresses resolve through — are not: for a
//! change to any of them the agent builds the world the persisted state would be after the
//! change (every source parsed again, every inventory kind in the cluster, the other nodes'
//! endpoints and the learned `toFQDNs` addresses carried over) and puts it in place of the
//! current one. Only the local endpoints
//! whose configuration or map state differ between the two are brought to the datapath (which
//! itself writes only differing entries); should anything refuse the change, the previous
//! world is put back.

use super::Agent;
use crate::change::Change;
use crate::error::AgentError;
use crate::store::Edit;
use crate::world::World;
use std::collections::BTreeSet;

/// How to undo a change to the world.
pub(super) enum Undo {
    /// The inverses of incrementally applied changes, in the order they were applied.
    Changes(Vec<Change>),
    /// The world a rebuilt one replaced.
    World(Box<World>),
}

impl From<Vec<Change>> for Undo {
    fn from(changes: Vec<Change>) -> Self {
        Undo::Changes(changes)
    }
}

/// The local endpoints whose configuration or map state differ between `old` and `new`
/// (added and removed ones included).
fn changed_endpoints(old: &World, new: &World) -> BTreeSet<u16> {
    old.endpoints
        .keys()
        .chain(new.endpoints.keys())
        .copied()
        .filter(|id| {
            old.endpoints.get(id) != new.endpoints.get(id)
                || old.policies.get(id) != new.policies.get(id)
        })
        .collect()
}

/// What a world built from the persisted state takes over from the one it replaces: the other
/// nodes' endpoints, the learned `toFQDNs` addresses.
pub(super) fn carry_over(old: &World, new: &mut World) -> Result<(), AgentError> {
    Agent::carry_remote(old, new);
    new.carry_fqdn(old);
    new.refresh().map(drop)
}

impl Agent {
    /// Builds the world of the persisted state after `edit` and puts it in place; returns how
    /// to undo that and the local endpoints it changed. An invalid result (a CIDR group,
    /// Service or Node another source defines too, an address two workloads claim, a pod a
    /// local endpoint uses withdrawn) is refused with nothing changed. The build runs without
    /// the world's lock: reads go on meanwhile.
    pub(super) fn swap_rebuilt(
        &mut self,
        edit: &Edit,
    ) -> Result<(Undo, BTreeSet<u16>), AgentError> {
        let next = self.persisted.with_edit(edit);
        let mut built = World::build(&next, &self.cfg)?;
        let touched = {
            let old = self.world();
            carry_over(&old, &mut built)?;
            changed_endpoints(&old, &built)
        };
        let old = std::mem::replace(&mut *self.world_mut(), built);
        // Rule ids are renumbered: the policy view is rendered again.
        self.policy_changed = true;
        Ok((Undo::World(Box::new(old)), touched))
    }

    /// Applies `changes` to the world incrementally and refreshes what they touched; returns
    /// their inverses and the local endpoints touched. On error nothing stays applied.
    pub(super) fn apply_changes(
        &mut self,
        changes: Vec<Change>,
    ) -> Result<(Undo, BTreeSet<u16>), AgentError> {
        let mut undo = Vec::new();
        for c in changes {
            let applied = self.world_mut().apply(c);
            match applied {
                Ok(inverse) => undo.push(inverse),
                Err(e) => return Err(self.rollback(undo, e)),
            }
        }
        let refreshed = self.world_mut().refresh();
        match refreshed {
            Ok(touched) => Ok((Undo::Changes(undo), touched)),
            Err(e) => Err(self.rollback(undo, e)),
        }
    }

    /// Undoes applied changes (their inverses, last first, or the world a rebuilt one
    /// replaced put back) and returns `err`. Should the failed change have been applied in
    /// part, or undoing fail, the world is rebuilt from the persisted state.
    pub(super) fn rollback(&mut self, undo: impl Into<Undo>, err: AgentError) -> AgentError {
        let undo = match undo.into() {
            Undo::World(old) => {
                *self.world_mut() = *old;
                return err;
            }
            Undo::Changes(undo) => undo,
        };
        // A change that failed after its checks left a part applied that has no inverse.
        if std::mem::take(&mut self.world_mut().half_applied) {
            tracing::warn!(error = %err, "a refused change was applied in part; rebuilding");
            self.rebuild();
            return err;
        }
        let undone = undo
            .into_iter()
            .rev()
            .try_for_each(|inverse| self.world_mut().apply(inverse).map(drop))
            .and_then(|()| self.world_mut().refresh().map(drop));
        if let Err(e) = undone {
            tracing::error!(error = %e, "undoing a refused change failed; rebuilding");
            self.rebuild();
        }
        err
    }
}
