//! `Namespace`, `Pod` and workload kinds (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job,
//! CronJob) into the endpoint inventory: one endpoint per pod or pod template, `namespace/name`.
//! These schemas are large and only partly read, so unknown fields are ignored here.

use super::codes;
use super::decode::{Cx, Field, Map, Unknown};
use super::objects::{metadata, Sink};
use super::selector::{check_key, check_value};
use ir::{Endpoint, LabelSet, NamedPort, Namespace};
use std::net::IpAddr;

/// Workload kinds whose pod template becomes an endpoint.
pub fn is_workload(api: &str, kind: &str) -> bool {
    let group = api.split_once('/').map_or("", |(g, _)| g);
    matches!(
        (group, kind),
        (
            "apps",
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet"
        ) | ("batch", "Job" | "CronJob")
    )
}

/// The label Kubernetes sets on every namespace (since 1.21) to its name.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// `metadata.labels` of the metadata mapping `m`.
pub(super) fn labels(cx: &mut Cx<'_>, m: &Map<'_>) -> Vec<(String, String)> {
    match m.get("labels") {
        Some(f) => label_map(cx, &f),
        None => Vec::new(),
    }
}

/// A Kubernetes label mapping (`labels`, a Service's `selector`), keys and values checked.
pub(super) fn label_map(cx: &mut Cx<'_>, f: &Field<'_>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v, value) in cx.string_map(f) {
        let checked = check_key(&k.text).and_then(|_| check_value(value));
        match checked {
            Ok(()) => out.push((k.text.clone(), value.to_string())),
            Err(e) => cx.report(&codes::INVALID_LABEL, k.span, &v.path, e, None),
        }
    }
    out
}

/// Decodes an inventory object and adds it if it has no error.
pub fn inventory_object(cx: &mut Cx<'_>, f: &Field<'_>, kind: &str, sink: &mut Sink<'_>) {
    let before = cx.errors();
    let Some(m) = cx.map(f, &[], Unknown::Ignore) else {
        return;
    };
    let Some(meta) = metadata(cx, &m) else { return };
    let md = m
        .get("metadata")
        .and_then(|x| cx.map(&x, &[], Unknown::Ignore));
    if kind == "Namespace" {
        let mut labels = md.map(|md| labels(cx, &md)).unwrap_or_default();
        if !labels.iter().any(|(k, _)| k == NAMESPACE_NAME_LABEL) {
            labels.push((NAMESPACE_NAME_LABEL.to_string(), meta.name.clone()));
        }
        if cx.errors() == before {
            sink.inventory.namespaces.push(Namespace {
                name: meta.name,
                labels,
                audit: meta.audit,
                file: Some(sink.file),
                span: f.span(),
            });
        }
        return;
    }
    let namespace = meta.namespace.unwrap_or_else(|| "default".to_string());
    let (pod_meta, pod_spec) = if kind == "Pod" {
        (md, m.get("spec"))
    } else {
        let Some(t) = template(cx, &m, kind) else {
            return;
        };
        let tm = t
            .get("metadata")
            .and_then(|x| cx.map(&x, &[], Unknown::Ignore));
        (tm, t.get("spec"))
    };
    let k8s_labels = pod_meta
        .as_ref()
        .map(|pm| labels(cx, pm))
        .unwrap_or_default();
    let workload = if kind == "Pod" {
        pod_meta
            .as_ref()
            .and_then(|pm| controller(cx, pm, &k8s_labels))
    } else {
        Some(format!("{kind}/{}", meta.name))
    };
    let mut ep = Endpoint {
        name: format!("{namespace}/{}", meta.name),
        namespace: Some(namespace),
        kind: kind.to_string(),
        workload,
        k8s_labels,
        labels: LabelSet::default(),
        service_account: None,
        ports: Vec::new(),
        ips: Vec::new(),
        node: None,
        file: Some(sink.file),
        span: f.span(),
    };
    if let Some(spec) = pod_spec.and_then(|s| cx.map(&s, &[], Unknown::Ignore)) {
        pod_spec_into(cx, &spec, &mut ep);
    }
    if kind == "Pod" {
        if let Some(status) = m
            .get("status")
            .and_then(|s| cx.map(&s, &[], Unknown::Ignore))
        {
            pod_ips(cx, &status, &mut ep.ips);
        }
    }
    if cx.errors() == before {
        sink.inventory.endpoints.push(ep);
    }
}

