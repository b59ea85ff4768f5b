//! Incremental changes to the world: a policy source replaced or removed (its rules
//! deactivated and the new ones activated, its workloads and namespaces diffed), a local
//! endpoint added, changed or removed. Each change returns its inverse, so a change the
//! datapath refuses is undone without recomputing anything else. What a change touches is
//! collected for [`World::refresh`]. A change to the objects the cluster holds whole (CIDR
//! groups, Services, EndpointSlices, Nodes) is not applied here: the agent builds a new world
//! for it (`state_apply.rs`).

use super::error::AgentError;
use super::model::EndpointSpec;
use super::world::{
    label_endpoint, parse_rule_labels, pod_missing, rule_has_labels, spec_ips, spec_name,
    SourceState, World,
};
use compiler::cluster::ClusterEndpoint;
use compiler::identity::derive_labels;
use compiler::policy::MapDelta;
use ir::RuleId;
use std::collections::{BTreeSet, HashMap, HashSet};

/// One change to the world.
#[derive(Clone, Debug)]
pub enum Change {
    /// The source at `path` now holds these rules and workloads (`None`: it is removed).
    Source {
        path: String,
        to: Option<SourceState>,
    },
    /// The local endpoint `id` now has this spec (`None`: it is removed).
    Endpoint { id: u16, to: Option<EndpointSpec> },
    /// The endpoint `name` of another node (`remote.rs`) is now this (`None`: it is gone).
    Remote {
        name: String,
        to: Option<super::remote::RemoteEndpoint>,
    },
}

/// The rules of `a` that `b` does not hold, in `a`'s order.
fn rules_not_in(a: &[RuleId], b: &[RuleId]) -> Vec<RuleId> {
    let b: HashSet<RuleId> = b.iter().copied().collect();
    a.iter().copied().filter(|r| !b.contains(r)).collect()
}

fn internal(e: compiler::cluster::ClusterError) -> AgentError {
    AgentError::cluster(e, AgentError::Internal)
}

/// The objects of an inventory that the cluster holds whole, not diffed by `apply_inventory`:
/// a change to any of them rebuilds the world (`state_apply.rs`).
type WholeObjects<'a> = (
    &'a [ir::CidrGroup],
    &'a [ir::Service],
    &'a [ir::EndpointSlice],
    &'a [ir::Node],
);

fn whole_objects(inv: &ir::Inventory) -> WholeObjects<'_> {
    (
        &inv.cidr_groups,
        &inv.services,
        &inv.endpoint_slices,
        &inv.nodes,
    )
}

impl World {
    /// Whether `change` adds, changes or removes a CiliumCIDRGroup, Service, EndpointSlice or
    /// Node: those are taken into the cluster by [`World::build`] only.
    pub fn changes_objects(&self, change: &Change) -> bool {
        match change {
            Change::Source { path, to } => self.objects_differ(path, to.as_ref()),
            Change::Endpoint { .. } | Change::Remote { .. } => false,
        }
    }

    fn objects_differ(&self, path: &str, to: Option<&SourceState>) -> bool {
        let empty = ir::Inventory::default();
        let old = self.sources.get(path).map_or(&empty, |s| &s.inventory);
        let new = to.map_or(&empty, |s| &s.inventory);
        whole_objects(old) != whole_objects(new)
    }

    /// Appends a parsed source's rules (`world::parse_source`; not yet enforced) to the policy
    /// set; the result goes into a [`Change::Source`].
    pub fn prepare_source(
        &mut self,
        path: &str,
        (set, inventory): (ir::PolicySet, ir::Inventory),
    ) -> SourceState {
        let file = match self.file_ids.get(path) {
            Some(f) => *f,
            None => {
                let f = self.engine.policy.add_file(path.to_string());
                self.file_ids.insert(path.to_string(), f);
                f
            }
        };
        let rules = self.engine.append_rules(set, file);
        SourceState { rules, inventory }
    }

