//! The world derived from the persisted state: the policy engine (policy set, cluster with
//! identities and ipcache, selector cache, every group's map state) and the local endpoints with
//! their map state. Built whole ([`World::build`]) at start and for a change to the objects the
//! cluster holds whole (CIDR groups, Services, EndpointSlices, Nodes: `state_apply.rs`); every
//! other change is applied incrementally (`change.rs`), and only the endpoints it touches are
//! refreshed.

use super::config::AgentConfig;
use super::error::AgentError;
use super::model::EndpointSpec;
use super::store::Persisted;
use compiler::cluster::{Cluster, ClusterConfig, ClusterEndpoint};
use compiler::front::{parse_sources, Source};
use compiler::policy::PolicyEngine;
use ir::{EndpointPolicy, FileId, LabelKey, LabelSet, LabelSource, NumericIdentity, RuleId};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One endpoint of this node as the datapath needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalEndpoint {
    /// Its name in the cluster (`namespace/pod`, or `endpoint-ID`).
    pub name: String,
    pub iface: String,
    pub labels: LabelSet,
    pub identity: NumericIdentity,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
}

/// One policy source as the world holds it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceState {
    /// Its rules in force (ids in the engine's policy set; rules deleted by label left out).
    pub rules: Vec<RuleId>,
    /// Its namespaces and workloads.
    pub inventory: ir::Inventory,
}

pub struct World {
    /// Policy set, cluster (identities, ipcache), selector cache and map states.
    pub engine: PolicyEngine,
    pub endpoints: BTreeMap<u16, LocalEndpoint>,
    /// Each local endpoint's map state, shared with the snapshots that show it (replaced, never
    /// changed in place, when a change touches the endpoint).
    pub policies: BTreeMap<u16, Arc<EndpointPolicy>>,
    pub(super) sources: BTreeMap<String, SourceState>,
    pub(super) specs: BTreeMap<u16, EndpointSpec>,
    pub(super) file_ids: HashMap<String, FileId>,
    /// The source defining each workload (names are unique across sources).
    pub(super) owner: HashMap<String, String>,
    /// Namespace definitions by name and source; the last source in path order wins.
    pub(super) namespaces: HashMap<String, BTreeMap<String, ir::Namespace>>,
    /// The workload (cluster endpoint name) holding each address.
    pub(super) addr_owner: HashMap<IpAddr, String>,
    /// Local endpoint ids by cluster endpoint name.
    pub(super) by_name: HashMap<String, BTreeSet<u16>>,
    /// Local endpoints a change touched since the last [`World::refresh`].
    pub(super) touched: BTreeSet<u16>,
    /// Local endpoints refreshed since the writer last took them for a snapshot
    /// ([`World::take_refreshed`]).
    refreshed: BTreeSet<u16>,
    /// Unique to this world: a snapshot built from another world (rebuilt, or put back by an
    /// undo) shares nothing with the previous one.
    pub(crate) instance: u64,
    /// Endpoints of other nodes, by cluster endpoint name (`remote.rs`).
    pub(super) remote: BTreeMap<String, super::remote::RemoteEndpoint>,
    /// Addresses learned from DNS answers for `toFQDNs` (`fqdn/`), the FQDN selectors they
    /// were last labelled with, and when a failed expiry is retried.
    pub(crate) fqdn: super::fqdn::FqdnCache,
    pub(crate) fqdn_selectors: Vec<ir::DnsRule>,
    pub(crate) fqdn_retry: Option<std::time::Instant>,
    /// A change failed after it had begun to change the world (`change.rs`, after its checks):
    /// no inverse exists for the part applied, so the world must be rebuilt.
    pub(crate) half_applied: bool,
}

static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(1);

