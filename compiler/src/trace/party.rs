//! The two ends of a traced flow: a cluster endpoint, a hypothetical endpoint given by labels, a
//! numeric identity, or an address outside (or inside) the cluster.

use crate::cluster::{service_pods, Cluster};
use crate::identity::{IdentityInfo, IdentityKind};
use ir::{LabelSet, NamedPort, NumericIdentity};
use std::net::IpAddr;

/// How the user named one end of a flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartySpec {
    /// `namespace/name` of a pod or workload (a bare name means namespace `default`).
    Endpoint(String),
    /// A hypothetical endpoint with these labels.
    Labels(LabelSet),
    Identity(NumericIdentity),
    Addr(IpAddr),
    /// An address the DNS name `name` resolved to (`trace --dst-fqdn NAME --dst-ip IP`): as
    /// [`PartySpec::Addr`], and `toFQDNs` peers whose selector matches `name` select it (as
    /// the agent's learned addresses; an endpoint's address keeps its endpoint identity).
    Resolved {
        name: String,
        addr: IpAddr,
    },
    /// `namespace/name` of a Service: each of its backends (the pods its selector matches, or
    /// the addresses of its EndpointSlices), traced one by one.
    Service(String),
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PartyError {
    #[error("no endpoint named `{0}` in the inventory")]
    #[diagnostic(code(trace::unknown_endpoint), help("endpoints are `namespace/name` of the Pods and workloads in the input files; see `cilium-policy endpoints`"))]
    UnknownEndpoint(String),
    #[error("identity {0} is not known (not reserved, not allocated to an endpoint or CIDR)")]
    #[diagnostic(code(trace::unknown_identity))]
    UnknownIdentity(NumericIdentity),
    #[error("no Service named `{0}` in the inventory")]
    #[diagnostic(
        code(trace::unknown_service),
        help("services are `namespace/name` of the Service objects in the input files")
    )]
    UnknownService(String),
    #[error("Service `{0}` has no backend: {1}")]
    #[diagnostic(code(trace::no_backend))]
    NoBackend(String, &'static str),
    #[error("a Service stands for several endpoints; it can only be the destination")]
    #[diagnostic(code(trace::service_not_one_party))]
    ServiceNotOneParty,
}

/// One resolved end of a flow.
#[derive(Clone, Debug)]
pub struct Party {
    /// How to print it (`default/app1-xyz`, `[k8s:id=app2]`, `8.8.8.8`, `reserved:host`).
    pub display: String,
    /// The endpoint name, when it is an endpoint of the inventory.
    pub endpoint: Option<String>,
    /// Identity-relevant labels (what selectors see).
    pub info: IdentityInfo,
    pub addr: Option<IpAddr>,
    /// Container ports (for named ports), when known.
    pub ports: Vec<NamedPort>,
    /// The DNS name its address was resolved from (`--dst-fqdn`), for `toFQDNs` peers.
    pub fqdn: Option<String>,
}

impl Party {
    /// Is this a Cilium-managed endpoint (with its own policy)?
    pub fn managed(&self) -> bool {
        self.info.kind == IdentityKind::Endpoint
    }
}

fn from_endpoint(c: &Cluster, name: &str) -> Option<Party> {
    let ep = c.endpoint(name)?;
    let info = c.identity(ep.identity)?.clone();
    Some(Party {
        display: ep.name.clone(),
        endpoint: Some(ep.name.clone()),
        info,
        addr: ep.ips.first().copied(),
        ports: ep.ports.clone(),
        fqdn: None,
    })
}

/// Resolves a destination, which may be a Service: one party per backend (pods matched by
/// its selector, by name; or the addresses of its EndpointSlices), each displayed with the
/// backend it is.
pub fn resolve_parties(c: &Cluster, spec: &PartySpec) -> Result<Vec<Party>, PartyError> {
    let PartySpec::Service(name) = spec else {
        return Ok(vec![resolve_party(c, spec)?]);
    };
    let (ns, svc_name) = name.split_once('/').unwrap_or(("default", name));
    let svc = c
        .service(ns, svc_name)
        .ok_or_else(|| PartyError::UnknownService(name.clone()))?;
    let full = format!("{}/{}", svc.namespace, svc.name);
    let specs: Vec<PartySpec> = if svc.selector.is_empty() {
        let addrs = c.service_addresses(svc);
        if addrs.is_empty() {
            let why = "it has no selector and no EndpointSlice address";
            return Err(PartyError::NoBackend(full, why));
        }
        addrs.iter().map(|a| PartySpec::Addr(*a)).collect()
    } else {
        let pods = service_pods(svc);
        let eps: Vec<PartySpec> = c
            .endpoints()
            .filter(|e| pods.matches(&e.labels))
            .map(|e| PartySpec::Endpoint(e.name.clone()))
            .collect();
        if eps.is_empty() {
            return Err(PartyError::NoBackend(
                full,
                "no endpoint matches its selector",
            ));
        }
        eps
    };
    let n = specs.len();
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut p = resolve_party(c, s)?;
            p.display = format!("{} (backend {} of {n} of service {full})", p.display, i + 1);
            Ok(p)
        })
        .collect()
}

/// Resolves what the user typed against the cluster.
pub fn resolve_party(c: &Cluster, spec: &PartySpec) -> Result<Party, PartyError> {
    match spec {
        PartySpec::Endpoint(name) => from_endpoint(c, name)
            .or_else(|| {
                (!name.contains('/'))
                    .then(|| from_endpoint(c, &format!("default/{name}")))
                    .flatten()
            })
            .ok_or_else(|| PartyError::UnknownEndpoint(name.clone())),
        PartySpec::Labels(labels) => {
            let relevant = c.config.label_filter.relevant(labels);
            let id = c.identity_for_labels(labels);
            Ok(Party {
                display: format!("[{labels}]"),
                endpoint: None,
                info: IdentityInfo {
                    id,
                    labels: relevant,
                    kind: IdentityKind::Endpoint,
                },
                addr: None,
                ports: Vec::new(),
                fqdn: None,
            })
        }
        PartySpec::Identity(id) => {
            let info = c
                .identity(*id)
                .cloned()
                .ok_or(PartyError::UnknownIdentity(*id))?;
            let display = format!("identity {id} [{}]", info.labels);
            let ep = c.members(*id).next().map(|e| e.name.clone());
            Ok(Party {
                display,
                endpoint: ep,
                info,
                addr: None,
                ports: Vec::new(),
                fqdn: None,
            })
        }
        PartySpec::Addr(a) => {
            if let Some(ep) = c.endpoints().find(|e| e.ips.contains(a)) {
                let mut p = from_endpoint(c, &ep.name.clone())
                    .ok_or_else(|| PartyError::UnknownEndpoint(ep.name.clone()))?;
                p.addr = Some(*a);
                return Ok(p);
            }
            let id = c.identity_of_addr(*a);
            let info = c
                .identity(id)
                .cloned()
                .ok_or(PartyError::UnknownIdentity(id))?;
            Ok(Party {
                display: a.to_string(),
                endpoint: None,
                info,
                addr: Some(*a),
                ports: Vec::new(),
                fqdn: None,
            })
        }
        PartySpec::Resolved { name, addr } => {
            let mut p = resolve_party(c, &PartySpec::Addr(*addr))?;
            if p.endpoint.is_none() {
                let name = crate::fqdn::normalize(name);
                p.display = format!("{addr} ({name})");
                p.fqdn = Some(name);
            }
            Ok(p)
        }
        PartySpec::Service(_) => Err(PartyError::ServiceNotOneParty),
    }
}