    /// Per source holding a rule that carries every one of `labels`: its state without those
    /// rules.
    pub fn without_labels(&self, labels: &[String]) -> Vec<(String, SourceState)> {
        let want = parse_rule_labels(labels);
        let policy = &self.engine.policy;
        self.sources
            .iter()
            .filter_map(|(path, s)| {
                let keep: Vec<RuleId> = s
                    .rules
                    .iter()
                    .copied()
                    .filter(|r| !rule_has_labels(policy.rule(*r), &want))
                    .collect();
                (keep.len() != s.rules.len()).then(|| {
                    (
                        path.clone(),
                        SourceState {
                            rules: keep,
                            inventory: s.inventory.clone(),
                        },
                    )
                })
            })
            .collect()
    }

    /// Applies `change`; returns its inverse. Refusals (a workload another source defines, a
    /// pod a local endpoint still uses, invalid labels, a label set the shared identity store
    /// cannot number: `World::prenumber`) come before anything changes; an error after that
    /// (local identities exhausted, a label set prenumbering missed) marks the world
    /// half-applied (`World::changing`), and the caller rebuilds it.
    pub fn apply(&mut self, change: Change) -> Result<Change, AgentError> {
        match change {
            Change::Source { path, to } => {
                let inverse = self.apply_source(path, to)?;
                self.relabel_fqdn();
                Ok(inverse)
            }
            Change::Endpoint { id, to } => self.apply_endpoint(id, to),
            Change::Remote { name, to } => self.apply_remote(name, to),
        }
    }

    pub(super) fn note(&mut self, deltas: Vec<MapDelta>) {
        for d in deltas {
            if let Some(ids) = self.by_name.get(&d.endpoint) {
                self.touched.extend(ids.iter().copied());
            }
        }
    }

    fn check_source(&self, path: &str, new: &SourceState) -> Result<(), AgentError> {
        let mut seen = HashSet::new();
        for ep in &new.inventory.endpoints {
            if !seen.insert(ep.name.as_str()) {
                return Err(AgentError::invalid(format!(
                    "{path}: workload {} is defined twice",
                    ep.name
                )));
            }
            match self.owner.get(&ep.name) {
                Some(other) if other != path => {
                    return Err(AgentError::invalid(format!(
                        "{path}: workload {} is already defined by {other}",
                        ep.name
                    )))
                }
                _ => {}
            }
        }
        let old = self.sources.get(path);
        let leaving: HashSet<&str> = old
            .into_iter()
            .flat_map(|s| &s.inventory.endpoints)
            .map(|e| e.name.as_str())
            .filter(|n| !seen.contains(n))
            .collect();
        for ep in &new.inventory.endpoints {
            self.check_addresses(&ep.name, &ep.ips, &leaving)?;
        }
        for ep in old.into_iter().flat_map(|s| &s.inventory.endpoints) {
            if seen.contains(ep.name.as_str()) {
                continue;
            }
            if let Some(spec) = self
                .specs
                .values()
                .find(|s| s.pod.as_deref() == Some(&ep.name))
            {
                return Err(AgentError::invalid(format!(
                    "endpoint {}: pod {} would no longer be applied (delete the endpoint first)",
                    spec.id, ep.name
                )));
            }
        }
        Ok(())
    }

    /// Addresses are unique across workloads: `ips` may only belong to `name` or to a workload
    /// the same change removes.
    pub(super) fn check_addresses(
        &self,
        name: &str,
        ips: &[std::net::IpAddr],
        leaving: &HashSet<&str>,
    ) -> Result<(), AgentError> {
        for ip in ips {
            if let Some(other) = self.addr_owner.get(ip) {
                if other != name && !leaving.contains(other.as_str()) {
                    return Err(AgentError::invalid(format!(
                        "{name}: address {ip} already belongs to {other}"
                    )));
                }
            }
        }
        Ok(())
    }

