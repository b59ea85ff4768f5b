//! `CiliumEndpoint` (cilium.io/v2) into the endpoint inventory: an endpoint given directly by its
//! Cilium labels (`status.identity.labels`, `source:key=value` strings, taken as they are: no
//! Kubernetes derivation), its addresses (`status.networking.addressing[].ipv4/ipv6`) and named
//! ports (`status.named-ports`). The object is the agent's own report, so the rest of its
//! status (endpoint id, numeric identity, policy state) is ignored: identities are allocated here.

use super::codes;
use super::decode::{Cx, Field, Map, Unknown};
use super::objects::{metadata, Sink};
use ir::{Endpoint, Label, LabelSet, LabelSource, NamedPort};
use std::net::IpAddr;

/// `source:key=value` or `source:key`, as Cilium prints labels.
fn parse_label(s: &str) -> Result<Label, String> {
    let Some((source, rest)) = s.split_once(':').filter(|(src, _)| !src.contains('=')) else {
        return Err(format!(
            "label `{s}` has no source: expected `source:key=value`"
        ));
    };
    let (key, value) = rest.split_once('=').unwrap_or((rest, ""));
    if source.is_empty() || key.is_empty() {
        return Err(format!(
            "label `{s}` has an empty source or key: expected `source:key=value`"
        ));
    }
    if s.chars().any(char::is_whitespace) {
        return Err(format!("label `{s}` contains white space"));
    }
    Ok(Label::new(LabelSource::parse(source), key, value))
}

fn identity_labels(cx: &mut Cx<'_>, status: &Map<'_>) -> Option<LabelSet> {
    let identity = cx.required(status, "identity")?;
    let identity = cx.map(&identity, &[], Unknown::Ignore)?;
    let list = cx.required(&identity, "labels")?;
    let mut labels = Vec::new();
    for item in cx.seq(&list) {
        let Some(text) = cx.str(&item) else { continue };
        match parse_label(text) {
            Ok(l) => labels.push(l),
            Err(msg) => cx.at(&codes::INVALID_CILIUM_ENDPOINT, &item, msg),
        }
    }
    Some(LabelSet::new(labels))
}

fn addresses(cx: &mut Cx<'_>, status: &Map<'_>, ips: &mut Vec<IpAddr>) {
    let Some(net) = status
        .get("networking")
        .and_then(|n| cx.map(&n, &[], Unknown::Ignore))
    else {
        return;
    };
    for a in cx.seq_at(&net, "addressing") {
        let Some(am) = cx.map(&a, &[], Unknown::Ignore) else {
            continue;
        };
        for (family, v4, shown) in [("ipv4", true, "IPv4"), ("ipv6", false, "IPv6")] {
            let Some(f) = am.get(family) else { continue };
            let Some(text) = cx.str(&f) else { continue };
            match text.parse::<IpAddr>() {
                Ok(ip) if ip.is_ipv4() == v4 => {
                    if !ips.contains(&ip) {
                        ips.push(ip);
                    }
                }
                _ => cx.at(
                    &codes::INVALID_CILIUM_ENDPOINT,
                    &f,
                    format!("`{text}` is not an {shown} address"),
                ),
            }
        }
    }
}

fn named_ports(cx: &mut Cx<'_>, status: &Map<'_>, ports: &mut Vec<NamedPort>) {
    for p in cx.seq_at(status, "named-ports") {
        let Some(pm) = cx.map(&p, &[], Unknown::Ignore) else {
            continue;
        };
        let (Some(name_f), Some(port_f)) = (cx.required(&pm, "name"), cx.required(&pm, "port"))
        else {
            continue;
        };
        let (Some(name), Some(port)) = (cx.str(&name_f), cx.int(&port_f)) else {
            continue;
        };
        let Ok(port @ 1..=65535) = u16::try_from(port) else {
            let msg = format!("named port `{name}`: {port} is outside 1-65535");
            cx.at(&codes::INVALID_CILIUM_ENDPOINT, &port_f, msg);
            continue;
        };
        let flavor = super::ports::Flavor::NetworkPolicy; // a container port: TCP by default
        let protocol = super::ports::protocol(cx, pm.get("protocol").as_ref(), flavor);
        if let Some(protocol) = protocol {
            ports.push(NamedPort {
                name: name.to_ascii_lowercase(),
                port,
                protocol,
            });
        }
    }
}

