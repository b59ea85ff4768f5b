//! The world derived from the persisted state: the front end's policy set and inventory, the
//! cluster (identities, ipcache) with the agent's endpoints in it, and every local endpoint's
//! map state. Recomputed on a candidate state before any change is accepted.

use super::config::AgentConfig;
use super::error::ApiError;
use super::store::Persisted;
use compiler::cluster::{Cluster, ClusterConfig};
use compiler::front::{parse_sources, Source};
use compiler::policy::PolicyEngine;
use ir::{EndpointPolicy, LabelKey, LabelSet, LabelSource, NumericIdentity};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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

pub struct World {
    /// Policy set, cluster (identities, ipcache) and every endpoint's map state.
    pub engine: PolicyEngine,
    pub endpoints: BTreeMap<u16, LocalEndpoint>,
    pub policies: BTreeMap<u16, EndpointPolicy>,
}

impl Default for World {
    fn default() -> Self {
        World {
            engine: PolicyEngine::new(
                ir::PolicySet::default(),
                Cluster::new(ClusterConfig::default()),
            ),
            endpoints: BTreeMap::new(),
            policies: BTreeMap::new(),
        }
    }
}

/// Parses `[source:]key[=value]` with `container` as the default source (endpoint labels
/// given by hand, as Docker's `-l id=app1` becomes `container:id=app1`).
pub fn parse_endpoint_label(s: &str) -> Result<ir::Label, ApiError> {
    let l = parse_label(s, LabelSource::Container);
    if l.key.is_empty() || l.source == LabelSource::Any {
        return Err(ApiError::bad_request(format!(
            "invalid endpoint label {s:?}"
        )));
    }
    Ok(l)
}

/// `[source:]key[=value]` with `default` as the source when none is given.
pub fn parse_label(s: &str, default: LabelSource) -> ir::Label {
    let (k, v) = s.split_once('=').unwrap_or((s, ""));
    let key = LabelKey::parse_with_default(k, default);
    ir::Label::new(key.source, key.key, v)
}

fn endpoint_name(id: u16) -> String {
    format!("endpoint-{id}")
}

impl World {
    pub fn compute(p: &Persisted, cfg: &AgentConfig) -> Result<World, ApiError> {
        let sources = p
            .sources
            .iter()
            .map(|(path, text)| Source {
                path: path.clone(),
                text: text.as_bytes().to_vec(),
            })
            .collect();
        let mut front = parse_sources(sources);
        if front.has_errors() {
            let diags = front
                .diagnostics
                .iter()
                .filter(|d| d.is_error())
                .map(|d| d.to_string())
                .collect();
            return Err(
                ApiError::bad_request("the policy is invalid; nothing was changed")
                    .with_diagnostics(diags),
            );
        }
        let mut names = BTreeMap::new();
        for spec in p.endpoints.values() {
            let name = match &spec.pod {
                Some(pod) => {
                    if !front
                        .inventory
                        .endpoints
                        .iter()
                        .any(|e| &e.name == pod && e.kind == "Pod")
                    {
                        return Err(ApiError::bad_request(format!(
                            "endpoint {}: pod {pod} is not applied (apply its manifest first)",
                            spec.id
                        )));
                    }
                    pod.clone()
                }
                None => {
                    let labels = spec
                        .labels
                        .iter()
                        .map(|l| parse_endpoint_label(l))
                        .collect::<Result<Vec<_>, _>>()?;
                    let ips = spec
                        .ipv4
                        .map(IpAddr::V4)
                        .into_iter()
                        .chain(spec.ipv6.map(IpAddr::V6))
                        .collect();
                    front.inventory.endpoints.push(ir::Endpoint {
                        name: endpoint_name(spec.id),
                        namespace: None,
                        kind: "Endpoint".into(),
                        k8s_labels: Vec::new(),
                        labels: LabelSet::new(labels),
                        service_account: None,
                        ports: Vec::new(),
                        ips,
                        file: None,
                        span: ir::Span::default(),
                    });
                    endpoint_name(spec.id)
                }
            };
            names.insert(spec.id, name);
        }
        let cluster = Cluster::build(&front.inventory, &front.policy, cfg.cluster_config())
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let mut endpoints = BTreeMap::new();
        for (id, name) in &names {
            let ep = cluster
                .endpoint(name)
                .ok_or_else(|| ApiError::internal(format!("endpoint {name} vanished")))?;
            let ipv4 = ep.ips.iter().find_map(|a| match a {
                IpAddr::V4(v) => Some(*v),
                _ => None,
            });
            let ipv6 = ep.ips.iter().find_map(|a| match a {
                IpAddr::V6(v) => Some(*v),
                _ => None,
            });
            let iface = p.endpoints[id].iface.clone();
            endpoints.insert(
                *id,
                LocalEndpoint {
                    name: name.clone(),
                    iface,
                    labels: ep.labels.clone(),
                    identity: ep.identity,
                    ipv4,
                    ipv6,
                },
            );
        }
        let engine = PolicyEngine::new(front.policy, cluster);
        let policies = endpoints
            .iter()
            .filter_map(|(id, ep)| Some((*id, engine.endpoint_policy(&ep.name)?)))
            .collect();
        Ok(World {
            engine,
            endpoints,
            policies,
        })
    }

    /// Paths of the sources holding a rule that carries every one of `labels`.
    pub fn sources_with_labels(&self, labels: &[String]) -> Vec<String> {
        let want: Vec<ir::Label> = labels
            .iter()
            .map(|l| parse_label(l, LabelSource::Any))
            .collect();
        let policy = &self.engine.policy;
        let mut out: Vec<String> = policy
            .rules
            .iter()
            .filter(|r| {
                want.iter().all(|w| {
                    r.provenance.labels.iter().any(|l| {
                        l.key == w.key && l.value == w.value && w.source.matches(&l.source)
                    })
                })
            })
            .map(|r| policy.file_path(r.provenance.file).to_string())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}