    fn apply_source(
        &mut self,
        path: String,
        to: Option<SourceState>,
    ) -> Result<Change, AgentError> {
        if self.objects_differ(&path, to.as_ref()) {
            // Refused before anything changes: the caller rebuilds the world for such a change.
            return Err(AgentError::Internal(format!(
                "{path}: a change to CIDR groups, Services, EndpointSlices or Nodes needs a rebuilt world"
            )));
        }
        let new = to.clone().unwrap_or_default();
        self.check_source(&path, &new)?;
        // Only what this change can give new labels: an endpoint the source did not hold as it
        // is, or one in a namespace the source defines (the others keep the labels they are
        // numbered with).
        let held: HashMap<&str, &ir::Endpoint> = self
            .sources
            .get(&path)
            .into_iter()
            .flat_map(|s| &s.inventory.endpoints)
            .map(|e| (e.name.as_str(), e))
            .collect();
        let defined = |n: &String| new.inventory.namespaces.iter().rev().find(|d| &d.name == n);
        let relabelled = new.inventory.endpoints.iter().filter_map(|ep| {
            let ns = ep.namespace.as_ref().and_then(defined);
            let same = held.get(ep.name.as_str()) == Some(&ep);
            (ns.is_some() || !same).then(|| self.cluster_labels(ep, ns))
        });
        self.prenumber(relabelled)?;
        self.changing(|w| w.change_source(path, to, new))
    }

    /// [`World::apply_source`] once its checks passed.
    fn change_source(
        &mut self,
        path: String,
        to: Option<SourceState>,
        new: SourceState,
    ) -> Result<Change, AgentError> {
        let was = self.sources.remove(&path);
        let old = was.clone().unwrap_or_default();
        let gone = rules_not_in(&old.rules, &new.rules);
        let added = rules_not_in(&new.rules, &old.rules);
        let deltas = self.engine.deactivate_rules(&gone);
        self.note(deltas);
        self.apply_inventory(&path, &old.inventory, &new.inventory)?;
        let deltas = self.engine.activate_rules(&added).map_err(internal)?;
        self.note(deltas);
        if let Some(s) = to {
            self.sources.insert(path.clone(), s);
        }
        Ok(Change::Source { path, to: was })
    }

    /// Diffs one source's namespaces and workloads into the cluster.
    fn apply_inventory(
        &mut self,
        path: &str,
        old: &ir::Inventory,
        new: &ir::Inventory,
    ) -> Result<(), AgentError> {
        let mut changed_ns = BTreeSet::new();
        let names: BTreeSet<&String> = old
            .namespaces
            .iter()
            .chain(&new.namespaces)
            .map(|n| &n.name)
            .collect();
        for name in names {
            let defs = self.namespaces.entry(name.clone()).or_default();
            let before = defs.values().next_back().cloned();
            defs.remove(path);
            if let Some(ns) = new.namespaces.iter().rev().find(|n| &n.name == name) {
                defs.insert(path.to_string(), ns.clone());
            }
            let after = defs.values().next_back().cloned();
            if defs.is_empty() {
                self.namespaces.remove(name);
            }
            if before.as_ref().map(|n| &n.labels) != after.as_ref().map(|n| &n.labels) {
                changed_ns.insert(name.clone());
            }
            let audit = |n: &Option<ir::Namespace>| n.as_ref().is_some_and(|n| n.audit);
            let audit_changed = audit(&before) != audit(&after);
            match after {
                Some(ns) => self.engine.cluster.set_namespace(ns),
                None => self.engine.cluster.remove_namespace(name),
            }
            if audit_changed {
                let deltas = self.engine.recompute_namespace(name);
                self.note(deltas);
            }
        }
        let new_eps: HashMap<&str, &ir::Endpoint> =
            new.endpoints.iter().map(|e| (e.name.as_str(), e)).collect();
        for ep in &old.endpoints {
            if !new_eps.contains_key(ep.name.as_str()) {
                self.owner.remove(&ep.name);
                self.release_addresses(&ep.name, &ep.ips);
                let deltas = self.engine.remove_endpoint(&ep.name);
                self.note(deltas);
            }
        }
        for ep in old
            .endpoints
            .iter()
            .filter(|e| new_eps.contains_key(e.name.as_str()))
        {
            self.release_addresses(&ep.name, &ep.ips);
        }
        for ep in &new.endpoints {
            self.owner.insert(ep.name.clone(), path.to_string());
            self.claim_addresses(&ep.name, &ep.ips);
            self.put_cluster_endpoint(ep, Some(path))?;
        }
        if changed_ns.is_empty() {
            return Ok(());
        }
        // Endpoints of other sources in a namespace whose labels changed get new labels.
        let others: Vec<(ir::Endpoint, String)> = self
            .engine
            .cluster
            .endpoints()
            .filter(|e| e.namespace.as_ref().is_some_and(|n| changed_ns.contains(n)))
            .filter_map(|e| {
                let src = self.owner.get(&e.name).filter(|p| *p != path)?;
                let endpoints = &self.sources.get(src)?.inventory.endpoints;
                let ep = endpoints.iter().find(|x| x.name == e.name)?;
                Some((ep.clone(), src.clone()))
            })
            .collect();
        for (ep, src) in others {
            self.put_cluster_endpoint(&ep, Some(&src))?;
        }
        Ok(())
    }