/// A Pod's workload from its controller owner reference (`Kind/name`); a ReplicaSet named
/// `<deployment>-<pod-template-hash>` stands for its Deployment.
fn controller(cx: &mut Cx<'_>, md: &Map<'_>, k8s_labels: &[(String, String)]) -> Option<String> {
    for r in cx.seq_at(md, "ownerReferences") {
        let m = cx.map(&r, &[], Unknown::Ignore)?;
        let is_controller = match m.get("controller") {
            Some(c) => cx.bool(&c) == Some(true),
            None => false,
        };
        if !is_controller {
            continue;
        }
        let (kind_f, name_f) = (cx.required(&m, "kind")?, cx.required(&m, "name")?);
        let kind = cx.str(&kind_f)?.to_string();
        let name = cx.str(&name_f)?.to_string();
        let hash = k8s_labels
            .iter()
            .find(|(k, _)| k == "pod-template-hash")
            .map(|(_, v)| format!("-{v}"));
        if kind == "ReplicaSet" {
            if let Some(deployment) = hash.and_then(|h| name.strip_suffix(&h).map(str::to_string)) {
                return Some(format!("Deployment/{deployment}"));
            }
        }
        return Some(format!("{kind}/{name}"));
    }
    None
}

/// The pod template of a workload (`spec.template`, or `spec.jobTemplate.spec.template`).
fn template<'n>(cx: &mut Cx<'_>, m: &Map<'n>, kind: &str) -> Option<Map<'n>> {
    let spec = cx.required(m, "spec")?;
    let mut spec = cx.map(&spec, &[], Unknown::Ignore)?;
    if kind == "CronJob" {
        let jt = cx.required(&spec, "jobTemplate")?;
        let jt = cx.map(&jt, &[], Unknown::Ignore)?;
        let js = cx.required(&jt, "spec")?;
        spec = cx.map(&js, &[], Unknown::Ignore)?;
    }
    let t = cx.required(&spec, "template")?;
    cx.map(&t, &[], Unknown::Ignore)
}

fn pod_spec_into(cx: &mut Cx<'_>, spec: &Map<'_>, ep: &mut Endpoint) {
    if let Some(n) = spec.get("nodeName") {
        ep.node = cx.str(&n).map(str::to_string);
    }
    let sa = spec
        .get("serviceAccountName")
        .or_else(|| spec.get("serviceAccount"));
    ep.service_account = sa.and_then(|s| cx.str(&s)).map(str::to_string);
    for c in cx.seq_at(spec, "containers") {
        let Some(cm) = cx.map(&c, &[], Unknown::Ignore) else {
            continue;
        };
        for p in cx.seq_at(&cm, "ports") {
            let Some(pm) = cx.map(&p, &[], Unknown::Ignore) else {
                continue;
            };
            let (Some(name_f), Some(port_f)) = (pm.get("name"), cx.required(&pm, "containerPort"))
            else {
                continue;
            };
            let (Some(name), Some(port)) = (cx.str(&name_f), cx.int(&port_f)) else {
                continue;
            };
            let Ok(port @ 1..=65535) = u16::try_from(port) else {
                cx.at(
                    &codes::INVALID_PORT,
                    &port_f,
                    format!("containerPort {port} is outside 1-65535"),
                );
                continue;
            };
            let protocol = super::ports::protocol(
                cx,
                pm.get("protocol").as_ref(),
                super::ports::Flavor::NetworkPolicy,
            );
            if let Some(protocol) = protocol {
                ep.ports.push(NamedPort {
                    name: name.to_ascii_lowercase(),
                    port,
                    protocol,
                });
            }
        }
    }
}

fn pod_ips(cx: &mut Cx<'_>, status: &Map<'_>, ips: &mut Vec<IpAddr>) {
    let mut seen = std::collections::HashSet::new();
    let mut push = |cx: &mut Cx<'_>, f: &Field<'_>| {
        let Some(s) = cx.str(f) else { return };
        match s.parse::<IpAddr>() {
            Ok(ip) if seen.insert(ip) => ips.push(ip),
            Ok(_) => {}
            Err(_) => cx.at(
                &codes::INVALID_CIDR,
                f,
                format!("`{s}` is not an IP address"),
            ),
        }
    };
    if let Some(ip) = status.get("podIP") {
        push(cx, &ip);
    }
    for item in cx.seq_at(status, "podIPs") {
        if let Some(im) = cx.map(&item, &[], Unknown::Ignore) {
            if let Some(ip) = im.get("ip") {
                push(cx, &ip);
            }
        }
    }
}