impl Default for World {
    fn default() -> Self {
        World {
            engine: PolicyEngine::new(
                ir::PolicySet::default(),
                Cluster::new(ClusterConfig::default()),
            ),
            endpoints: BTreeMap::new(),
            policies: BTreeMap::new(),
            sources: BTreeMap::new(),
            specs: BTreeMap::new(),
            file_ids: HashMap::new(),
            owner: HashMap::new(),
            namespaces: HashMap::new(),
            addr_owner: HashMap::new(),
            by_name: HashMap::new(),
            touched: BTreeSet::new(),
            refreshed: BTreeSet::new(),
            instance: NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed),
            remote: BTreeMap::new(),
            fqdn: Default::default(),
            fqdn_selectors: Vec::new(),
            fqdn_retry: None,
            half_applied: false,
        }
    }
}

/// Parses `[source:]key[=value]` with `container` as the default source (endpoint labels
/// given by hand, as Docker's `-l id=app1` becomes `container:id=app1`).
pub fn parse_endpoint_label(s: &str) -> Result<ir::Label, AgentError> {
    let l = parse_label(s, LabelSource::Container);
    if l.key.is_empty() || l.source == LabelSource::Any {
        return Err(AgentError::invalid(format!("invalid endpoint label {s:?}")));
    }
    Ok(l)
}

/// `[source:]key[=value]` with `default` as the source when none is given.
pub fn parse_label(s: &str, default: LabelSource) -> ir::Label {
    let (k, v) = s.split_once('=').unwrap_or((s, ""));
    let key = LabelKey::parse_with_default(k, default);
    ir::Label::new(key.source, key.key, v)
}

/// Does `rule` carry every label of `want` (seed §8: `DELETE /policy` with a label list)?
pub fn rule_has_labels(rule: &ir::Rule, want: &[ir::Label]) -> bool {
    want.iter().all(|w| {
        rule.provenance
            .labels
            .iter()
            .any(|l| l.key == w.key && l.value == w.value && w.source.matches(&l.source))
    })
}

/// Labels of a `policy delete` request (source `any` unless given).
pub fn parse_rule_labels(labels: &[String]) -> Vec<ir::Label> {
    labels
        .iter()
        .map(|l| parse_label(l, LabelSource::Any))
        .collect()
}

pub fn endpoint_name(id: u16) -> String {
    format!("endpoint-{id}")
}

/// The cluster name of a local endpoint.
pub fn spec_name(spec: &EndpointSpec) -> String {
    spec.pod.clone().unwrap_or_else(|| endpoint_name(spec.id))
}

/// Parses one source alone, leaving out the rules removed by `deleted` label lists; refuses
/// a source with errors, with its diagnostics.
pub fn parse_source(
    path: &str,
    text: &str,
    deleted: &[Vec<String>],
) -> Result<(ir::PolicySet, ir::Inventory), AgentError> {
    let front = parse_sources(vec![Source {
        path: path.to_string(),
        text: text.as_bytes().to_vec(),
    }]);
    if front.has_errors() {
        let diags = front.error_messages();
        return Err(AgentError::Invalid {
            message: "the policy is invalid; nothing was changed".into(),
            diagnostics: diags,
        });
    }
    let mut policy = front.policy;
    if !deleted.is_empty() {
        let filters: Vec<Vec<ir::Label>> = deleted.iter().map(|l| parse_rule_labels(l)).collect();
        let rules = std::mem::take(&mut policy.rules);
        for r in rules {
            if !filters.iter().any(|f| rule_has_labels(&r, f)) {
                policy.push_rule(r);
            }
        }
    }
    Ok((policy, front.inventory))
}

/// An endpoint given by labels, as the inventory would hold it.
pub fn label_endpoint(spec: &EndpointSpec) -> Result<ir::Endpoint, AgentError> {
    let labels = spec
        .labels
        .iter()
        .map(|l| parse_endpoint_label(l))
        .collect::<Result<Vec<_>, _>>()?;
    let ips = spec_ips(spec);
    Ok(ir::Endpoint {
        name: endpoint_name(spec.id),
        namespace: None,
        kind: "Endpoint".into(),
        workload: None,
        k8s_labels: Vec::new(),
        labels: LabelSet::new(labels),
        service_account: None,
        ports: Vec::new(),
        ips,
        node: None,
        file: None,
        span: ir::Span::default(),
    })
}

