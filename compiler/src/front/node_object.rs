//! `Node` (v1) into the inventory: its labels and `InternalIP` addresses, which get the `host`
//! identity on the node itself and `remote-node` elsewhere. Other fields are ignored.

use super::codes;
use super::decode::{Cx, Field, Unknown};
use super::objects::{head, Sink};
use std::net::IpAddr;

/// Decodes a `Node` and adds it to the inventory if it has no error.
pub fn node(cx: &mut Cx<'_>, f: &Field<'_>, sink: &mut Sink<'_>) {
    let Some(h) = head(cx, f) else { return };
    let mut addresses = Vec::new();
    let status = h
        .map
        .get("status")
        .and_then(|s| cx.map(&s, &[], Unknown::Ignore));
    for a in status
        .map(|s| cx.seq_at(&s, "addresses"))
        .unwrap_or_default()
    {
        let Some(am) = cx.map(&a, &[], Unknown::Ignore) else {
            continue;
        };
        let kind = am.get("type").and_then(|t| cx.str(&t));
        let (Some("InternalIP"), Some(addr)) = (kind, cx.required(&am, "address")) else {
            continue;
        };
        let Some(s) = cx.str(&addr) else { continue };
        match s.parse::<IpAddr>() {
            Ok(ip) if !addresses.contains(&ip) => addresses.push(ip),
            Ok(_) => {}
            Err(_) => cx.at(
                &codes::INVALID_CIDR,
                &addr,
                format!("InternalIP `{s}` is not an IP address"),
            ),
        }
    }
    if cx.errors() == h.before {
        sink.inventory.nodes.push(ir::Node {
            name: h.meta.name,
            labels: h.labels,
            addresses,
            file: Some(sink.file),
            span: f.span(),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::front::{parse_sources, Source};

    #[test]
    fn internal_ips_and_labels() {
        let text = "apiVersion: v1
kind: Node
metadata: {name: worker-1, labels: {zone: a}}
status:
  addresses:
  - {type: Hostname, address: worker-1}
  - {type: InternalIP, address: 172.18.0.3}
  - {type: InternalIP, address: \"fc00::3\"}
  - {type: ExternalIP, address: 203.0.113.3}
---
apiVersion: v1
kind: Node
metadata: {name: bad}
status:
  addresses: [{type: InternalIP, address: 172.18.0.300}]
---
apiVersion: v1
kind: Pod
metadata: {name: p}
spec: {nodeName: worker-1}
";
        let out = parse_sources(vec![Source {
            path: "n.yaml".into(),
            text: text.as_bytes().to_vec(),
        }]);
        let errs: Vec<String> = out
            .diagnostics
            .iter()
            .map(|d| format!("{} {}:{}", d.code.code, d.span.line, d.span.column))
            .collect();
        assert_eq!(errs, ["CP1012 15:43"]);
        let n = &out.inventory.nodes;
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].labels, [("zone".to_string(), "a".to_string())]);
        let addrs: Vec<String> = n[0].addresses.iter().map(|a| a.to_string()).collect();
        assert_eq!(addrs, ["172.18.0.3", "fc00::3"]);
        assert_eq!(out.inventory.endpoints[0].node.as_deref(), Some("worker-1"));
    }
}
