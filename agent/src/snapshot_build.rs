//! Building the snapshot after a write, in proportion to what the write changed: the views of
//! the endpoints the world refreshed are rebuilt and the others shared with the previous
//! snapshot; the identity list, the rule table, the default-deny attribution and the ipcache are
//! shared while they did not change. A snapshot taken from another world than the previous one
//! (rebuilt, or put back by an undo) is built whole.

use super::Agent;
use crate::model::{EndpointStatus, IdentityReply};
use crate::rule_table::RuleTable;
use crate::snapshot::{EndpointView, Enforcing, PolicyView, Snapshot};
use crate::world::{spec_name, World};
use ir::{Direction, LabelSet, NumericIdentity, RuleId};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// What the writer keeps between snapshots to tell whether the identities changed.
#[derive(Default)]
pub(crate) struct SnapshotCache {
    identities: Vec<(NumericIdentity, LabelSet)>,
}

impl Agent {
    /// Which revision the endpoints enforce now.
    fn enforcing(&self) -> Enforcing {
        Enforcing {
            synced: self.synced,
            revision: self.persisted.revision,
            datapath: self.datapath.is_some(),
            lagging: self.lagging.clone(),
        }
    }

    /// Endpoint `id` as reads see it (`None`: no such endpoint).
    fn endpoint_view(&self, world: &World, id: u16) -> Option<EndpointView> {
        let spec = self.persisted.endpoints.get(&id)?;
        let local = world.endpoints.get(&id)?;
        let policy = world.policies.get(&id).cloned();
        let name = spec_name(spec);
        let addr = world
            .engine
            .cluster
            .endpoint(&name)
            .and_then(|e| e.ips.first().copied());
        let status = EndpointStatus {
            id,
            iface: spec.iface.clone(),
            container_id: spec.container_id.clone(),
            pod: spec.pod.clone(),
            labels: local.labels.iter().map(|l| l.to_string()).collect(),
            identity: local.identity.0,
            ipv4: local.ipv4,
            ipv6: local.ipv6,
            ingress_enforced: policy.as_ref().is_some_and(|p| p.ingress_enforced),
            egress_enforced: policy.as_ref().is_some_and(|p| p.egress_enforced),
            policy_revision: 0,
            policy_entries: policy.as_ref().map_or(0, |p| p.entries.len()),
            state: String::new(),
            error: None,
        };
        Some(EndpointView {
            status,
            name,
            addr,
            policy,
        })
    }

    /// Endpoint `id`'s status now.
    pub(crate) fn status(&self, id: u16) -> Option<EndpointStatus> {
        let view = self.endpoint_view(&self.world(), id)?;
        Some(self.enforcing().status(&view))
    }

    /// Every endpoint's view: `previous`'s with those of `refreshed` rebuilt, or all of them
    /// built (`previous` is `None`, or of another world).
    fn endpoint_views(
        &self,
        world: &World,
        previous: Option<&Arc<BTreeMap<u16, Arc<EndpointView>>>>,
        refreshed: &BTreeSet<u16>,
    ) -> Arc<BTreeMap<u16, Arc<EndpointView>>> {
        let want = self.persisted.endpoints.len();
        if let Some(p) = previous {
            if refreshed.is_empty() && p.len() == want {
                return p.clone();
            }
            let mut views = BTreeMap::clone(p);
            for id in refreshed {
                match self.endpoint_view(world, *id) {
                    Some(v) => views.insert(*id, Arc::new(v)),
                    None => views.remove(id),
                };
            }
            // Every write that adds or removes an endpoint refreshes it; should one not have,
            // the views are built whole rather than shown short.
            if views.len() == want {
                return Arc::new(views);
            }
            tracing::warn!("snapshot: the refreshed endpoints missed one; building every view");
        }
        let all = self.persisted.endpoints.keys();
        let views = all.filter_map(|id| Some((*id, Arc::new(self.endpoint_view(world, *id)?))));
        Arc::new(views.collect())
    }