/// The addresses an endpoint spec gives (for a pod endpoint, those the CNI runtime assigned;
/// they replace the manifest's).
pub fn spec_ips(spec: &EndpointSpec) -> Vec<IpAddr> {
    spec.ipv4
        .map(IpAddr::V4)
        .into_iter()
        .chain(spec.ipv6.map(IpAddr::V6))
        .collect()
}

/// One source's objects as the world's cluster takes them: every kind, each naming the
/// source by the world's file id (a source is parsed alone, so its objects name file 0), so
/// that a duplicate across sources names both files.
fn in_file(inv: &ir::Inventory, file: FileId) -> ir::Inventory {
    let mut inv = inv.clone();
    let f = Some(file);
    inv.namespaces.iter_mut().for_each(|o| o.file = f);
    inv.endpoints.iter_mut().for_each(|o| o.file = f);
    inv.cidr_groups.iter_mut().for_each(|o| o.file = f);
    inv.services.iter_mut().for_each(|o| o.file = f);
    inv.endpoint_slices.iter_mut().for_each(|o| o.file = f);
    inv.nodes.iter_mut().for_each(|o| o.file = f);
    inv
}

pub(super) fn pod_missing(id: u16, pod: &str) -> AgentError {
    AgentError::invalid(format!(
        "endpoint {id}: pod {pod} is not applied (apply its manifest, or delete the endpoint)"
    ))
}

impl World {
    /// Builds the whole world from the persisted state (at start, and as a fallback).
    pub fn build(p: &Persisted, cfg: &AgentConfig) -> Result<World, AgentError> {
        let mut w = World::default();
        let mut policy = ir::PolicySet::default();
        let mut inventory = ir::Inventory::default();
        for (path, text) in &p.sources {
            let deleted = p.deleted.get(path).map_or(&[][..], Vec::as_slice);
            let (set, inv) = parse_source(path, text, deleted).map_err(|e| {
                // A persisted source that no longer parses (edited by hand, or an older agent
                // accepted what this one refuses): say where it is stored.
                let mut msg = format!(
                    "{}: the persisted policy source {path} is not valid",
                    cfg.state_dir.join("state.json").display(),
                );
                if e.diagnostics().is_empty() {
                    msg += &format!(": {e}");
                }
                for d in e.diagnostics() {
                    msg += &format!("\n  {d}");
                }
                AgentError::Internal(msg)
            })?;
            let file = policy.add_file(path.clone());
            let rules = policy.absorb_file(set, file);
            w.file_ids.insert(path.clone(), file);
            for ep in &inv.endpoints {
                w.owner.insert(ep.name.clone(), path.clone());
            }
            for ns in &inv.namespaces {
                w.namespaces
                    .entry(ns.name.clone())
                    .or_default()
                    .insert(path.clone(), ns.clone());
            }
            inventory.extend(in_file(&inv, file));
            w.sources.insert(
                path.clone(),
                SourceState {
                    rules,
                    inventory: inv,
                },
            );
        }
        for spec in p.endpoints.values() {
            match &spec.pod {
                Some(pod) => {
                    let Some(ep) = inventory
                        .endpoints
                        .iter_mut()
                        .find(|e| &e.name == pod && e.kind == "Pod")
                    else {
                        return Err(pod_missing(spec.id, pod));
                    };
                    let ips = spec_ips(spec);
                    if !ips.is_empty() {
                        ep.ips = ips;
                    }
                }
                None => inventory.endpoints.push(label_endpoint(spec)?),
            }
        }
        // Addresses are unique across workloads (checked here too: a world is also built for
        // a change to the objects the cluster holds whole, `state_apply.rs`).
        for ep in &inventory.endpoints {
            w.check_addresses(&ep.name, &ep.ips, &HashSet::new())?;
            w.claim_addresses(&ep.name, &ep.ips);
        }
        let cluster = Cluster::build(&inventory, &policy, cfg.cluster_config())
            .map_err(|e| AgentError::cluster(e, AgentError::invalid))?;
        w.engine = PolicyEngine::new(policy, cluster);
        for spec in p.endpoints.values() {
            w.by_name
                .entry(spec_name(spec))
                .or_default()
                .insert(spec.id);
            w.specs.insert(spec.id, spec.clone());
            w.touched.insert(spec.id);
        }
        w.relabel_fqdn();
        w.refresh()?;
        Ok(w)
    }

