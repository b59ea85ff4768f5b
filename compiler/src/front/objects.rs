//! Recognises each document (Kubernetes object by `apiVersion`/`kind`, `kind: List`, Cilium rule
//! array or single rule) and hands it to its decoder; an object with errors is left out whole.

use super::cilium_rule::{cilium_rule, RULE_FIELDS};
use super::codes;
use super::decode::{did_you_mean, Cx, Field, Map, Unknown};
use super::k8s_netpol::network_policy;
use super::lower::{Pending, Scope};
use super::node::{Node, NodeKind};
use super::selector::is_dns_subdomain;
use super::{workload, Skipped};
use ir::{FileId, Inventory, LabelSet, PolicyKind, PolicySet};

/// Where decoded objects go.
pub struct Sink<'a> {
    pub file: FileId,
    /// File stem, naming rules of `cilium policy import` files (which have no name).
    pub stem: String,
    pub policy: &'a mut PolicySet,
    pub inventory: &'a mut Inventory,
    pub skipped: &'a mut Vec<Skipped>,
}

/// Owned storage behind a [`Sink`]: one file's output (parsed in parallel, merged in order),
/// or scratch output that is thrown away (documents that are only checked).
pub struct Owned {
    pub file: FileId,
    pub stem: String,
    pub policy: PolicySet,
    pub inventory: Inventory,
    pub skipped: Vec<Skipped>,
}

impl Owned {
    pub fn new(file: FileId, stem: String) -> Self {
        Owned {
            file,
            stem,
            policy: PolicySet::default(),
            inventory: Inventory::default(),
            skipped: Vec::new(),
        }
    }
    pub fn sink(&mut self) -> Sink<'_> {
        Sink {
            file: self.file,
            stem: self.stem.clone(),
            policy: &mut self.policy,
            inventory: &mut self.inventory,
            skipped: &mut self.skipped,
        }
    }
}

const RULE_FIELDS_HINT: &[&str] = &[
    "endpointSelector",
    "nodeSelector",
    "ingress",
    "egress",
    "ingressDeny",
    "egressDeny",
];
const POLICY_KINDS: &[&str] = &[
    "NetworkPolicy",
    "CiliumNetworkPolicy",
    "CiliumClusterwideNetworkPolicy",
];

/// Decodes one document's root node.
pub fn document(cx: &mut Cx<'_>, root: &Node, sink: &mut Sink<'_>) {
    let f = Field::root(root);
    match &root.kind {
        NodeKind::Null => {}
        NodeKind::Sequence(_) => commit_rules(cx, sink, |cx, sink, pending| {
            for (i, item) in cx.seq(&f).into_iter().enumerate() {
                cilium_rule(cx, &item, &json_scope(sink, Some(i as u32)), pending);
            }
        }),
        NodeKind::Mapping(_) if root.get("apiVersion").is_some() || root.get("kind").is_some() => {
            object(cx, &f, sink)
        }
        NodeKind::Mapping(_) if RULE_FIELDS_HINT.iter().any(|k| root.get(k).is_some()) => {
            commit_rules(cx, sink, |cx, sink, pending| {
                cilium_rule(cx, &f, &json_scope(sink, None), pending)
            })
        }
        _ => cx.at_help(
            &codes::UNKNOWN_KIND,
            &f,
            format!(
                "document is {}, neither a Kubernetes object nor a Cilium rule",
                root.kind_name()
            ),
            "a Kubernetes object has `apiVersion` and `kind`; a Cilium rule has `endpointSelector`",
        ),
    }
}

fn json_scope(sink: &Sink<'_>, index: Option<u32>) -> Scope {
    Scope {
        kind: PolicyKind::CiliumJson,
        namespace: None,
        name: sink.stem.clone(),
        file: sink.file,
        spec_index: index,
        labels: LabelSet::default(),
        audit: false,
    }
}

/// Runs `decode` and commits its rules only if it reported no error.
fn commit_rules(
    cx: &mut Cx<'_>,
    sink: &mut Sink<'_>,
    decode: impl FnOnce(&mut Cx<'_>, &Sink<'_>, &mut Pending),
) {
    let before = cx.errors();
    let mut pending = Pending::default();
    decode(cx, sink, &mut pending);
    if cx.errors() == before {
        pending.commit(sink.policy);
    }
}

/// What every inventory object without a body of its own starts with.
pub struct Head<'n> {
    /// The error count before the object: it is added when none was reported since.
    pub before: usize,
    pub map: Map<'n>,
    pub meta: Meta,
    /// `metadata.labels`.
    pub labels: Vec<(String, String)>,
}

