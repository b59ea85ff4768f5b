//! `Service` (v1) and `EndpointSlice` (discovery.k8s.io/v1) into the inventory: what
//! `toServices` resolves to. Only the fields that matter here are read (labels, the pod
//! selector, the slice's service and addresses); other fields of these large schemas are
//! ignored.

use super::codes;
use super::decode::{Cx, Field, Unknown};
use super::objects::{head, Sink};
use super::workload::label_map;
use ir::{EndpointSlice, Service};
use std::net::IpAddr;

/// The label linking an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Decodes a `Service` and adds it to the inventory if it has no error.
pub fn service(cx: &mut Cx<'_>, f: &Field<'_>, sink: &mut Sink<'_>) {
    let Some(h) = head(cx, f) else { return };
    let spec = h
        .map
        .get("spec")
        .and_then(|s| cx.map(&s, &[], Unknown::Ignore));
    let selector = spec
        .and_then(|s| s.get("selector"))
        .filter(|s| !s.node.is_null())
        .map(|s| label_map(cx, &s))
        .unwrap_or_default();
    if cx.errors() == h.before {
        sink.inventory.services.push(Service {
            name: h.meta.name,
            namespace: h.meta.namespace.unwrap_or_else(|| "default".into()),
            labels: h.labels,
            selector,
            file: Some(sink.file),
            span: f.span(),
        });
    }
}

/// Decodes an `EndpointSlice` and adds it to the inventory if it has no error. A slice without
/// the `kubernetes.io/service-name` label belongs to no service and is left out; FQDN slices
/// have no addresses.
pub fn endpoint_slice(cx: &mut Cx<'_>, f: &Field<'_>, sink: &mut Sink<'_>) {
    let Some(h) = head(cx, f) else { return };
    let service = h
        .labels
        .into_iter()
        .find(|(k, _)| k == SERVICE_NAME_LABEL)
        .map(|(_, v)| v);
    let family = cx
        .required(&h.map, "addressType")
        .and_then(|a| cx.str(&a).map(|s| (a.clone(), s)));
    let fqdn = match &family {
        Some((_, "IPv4" | "IPv6")) => false,
        Some((_, "FQDN")) => true,
        Some((a, other)) => {
            let msg = format!("unknown addressType `{other}` (IPv4, IPv6, FQDN)");
            cx.at(&codes::INVALID_VALUE, a, msg);
            return;
        }
        None => return,
    };
    let v6 = matches!(family, Some((_, "IPv6")));
    let mut addresses = Vec::new();
    for ep in cx.seq_at(&h.map, "endpoints") {
        let Some(em) = cx.map(&ep, &[], Unknown::Ignore) else {
            continue;
        };
        let Some(list) = em.get("addresses") else {
            continue;
        };
        for (item, s) in cx.strings(&list) {
            if fqdn {
                continue;
            }
            match s.parse::<IpAddr>() {
                Ok(ip) if ip.is_ipv6() == v6 => addresses.push(ip),
                Ok(ip) => {
                    let msg = format!("address {ip} is not of the slice's addressType");
                    cx.at(&codes::INVALID_CIDR, &item, msg);
                }
                Err(_) => cx.at(
                    &codes::INVALID_CIDR,
                    &item,
                    format!("`{s}` is not an IP address"),
                ),
            }
        }
    }
    let (Some(service), true) = (service, cx.errors() == h.before) else {
        return;
    };
    addresses.sort();
    addresses.dedup();
    sink.inventory.endpoint_slices.push(EndpointSlice {
        name: h.meta.name,
        namespace: h.meta.namespace.unwrap_or_else(|| "default".into()),
        service,
        addresses,
        file: Some(sink.file),
        span: f.span(),
    });
}

#[cfg(test)]
mod tests {
    use crate::front::FrontOutput;
    use crate::testkit::diagnostic_lines as errors;

    fn parse(text: &str) -> FrontOutput {
        crate::testkit::parse_text("s.yaml", text)
    }

    #[test]
    fn services_and_slices_go_to_the_inventory() {
        let out = parse(
            "apiVersion: v1
kind: Service
metadata: {name: db, labels: {tier: data}}
spec: {selector: {app: db}, ports: [{port: 5432}]}
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: prod}
spec: {type: ClusterIP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ext-1, namespace: prod, labels: {kubernetes.io/service-name: ext}}
addressType: IPv6
endpoints: [{addresses: [\"2001:db8::2\", \"2001:db8::1\"]}, {addresses: [\"2001:db8::1\"]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: names, namespace: prod, labels: {kubernetes.io/service-name: ext}}
addressType: FQDN
endpoints: [{addresses: [db.example.com]}]
",
        );
        assert!(out.diagnostics.is_empty(), "{:?}", errors(&out));
        let svcs = &out.inventory.services;
        assert_eq!(
            (svcs[0].namespace.as_str(), svcs[0].name.as_str()),
            ("default", "db")
        );
        assert_eq!(svcs[0].selector, [("app".to_string(), "db".to_string())]);
        assert_eq!(svcs[0].labels, [("tier".to_string(), "data".to_string())]);
        assert!(svcs[1].selector.is_empty());
        let slices = &out.inventory.endpoint_slices;
        assert_eq!(slices[0].service, "ext");
        let addrs: Vec<String> = slices[0].addresses.iter().map(|a| a.to_string()).collect();
        assert_eq!(addrs, ["2001:db8::1", "2001:db8::2"]);
        assert!(slices[1].addresses.is_empty());
    }

    #[test]
    fn bad_slices_are_reported_and_left_out() {
        let out = parse(
            "apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: s, labels: {kubernetes.io/service-name: ext}}
addressType: IPv4
endpoints: [{addresses: [\"2001:db8::1\", not-an-ip]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: t, labels: {kubernetes.io/service-name: ext}}
addressType: IPv5
",
        );
        assert!(out.inventory.endpoint_slices.is_empty());
        let got = errors(&out);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(
            got[0].starts_with("CP1012 5:26 address 2001:db8::1"),
            "{got:?}"
        );
        assert!(got[1].starts_with("CP1012 5:41"), "{got:?}");
        assert!(got[2].starts_with("CP1020 10:14"), "{got:?}");
    }

    #[test]
    fn a_bad_selector_label_is_an_error() {
        let out = parse("apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec: {selector: {\"a b\": db}}\n");
        assert!(out.inventory.services.is_empty());
        assert!(errors(&out)[0].starts_with("CP1007"), "{:?}", errors(&out));
    }
}