/// Decodes a `CiliumEndpoint` and adds it to the inventory if it has no error.
pub fn cilium_endpoint(cx: &mut Cx<'_>, f: &Field<'_>, sink: &mut Sink<'_>) {
    let before = cx.errors();
    let Some(m) = cx.map(f, &[], Unknown::Ignore) else {
        return;
    };
    let Some(meta) = metadata(cx, &m) else { return };
    let Some(status) = cx
        .required(&m, "status")
        .and_then(|s| cx.map(&s, &[], Unknown::Ignore))
    else {
        return;
    };
    let Some(labels) = identity_labels(cx, &status) else {
        return;
    };
    let namespace = meta.namespace.unwrap_or_else(|| "default".to_string());
    let mut ep = Endpoint {
        name: format!("{namespace}/{}", meta.name),
        namespace: Some(namespace),
        kind: crate::identity::CILIUM_ENDPOINT_KIND.to_string(),
        workload: None,
        k8s_labels: Vec::new(),
        labels,
        service_account: None,
        ports: Vec::new(),
        ips: Vec::new(),
        node: None,
        file: Some(sink.file),
        span: f.span(),
    };
    addresses(cx, &status, &mut ep.ips);
    named_ports(cx, &status, &mut ep.ports);
    if cx.errors() == before {
        sink.inventory.endpoints.push(ep);
    }
}

#[cfg(test)]
mod tests {
    use super::parse_label;
    use crate::front::{parse_sources, Source};
    use ir::{Label, LabelSource};

    fn diagnostics(status: &str) -> Vec<String> {
        let text = format!(
            "apiVersion: cilium.io/v2\nkind: CiliumEndpoint\nmetadata:\n  name: e\nstatus:\n{status}"
        );
        let out = parse_sources(vec![Source {
            path: "cep.yaml".into(),
            text: text.into_bytes(),
        }]);
        assert!(out.inventory.endpoints.is_empty() || out.diagnostics.is_empty());
        out.diagnostics.iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn malformed_status_fields_are_located() {
        let labels = "  identity:\n    labels: [k8s:app=a]\n";
        let v6_as_v4 = format!("{labels}  networking:\n    addressing:\n    - ipv4: fd00::1\n");
        assert_eq!(
            diagnostics(&v6_as_v4),
            [
                "cep.yaml:10:13: error[CP1022]: `fd00::1` is not an IPv4 address \
              (at status.networking.addressing[0].ipv4)"
            ]
        );
        let port = format!("{labels}  named-ports:\n  - name: http\n    port: 70000\n");
        assert_eq!(
            diagnostics(&port),
            [
                "cep.yaml:10:11: error[CP1022]: named port `http`: 70000 is outside 1-65535 \
              (at status.named-ports[0].port)"
            ]
        );
        let missing = diagnostics("  state: ready\n");
        assert!(missing[0].contains("CP1005"), "{missing:?}");
        assert!(diagnostics(labels).is_empty());
    }

    #[test]
    fn labels_are_read_as_cilium_prints_them() {
        assert_eq!(parse_label("k8s:app=a"), Ok(Label::k8s("app", "a")));
        assert_eq!(parse_label("reserved:host"), Ok(Label::reserved("host")));
        assert_eq!(
            parse_label("container:id=a:b"),
            Ok(Label::new(LabelSource::Container, "id", "a:b"))
        );
        for bad in ["app=a:b", "app", ":app=a", "k8s:=a", "k8s:a b=c"] {
            assert!(parse_label(bad).is_err(), "{bad}");
        }
    }
}