    pub(super) fn release_addresses(&mut self, name: &str, ips: &[std::net::IpAddr]) {
        for ip in ips {
            if self.addr_owner.get(ip).is_some_and(|o| o == name) {
                self.addr_owner.remove(ip);
            }
        }
    }

    pub(super) fn claim_addresses(&mut self, name: &str, ips: &[std::net::IpAddr]) {
        for ip in ips {
            self.addr_owner.insert(*ip, name.to_string());
        }
    }

    /// The labels `ep` gets in the cluster: with its namespace's labels, from `ns` when given
    /// (a namespace the same change defines), else as the cluster has them now.
    fn cluster_labels(&self, ep: &ir::Endpoint, ns: Option<&ir::Namespace>) -> ir::LabelSet {
        let cluster = &self.engine.cluster;
        let ns = ns.or_else(|| ep.namespace.as_deref().and_then(|n| cluster.namespace(n)));
        derive_labels(ep, ns, &cluster.config.cluster_name)
    }

    /// Runs `f`, the part of a change after its checks: should it fail, the world is marked
    /// half-applied, for the caller to rebuild (no inverse exists for a part of a change).
    fn changing(
        &mut self,
        f: impl FnOnce(&mut World) -> Result<Change, AgentError>,
    ) -> Result<Change, AgentError> {
        let changed = f(self);
        if changed.is_err() {
            self.half_applied = true;
        }
        changed
    }

    /// Numbers the label sets of the endpoints a change puts in the shared store (when there is
    /// one) while nothing of it is applied yet: a store that does not answer refuses the change
    /// here, with nothing to undo, instead of halfway through it (which made the world be
    /// rebuilt). A set this misses (another source's pod, whose labels a namespace this change
    /// redefines decides) is numbered at its add: should that fail, the change is half-applied
    /// ([`World::changing`]).
    pub(super) fn prenumber(
        &self,
        labels: impl IntoIterator<Item = ir::LabelSet>,
    ) -> Result<(), AgentError> {
        if self.engine.cluster.config.shared_identities.is_none() {
            return Ok(());
        }
        for l in labels {
            self.engine.cluster.prenumber(&l).map_err(internal)?;
        }
        Ok(())
    }

    /// Adds or replaces a workload in the cluster unless it is already there unchanged.
    fn put_cluster_endpoint(
        &mut self,
        ep: &ir::Endpoint,
        path: Option<&str>,
    ) -> Result<(), AgentError> {
        let cluster = &self.engine.cluster;
        let cep = ClusterEndpoint {
            name: ep.name.clone(),
            namespace: ep.namespace.clone(),
            kind: ep.kind.clone(),
            workload: ep.workload.clone(),
            labels: self.cluster_labels(ep, None),
            identity: ir::NumericIdentity::WILDCARD,
            ips: match ep.kind.as_str() {
                "Pod" => self.pod_addresses(&ep.name),
                _ => None,
            }
            .unwrap_or_else(|| ep.ips.clone()),
            ports: ep.ports.clone(),
            origin: path.map(|p| format!("{p}:{}", ep.span.line)),
        };
        if let Some(cur) = cluster.endpoint(&ep.name) {
            let same = cur.labels == cep.labels
                && cur.ips == cep.ips
                && cur.ports == cep.ports
                && cur.kind == cep.kind
                && cur.namespace == cep.namespace;
            if same {
                return Ok(());
            }
        }
        let deltas = self.engine.add_endpoint(cep).map_err(internal)?;
        self.note(deltas);
        Ok(())
    }

