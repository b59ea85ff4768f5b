//! `CiliumCIDRGroup` (cilium.io/v2alpha1, v2): a cluster-scoped, named list of external CIDRs
//! that `fromCIDRSet`/`toCIDRSet` entries refer to with `cidrGroupRef`.

use super::cidr::cidr;
use super::decode::{Cx, Field, Unknown};
use super::objects::{metadata, Sink};
use ir::CidrGroup;

/// Decodes a `CiliumCIDRGroup` and adds it to the inventory if it has no error.
pub fn cidr_group(cx: &mut Cx<'_>, f: &Field<'_>, sink: &mut Sink<'_>) {
    let before = cx.errors();
    let Some(m) = cx.map(
        f,
        &["apiVersion", "kind", "metadata", "spec", "status"],
        Unknown::Error,
    ) else {
        return;
    };
    let meta = metadata(cx, &m);
    let Some(spec) = cx
        .required(&m, "spec")
        .and_then(|s| cx.map(&s, &["externalCIDRs"], Unknown::Error))
    else {
        return;
    };
    let mut cidrs = Vec::new();
    if let Some(list) = cx.required(&spec, "externalCIDRs") {
        for item in cx.seq(&list) {
            cidrs.extend(cidr(cx, &item).map(|c| c.trunc()));
        }
    }
    if let (Some(meta), true) = (meta, cx.errors() == before) {
        sink.inventory.cidr_groups.push(CidrGroup {
            name: meta.name,
            cidrs,
            file: Some(sink.file),
            span: f.span(),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::front::FrontOutput;
    use crate::testkit::diagnostic_lines as errors;
    use ir::Peer;

    fn parse(text: &str) -> FrontOutput {
        crate::testkit::parse_text("g.yaml", text)
    }

    #[test]
    fn a_group_goes_to_the_inventory() {
        let out = parse(
            "apiVersion: cilium.io/v2alpha1\nkind: CiliumCIDRGroup\nmetadata: {name: vpn}\nspec:\n  externalCIDRs: [10.48.0.1/24, \"2001:db8::/64\"]\n",
        );
        assert!(out.diagnostics.is_empty(), "{:?}", errors(&out));
        let g = &out.inventory.cidr_groups[0];
        assert_eq!(g.name, "vpn");
        let cidrs: Vec<String> = g.cidrs.iter().map(|c| c.to_string()).collect();
        assert_eq!(cidrs, ["10.48.0.0/24", "2001:db8::/64"]);
    }

    #[test]
    fn a_bad_group_is_reported_and_left_out() {
        let out = parse(
            "apiVersion: cilium.io/v2\nkind: CiliumCIDRGroup\nmetadata: {name: vpn}\nspec:\n  externalCIDRs: [10.48.0.0/33]\n  cidrs: []\n",
        );
        assert!(out.inventory.cidr_groups.is_empty());
        let got = errors(&out);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got.iter().any(|e| e.starts_with("CP1012 5:19")), "{got:?}");
        assert!(got.iter().any(|e| e.starts_with("CP1003 6:3")), "{got:?}");
        let out = parse(
            "apiVersion: cilium.io/v2\nkind: CiliumCIDRGroup\nmetadata: {name: vpn}\nspec: {}\n",
        );
        assert!(errors(&out)[0].starts_with("CP1005"), "{:?}", errors(&out));
    }

    const RULE: &str = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\nspec:\n  endpointSelector: {}\n  egress:\n  - toCIDRSet:\n";

    #[test]
    fn cidr_group_refs_are_peers_with_their_excepts() {
        let out = parse(&format!(
            "{RULE}    - {{cidrGroupRef: vpn, except: [10.48.0.128/25]}}\n"
        ));
        assert!(out.diagnostics.is_empty(), "{:?}", errors(&out));
        let ir::PeerSet::Some(peers) = &out.policy.rules[0].peers else {
            panic!("peers");
        };
        assert_eq!(
            peers[0],
            Peer::CidrGroup {
                name: "vpn".into(),
                except: vec!["10.48.0.128/25".parse().unwrap()],
            }
        );
    }

    #[test]
    fn cidr_and_group_together_or_a_bad_name_are_errors() {
        let out = parse(&format!(
            "{RULE}    - {{cidr: 10.0.0.0/8, cidrGroupRef: vpn}}\n    - {{cidrGroupRef: VPN_1}}\n"
        ));
        let got = errors(&out);
        assert!(out.policy.rules.is_empty());
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with("CP1021 8:40"), "{got:?}");
        assert!(got[1].starts_with("CP1020 9:22"), "{got:?}");
    }
}
