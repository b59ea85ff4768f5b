//! Builders shared by the compiler's unit tests, integration tests and benchmarks: endpoints as
//! the front end reads them, their cluster form, label selectors and rules. Compiled for tests
//! and with the `testkit` feature only; not part of the tool.

use crate::cluster::ClusterEndpoint;
use crate::identity::derive_labels;
use ir::*;
use std::net::IpAddr;

/// A Pod `namespace/name` with Kubernetes labels `labels` (no address, no ports).
pub fn pod(namespace: &str, name: &str, labels: &[(&str, &str)]) -> Endpoint {
    Endpoint {
        name: format!("{namespace}/{name}"),
        namespace: Some(namespace.into()),
        kind: "Pod".into(),
        workload: None,
        k8s_labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        labels: LabelSet::default(),
        service_account: None,
        ports: vec![],
        ips: vec![],
        node: None,
        file: None,
        span: Span::default(),
    }
}

/// `pod` with addresses.
pub fn pod_at(namespace: &str, name: &str, labels: &[(&str, &str)], ips: &[IpAddr]) -> Endpoint {
    Endpoint {
        ips: ips.to_vec(),
        ..pod(namespace, name, labels)
    }
}

/// A namespace with labels.
pub fn namespace(name: &str, labels: &[(&str, &str)]) -> Namespace {
    Namespace {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        audit: false,
        file: None,
        span: Span::default(),
    }
}

/// The endpoint as the semantics stage takes it: Cilium labels derived (cluster `default`),
/// identity not yet allocated.
pub fn cluster_endpoint(ep: &Endpoint, ns: Option<&Namespace>) -> ClusterEndpoint {
    ClusterEndpoint {
        name: ep.name.clone(),
        namespace: ep.namespace.clone(),
        kind: ep.kind.clone(),
        workload: ep.workload.clone(),
        labels: derive_labels(ep, ns, "default"),
        identity: NumericIdentity::WILDCARD,
        ips: ep.ips.clone(),
        ports: ep.ports.clone(),
        origin: None,
    }
}

/// A selector of `key In (value)` requirements; keys are `[source:]key` (`any` by default).
pub fn selector(policy: &mut PolicySet, reqs: &[(&str, &str)]) -> Handle<Selector> {
    let reqs = reqs
        .iter()
        .map(|(k, v)| {
            Requirement::new(
                LabelKey::parse_with_default(k, LabelSource::Any),
                Operator::In,
                vec![v.to_string()],
            )
        })
        .collect();
    policy.selectors.insert(Selector::new(reqs))
}

/// TCP ports `first..=last`.
pub fn tcp(first: u16, last: u16) -> PortRule {
    PortRule {
        protocol: Protocol::Tcp,
        port: PortSpec::Range { first, last },
        l7: None,
    }
}

/// A NetworkPolicy rule named `test` in namespace `default` (file 0), to be added with
/// `push_rule`; see [`named`] for another kind or name.
pub fn rule(
    subject: Handle<Selector>,
    direction: Direction,
    action: Action,
    peers: PeerSet,
    ports: Vec<PortRule>,
) -> Rule {
    let kind = PolicyKind::NetworkPolicy;
    Rule {
        id: RuleId(0),
        kind,
        subject,
        direction,
        action,
        peers,
        requires: vec![],
        ports,
        default_deny: true,
        audit: false,
        provenance: Provenance {
            kind,
            namespace: Some("default".into()),
            name: "test".into(),
            file: FileId(0),
            span: Span::default(),
            rule_index: 0,
            spec_index: None,
            labels: LabelSet::default(),
        },
    }
}

/// `r` as a rule of `kind` named `name` in `namespace` (`None`: clusterwide).
pub fn named(mut r: Rule, kind: PolicyKind, namespace: Option<&str>, name: &str) -> Rule {
    r.kind = kind;
    r.provenance.kind = kind;
    r.provenance.namespace = namespace.map(str::to_string);
    r.provenance.name = name.into();
    r
}

/// Parses `text` as one source file named `path`.
pub fn parse_text(path: &str, text: &str) -> crate::front::FrontOutput {
    crate::front::parse_sources(vec![crate::front::Source {
        path: path.into(),
        text: text.as_bytes().to_vec(),
    }])
}

/// The diagnostics of `out` as `CODE line:column message`.
pub fn diagnostic_lines(out: &crate::front::FrontOutput) -> Vec<String> {
    out.diagnostics
        .iter()
        .map(|d| {
            format!(
                "{} {}:{} {}",
                d.code.code, d.span.line, d.span.column, d.message
            )
        })
        .collect()
}