/// Decodes an object's map, metadata and labels (`None` after an error that stops it).
pub fn head<'n>(cx: &mut Cx<'_>, f: &Field<'n>) -> Option<Head<'n>> {
    let before = cx.errors();
    let map = cx.map(f, &[], Unknown::Ignore)?;
    let meta = metadata(cx, &map)?;
    let md = map
        .get("metadata")
        .and_then(|x| cx.map(&x, &[], Unknown::Ignore));
    let labels = md.map(|md| workload::labels(cx, &md)).unwrap_or_default();
    Some(Head {
        before,
        map,
        meta,
        labels,
    })
}

/// Object metadata: name (required, a DNS subdomain) and namespace.
pub struct Meta {
    pub name: String,
    pub namespace: Option<String>,
    /// `cilium-policy.io/audit-mode: "true"` ([`super::annotations`]).
    pub audit: bool,
}

pub fn metadata(cx: &mut Cx<'_>, m: &Map<'_>) -> Option<Meta> {
    let md = cx.required(m, "metadata")?;
    let mm = cx.map(&md, &[], Unknown::Ignore)?;
    let name_f = cx.required(&mm, "name")?;
    let name = cx.str(&name_f)?.to_string();
    if !is_dns_subdomain(&name) {
        cx.at(
            &codes::INVALID_VALUE,
            &name_f,
            format!("name `{name}` is not a lowercase DNS subdomain (a-z, 0-9, `-`, `.`; at most 253 characters)"),
        );
    }
    let namespace = match mm.get("namespace") {
        Some(n) => Some(cx.str(&n)?.to_string()),
        None => None,
    };
    let audit = super::annotations::audit_mode(cx, &mm);
    Some(Meta {
        name,
        namespace,
        audit,
    })
}

/// Checks top-level fields: unknown ones are pruned by the API server (warning); a rule field
/// written beside `spec` gets a "did you mean spec.X?" hint.
fn top_level<'n>(cx: &mut Cx<'_>, f: &Field<'n>, known: &[&str]) -> Option<Map<'n>> {
    let m = cx.map(f, known, Unknown::Ignore)?;
    for (k, _) in m
        .entries()
        .filter(|(k, _)| !known.contains(&k.text.as_str()))
    {
        let help = if known.contains(&"spec") && RULE_FIELDS.contains(&k.text.as_str()) {
            Some(format!("did you mean `spec.{}`?", k.text))
        } else {
            did_you_mean(&k.text, known.iter().copied()).map(|s| format!("did you mean `{s}`?"))
        };
        let msg = format!(
            "unknown field `{}` is pruned by the API server and has no effect",
            k.text
        );
        cx.report(&codes::PRUNED_FIELD, k.span, &k.text, msg, help);
    }
    Some(m)
}