    /// The identities: `previous` while the cluster's are the ones it was built from.
    fn identity_list(
        &mut self,
        world: &World,
        previous: Option<&Arc<Vec<IdentityReply>>>,
    ) -> Arc<Vec<IdentityReply>> {
        let now = world.engine.cluster.identities();
        let cache = &self.snapshot_cache.identities;
        let same = now.len() == cache.len()
            && now
                .zip(cache)
                .all(|(i, (id, labels))| i.id == *id && i.labels == *labels);
        if let (true, Some(p)) = (same, previous) {
            return p.clone();
        }
        let now = world.engine.cluster.identities();
        self.snapshot_cache.identities = now.map(|i| (i.id, i.labels.clone())).collect();
        let replies = self
            .snapshot_cache
            .identities
            .iter()
            .map(|(id, labels)| IdentityReply {
                id: id.0,
                labels: labels.iter().map(|l| l.to_string()).collect(),
            });
        Arc::new(replies.collect())
    }

    /// The view reads get until the next write. Rebuilds only what the write changed (see the
    /// module's documentation).
    pub fn snapshot(&mut self, previous: Option<&Snapshot>) -> Snapshot {
        let policy_changed = std::mem::take(&mut self.policy_changed);
        let refreshed = self.world_mut().take_refreshed();
        let world_guard = self.world.clone();
        let world = world_guard.read().unwrap_or_else(|e| e.into_inner());
        let previous = previous.filter(|p| p.world == world.instance);
        let rules = RuleTable::of(previous.map(|p| &p.rules), &world);
        let policy = match previous {
            Some(p) if !policy_changed => p.policy.clone(),
            _ => (!self.persisted.sources.is_empty()).then(|| {
                Arc::new(PolicyView::new(
                    self.persisted.source_docs(),
                    self.persisted.deleted.clone(),
                    world.live_rule_ids(),
                    rules.clone(),
                ))
            }),
        };
        let endpoints = self.endpoint_views(&world, previous.map(|p| &p.endpoints), &refreshed);
        let isolating = match previous {
            Some(p) if !policy_changed => {
                isolating_of(&world, &endpoints, &refreshed, &p.isolating)
            }
            _ => isolating_of(&world, &endpoints, &BTreeSet::new(), &Arc::default()),
        };
        let cluster = &world.engine.cluster;
        let ipcache = match previous {
            Some(p) if p.ipcache.0 == *cluster.ipcache() => p.ipcache.clone(),
            _ => Arc::new((cluster.ipcache().clone(), cluster.config.dual_stack)),
        };
        let identities = self.identity_list(&world, previous.map(|p| &p.identities));
        let revisions = match previous {
            Some(p) if *p.revisions == self.persisted.revisions => p.revisions.clone(),
            _ => Arc::new(self.persisted.revisions.clone()),
        };
        Snapshot {
            healthz: self.healthz_of(&world),
            config: self.config_json(),
            endpoints,
            enforcing: self.enforcing(),
            identities,
            revisions,
            policy,
            rules,
            isolating,
            ipcache,
            fqdn_learned: world.fqdn.len(),
            fqdn_rules: !world.fqdn_selectors.is_empty(),
            world: world.instance,
        }
    }
}

/// The default-deny rules of each local endpoint's identity: `previous` with the identities of
/// the `refreshed` endpoints computed again (all of them when `previous` is empty).
fn isolating_of(
    world: &World,
    endpoints: &BTreeMap<u16, Arc<EndpointView>>,
    refreshed: &BTreeSet<u16>,
    previous: &Arc<HashMap<u32, [Vec<RuleId>; 2]>>,
) -> Arc<HashMap<u32, [Vec<RuleId>; 2]>> {
    let ids: Vec<u32> = if previous.is_empty() {
        endpoints.values().map(|v| v.status.identity).collect()
    } else {
        refreshed
            .iter()
            .filter_map(|id| endpoints.get(id))
            .map(|v| v.status.identity)
            .collect()
    };
    if ids.is_empty() && !previous.is_empty() {
        return previous.clone();
    }
    let policy = &world.engine.policy;
    let mut map = HashMap::clone(previous);
    for id in ids {
        let rules = world.engine.rules_selecting(NumericIdentity(id));
        let of = |dir: Direction| -> Vec<RuleId> {
            let r = rules.iter().copied();
            r.filter(|r| policy.rule(*r).direction == dir && policy.rule(*r).default_deny)
                .collect()
        };
        map.insert(id, [of(Direction::Ingress), of(Direction::Egress)]);
    }
    Arc::new(map)
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