    /// Recomputes the local endpoints touched since the last refresh (their cluster endpoint
    /// and map state); returns their ids (removed endpoints included).
    pub fn refresh(&mut self) -> Result<BTreeSet<u16>, AgentError> {
        let touched = std::mem::take(&mut self.touched);
        self.refreshed.extend(touched.iter().copied());
        for id in &touched {
            let Some(spec) = self.specs.get(id) else {
                self.endpoints.remove(id);
                self.policies.remove(id);
                continue;
            };
            let name = spec_name(spec);
            let ep = self
                .engine
                .cluster
                .endpoint(&name)
                .ok_or_else(|| AgentError::Internal(format!("endpoint {name} vanished")))?;
            let local = local_endpoint(ep, &spec.iface);
            match self.engine.endpoint_policy(&name) {
                Some(p) => self.policies.insert(*id, Arc::new(p)),
                None => self.policies.remove(id),
            };
            self.endpoints.insert(*id, local);
        }
        Ok(touched)
    }

    /// The local endpoints refreshed since the last call (removed ones included): what the
    /// next snapshot rebuilds.
    pub(crate) fn take_refreshed(&mut self) -> BTreeSet<u16> {
        std::mem::take(&mut self.refreshed)
    }

    /// The addresses a local endpoint gives its pod, if any (CNI endpoints).
    pub fn pod_addresses(&self, pod: &str) -> Option<Vec<IpAddr>> {
        self.specs
            .values()
            .filter(|s| s.pod.as_deref() == Some(pod))
            .map(spec_ips)
            .find(|ips| !ips.is_empty())
    }

    /// The rules in force, in a policy set of their own (the tests' reference for what
    /// `GET /v1/policy` renders from the snapshot's rule table).
    #[cfg(test)]
    pub fn live_policy(&self) -> ir::PolicySet {
        self.policy_of(&self.live_rule_ids())
    }

    /// The ids of the rules in force, in order. They name the same rules until the world is
    /// rebuilt (a new [`World::instance`]): the policy set only grows in between.
    pub fn live_rule_ids(&self) -> Vec<RuleId> {
        let mut ids: Vec<RuleId> = self
            .sources
            .values()
            .flat_map(|s| s.rules.iter().copied())
            .collect();
        ids.sort();
        ids
    }

    /// The rules `ids` (of this world), in a policy set of their own.
    #[cfg(test)]
    pub fn policy_of(&self, ids: &[RuleId]) -> ir::PolicySet {
        let all = &self.engine.policy;
        let mut out = ir::PolicySet {
            files: all.files.clone(),
            selectors: all.selectors.clone(),
            rules: Vec::new(),
        };
        for id in ids {
            out.push_rule(all.rule(*id).clone());
        }
        out
    }

    /// Rules in the policy set that no source holds any more (see [`World::needs_compaction`]).
    pub fn dead_rules(&self) -> usize {
        let live: usize = self.sources.values().map(|s| s.rules.len()).sum();
        self.engine.policy.rules.len() - live.min(self.engine.policy.rules.len())
    }

    /// Replaced and deleted rules stay in the policy set (ids are stable); once they outnumber
    /// the live ones the agent rebuilds the world to drop them.
    pub fn needs_compaction(&self) -> bool {
        let dead = self.dead_rules();
        dead > 4096 && dead > self.engine.policy.rules.len() / 2
    }
}

fn local_endpoint(ep: &ClusterEndpoint, iface: &str) -> LocalEndpoint {
    LocalEndpoint {
        name: ep.name.clone(),
        iface: iface.to_string(),
        labels: ep.labels.clone(),
        identity: ep.identity,
        ipv4: ep.ips.iter().find_map(|a| match a {
            IpAddr::V4(v) => Some(*v),
            _ => None,
        }),
        ipv6: ep.ips.iter().find_map(|a| match a {
            IpAddr::V6(v) => Some(*v),
            _ => None,
        }),
    }
}