fn object(cx: &mut Cx<'_>, f: &Field<'_>, sink: &mut Sink<'_>) {
    let Some(peek) = cx.map(f, &[], Unknown::Ignore) else {
        return;
    };
    let api = cx
        .required(&peek, "apiVersion")
        .and_then(|a| cx.str(&a).map(|s| (a.clone(), s.to_string())));
    let kind = cx
        .required(&peek, "kind")
        .and_then(|k| cx.str(&k).map(|s| (k.clone(), s.to_string())));
    let (Some((api_f, api)), Some((kind_f, kind))) = (api, kind) else {
        return;
    };
    let deprecated = |cx: &mut Cx<'_>, now: &str| {
        let msg = format!("`apiVersion: {api}` is deprecated for {kind}");
        cx.at_help(
            &codes::DEPRECATED,
            &api_f,
            msg,
            format!("use `apiVersion: {now}`"),
        );
    };
    match (api.as_str(), kind.as_str()) {
        ("v1", "List") => {
            let Some(m) = top_level(cx, f, &["apiVersion", "kind", "metadata", "items"]) else {
                return;
            };
            for item in cx.seq_at(&m, "items") {
                match item.node.kind {
                    NodeKind::Mapping(_) => object(cx, &item, sink),
                    _ => cx.at(
                        &codes::WRONG_TYPE,
                        &item,
                        format!(
                            "expected a Kubernetes object, found {}",
                            item.node.kind_name()
                        ),
                    ),
                }
            }
        }
        ("networking.k8s.io/v1", "NetworkPolicy") => policy(cx, f, sink, PolicyKind::NetworkPolicy),
        ("extensions/v1beta1", "NetworkPolicy") => {
            deprecated(cx, "networking.k8s.io/v1");
            policy(cx, f, sink, PolicyKind::NetworkPolicy)
        }
        ("cilium.io/v2", "CiliumNetworkPolicy") => {
            policy(cx, f, sink, PolicyKind::CiliumNetworkPolicy)
        }
        ("cilium.io/v1", "CiliumNetworkPolicy") => {
            deprecated(cx, "cilium.io/v2");
            policy(cx, f, sink, PolicyKind::CiliumNetworkPolicy)
        }
        ("cilium.io/v2", "CiliumClusterwideNetworkPolicy") => {
            policy(cx, f, sink, PolicyKind::CiliumClusterwideNetworkPolicy)
        }
        ("cilium.io/v2", "CiliumEndpoint") => super::cilium_endpoint::cilium_endpoint(cx, f, sink),
        ("cilium.io/v2alpha1" | "cilium.io/v2", "CiliumCIDRGroup") => {
            super::cidr_group::cidr_group(cx, f, sink)
        }
        ("v1", "Node") => super::node_object::node(cx, f, sink),
        ("v1", "Service") => super::service::service(cx, f, sink),
        ("discovery.k8s.io/v1", "EndpointSlice") => super::service::endpoint_slice(cx, f, sink),
        ("v1", "Namespace" | "Pod") => workload::inventory_object(cx, f, &kind, sink),
        (a, k) if workload::is_workload(a, k) => workload::inventory_object(cx, f, &kind, sink),
        (_, k) if POLICY_KINDS.contains(&k) => {
            let expected = match k {
                "NetworkPolicy" => "networking.k8s.io/v1",
                _ => "cilium.io/v2",
            };
            cx.at_help(
                &codes::UNKNOWN_KIND,
                &api_f,
                format!("unknown apiVersion `{api}` for kind {k}"),
                format!("use `apiVersion: {expected}`"),
            );
        }
        (a, k) if a.starts_with("cilium.io/") || a.starts_with("networking.k8s.io/") => {
            match did_you_mean(k, POLICY_KINDS.iter().copied()) {
                Some(s) if s != k => cx.at_help(
                    &codes::UNKNOWN_KIND,
                    &kind_f,
                    format!("unknown kind `{k}` for `{a}`"),
                    format!("did you mean `{s}`?"),
                ),
                _ => skip(cx.file, sink, f, &api, &kind),
            }
        }
        _ => skip(cx.file, sink, f, &api, &kind),
    }
}

fn skip(file: &str, sink: &mut Sink<'_>, f: &Field<'_>, api: &str, kind: &str) {
    let name = f
        .node
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Node::as_str)
        .unwrap_or_default();
    sink.skipped.push(Skipped {
        file: file.to_string(),
        span: f.span(),
        api_version: api.into(),
        kind: kind.into(),
        name: name.into(),
    });
}

fn policy(cx: &mut Cx<'_>, f: &Field<'_>, sink: &mut Sink<'_>, kind: PolicyKind) {
    let known: &[&str] = match kind {
        PolicyKind::NetworkPolicy => &["apiVersion", "kind", "metadata", "spec", "status"],
        _ => &["apiVersion", "kind", "metadata", "spec", "specs", "status"],
    };
    let before = cx.errors();
    let Some(m) = top_level(cx, f, known) else {
        return;
    };
    let Some(meta) = metadata(cx, &m) else { return };
    let namespace = match kind {
        PolicyKind::CiliumClusterwideNetworkPolicy => None,
        _ => Some(
            meta.namespace
                .clone()
                .unwrap_or_else(|| "default".to_string()),
        ),
    };
    let labels = Scope::derived_labels(kind, &meta.name, namespace.as_deref());
    let scope = Scope {
        kind,
        namespace,
        name: meta.name,
        file: sink.file,
        spec_index: None,
        labels,
        audit: meta.audit,
    };
    let mut pending = Pending::default();
    match kind {
        PolicyKind::NetworkPolicy => match cx.required(&m, "spec") {
            Some(spec) => network_policy(cx, &spec, &scope, &mut pending),
            None => return,
        },
        _ => {
            let (spec, specs) = (m.get("spec"), m.get("specs"));
            if spec.is_none() && specs.is_none() {
                let msg = "missing required field `spec` or `specs`";
                cx.report(&codes::MISSING_FIELD, m.span(), "spec", msg, None);
            }
            if let Some(s) = spec {
                cilium_rule(cx, &s, &scope, &mut pending);
            }
            for (i, s) in specs
                .map(|s| cx.seq(&s))
                .unwrap_or_default()
                .into_iter()
                .enumerate()
            {
                let scope = Scope {
                    spec_index: Some(i as u32),
                    ..scope.clone()
                };
                cilium_rule(cx, &s, &scope, &mut pending);
            }
        }
    }
    if cx.errors() == before {
        pending.commit(sink.policy);
    }
}