    fn apply_endpoint(&mut self, id: u16, to: Option<EndpointSpec>) -> Result<Change, AgentError> {
        let label_ep = match &to {
            Some(spec) => match &spec.pod {
                Some(pod) => {
                    if self
                        .engine
                        .cluster
                        .endpoint(pod)
                        .is_none_or(|e| e.kind != "Pod")
                    {
                        return Err(pod_missing(id, pod));
                    }
                    self.check_addresses(pod, &spec_ips(spec), &HashSet::new())?;
                    None
                }
                None => {
                    let ep = label_endpoint(spec)?;
                    self.check_addresses(&ep.name, &ep.ips, &HashSet::new())?;
                    Some(ep)
                }
            },
            None => None,
        };
        if let Some(ep) = &label_ep {
            self.prenumber([self.cluster_labels(ep, None)])?;
        }
        self.changing(|w| w.change_endpoint(id, to, label_ep))
    }

    /// [`World::apply_endpoint`] once its checks passed; `label_ep` is the cluster endpoint of
    /// a label endpoint.
    fn change_endpoint(
        &mut self,
        id: u16,
        to: Option<EndpointSpec>,
        label_ep: Option<ir::Endpoint>,
    ) -> Result<Change, AgentError> {
        let was = self.specs.remove(&id);
        // Pods whose addresses a CNI endpoint gave or takes back: re-put from their manifest.
        let mut repod = Vec::new();
        if let Some((pod, ips)) = was.as_ref().and_then(cni_pod) {
            self.release_addresses(&pod, &ips);
            repod.push(pod);
        }
        if let Some(old) = &was {
            let name = spec_name(old);
            if let Some(ids) = self.by_name.get_mut(&name) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.by_name.remove(&name);
                }
            }
            if old.pod.is_none() {
                if let Ok(ep) = label_endpoint(old) {
                    self.release_addresses(&ep.name, &ep.ips);
                }
                if label_ep.is_none() {
                    let deltas = self.engine.remove_endpoint(&name);
                    self.note(deltas);
                }
            }
        }
        self.touched.insert(id);
        if let Some(spec) = to {
            self.by_name.entry(spec_name(&spec)).or_default().insert(id);
            self.specs.insert(id, spec);
            if let Some(ep) = label_ep {
                self.claim_addresses(&ep.name, &ep.ips);
                self.put_cluster_endpoint(&ep, None)?;
            }
            if let Some((pod, ips)) = self.specs.get(&id).and_then(cni_pod) {
                self.claim_addresses(&pod, &ips);
                repod.push(pod);
            }
        }
        for pod in repod {
            self.reput_pod(&pod)?;
        }
        Ok(Change::Endpoint { id, to: was })
    }

    /// Puts a pod again from its manifest (with the addresses a CNI endpoint gives it, if any).
    fn reput_pod(&mut self, pod: &str) -> Result<(), AgentError> {
        let Some(src) = self.owner.get(pod).cloned() else {
            return Ok(());
        };
        let ep = self
            .sources
            .get(&src)
            .and_then(|s| s.inventory.endpoints.iter().find(|e| e.name == pod))
            .cloned();
        match ep {
            Some(ep) => self.put_cluster_endpoint(&ep, Some(&src)),
            None => Ok(()),
        }
    }
}

/// A pod endpoint that carries its own addresses (made by the CNI plugin): the pod and them.
fn cni_pod(spec: &EndpointSpec) -> Option<(String, Vec<std::net::IpAddr>)> {
    let ips = spec_ips(spec);
    Some((spec.pod.clone()?, ips)).filter(|(_, ips)| !ips.is_empty())
}
