//! Lowering truth tables: the expected IR of each case is written by hand from the Kubernetes
//! NetworkPolicy and Cilium policy documentation (namespacing, isolation, peers), not produced by
//! the code under test.

use compiler::front::{parse_sources, FrontOutput, Source};

fn parse(text: &str) -> FrontOutput {
    parse_sources(vec![Source {
        path: "t.yaml".into(),
        text: text.as_bytes().to_vec(),
    }])
}

/// The subject, peer and port lines of every rule (header and labels left out).
fn body(out: &FrontOutput) -> String {
    let errors = out.error_messages();
    assert!(errors.is_empty(), "{errors:#?}");
    ir::text::render(&out.policy)
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("  labels"))
        .map(|l| format!("{}\n", l.trim()))
        .collect()
}

const NP: &str =
    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p\n  namespace: shop\nspec:\n";

#[test]
fn np_pod_and_namespace_selector_in_one_peer_is_an_and() {
    let out = parse(&format!(
        "{NP}  podSelector: {{matchLabels: {{app: db}}}}\n  ingress:\n  - from:\n    - namespaceSelector: {{matchLabels: {{team: a}}}}\n      podSelector: {{matchLabels: {{app: web}}}}\n    - namespaceSelector: {{}}\n"
    ));
    assert_eq!(
        body(&out),
        "subject {k8s:app=db, k8s:io.kubernetes.pod.namespace=shop}\n\
         allow endpoints {k8s:app=web, k8s:io.cilium.k8s.namespace.labels.team=a}\n\
         allow endpoints {k8s:io.kubernetes.pod.namespace}\n\
         ports *\n"
    );
}

#[test]
fn np_default_policy_types_and_isolation() {
    // No policyTypes, egress rules present: Ingress (isolated, no rules) and Egress.
    let out = parse(&format!(
        "{NP}  podSelector: {{}}\n  egress:\n  - ports:\n    - port: dns\n      protocol: UDP\n"
    ));
    assert_eq!(
        body(&out),
        "subject {k8s:io.kubernetes.pod.namespace=shop}\nallow none (enforce only)\nports *\n\
         subject {k8s:io.kubernetes.pod.namespace=shop}\nallow from-or-to any\nport UDP \"dns\"\n"
    );
    let rules = &out.policy.rules;
    assert_eq!(
        (rules[0].direction, rules[1].direction),
        (ir::Direction::Ingress, ir::Direction::Egress)
    );
}

#[test]
fn np_namespace_defaults_to_default_and_port_without_number_is_all_ports() {
    let text = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  podSelector: {}\n  ingress:\n  - ports: [{protocol: SCTP}]\n";
    assert_eq!(
        body(&parse(text)),
        "subject {k8s:io.kubernetes.pod.namespace=default}\nallow from-or-to any\nport SCTP\n"
    );
}

const CNP: &str = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: p\n  namespace: shop\n";

#[test]
fn cnp_empty_rule_enforces_and_ports_only_rule_is_l4_only() {
    let out = parse(&format!(
        "{CNP}spec:\n  endpointSelector: {{matchLabels: {{app: db}}}}\n  ingress:\n  - {{}}\n  - toPorts: [{{ports: [{{port: \"0\", protocol: UDP}}]}}]\n  egress:\n  - fromRequires: []\n    toRequires: [{{matchLabels: {{env: prod}}}}]\n"
    ));
    assert!(
        out.diagnostics.iter().any(|d| d.code.code == "CP1003"),
        "fromRequires is not an egress field"
    );
    let out = parse(&format!(
        "{CNP}spec:\n  endpointSelector: {{matchLabels: {{app: db}}}}\n  ingress:\n  - {{}}\n  - toPorts: [{{ports: [{{port: \"0\", protocol: UDP}}]}}]\n  egress:\n  - toRequires: [{{matchLabels: {{env: prod}}}}]\n"
    ));
    assert_eq!(
        body(&out),
        "subject {any:app=db, k8s:io.kubernetes.pod.namespace=shop}\nallow none (enforce only)\nports *\n\
         subject {any:app=db, k8s:io.kubernetes.pod.namespace=shop}\nallow from-or-to any\nport UDP\n\
         subject {any:app=db, k8s:io.kubernetes.pod.namespace=shop}\nallow none (enforce only)\n\
         requires {any:env=prod, k8s:io.kubernetes.pod.namespace=shop}\nports *\n"
    );
}

#[test]
fn cnp_peers_keep_their_own_namespace_and_reserved_selectors_get_none() {
    let out = parse(&format!(
        "{CNP}spec:\n  endpointSelector: {{}}\n  ingress:\n  - fromEndpoints:\n    - matchLabels: {{k8s:io.kubernetes.pod.namespace: other, app: x}}\n    - matchLabels: {{reserved:init: \"\"}}\n    - {{}}\n"
    ));
    assert_eq!(
        body(&out),
        "subject {k8s:io.kubernetes.pod.namespace=shop}\n\
         allow endpoints {any:app=x, k8s:io.kubernetes.pod.namespace=other}\n\
         allow endpoints {reserved:init=}\n\
         allow endpoints {k8s:io.kubernetes.pod.namespace=shop}\n\
         ports *\n"
    );
}

/// Cilium's `fromNodes`/`toNodes` are endpoint selectors over node labels (unprefixed keys
/// `any:`), not scoped to the policy's namespace (nodes have none), in CNPs and CCNPs alike;
/// enforced, so no `not-enforced` warning.
#[test]
fn node_selectors_are_never_namespaced() {
    let ccnp =
        "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata:\n  name: c\n";
    for head in [CNP, ccnp] {
        let out = parse(&format!(
            "{head}spec:\n  endpointSelector: {{matchLabels: {{app: db}}}}\n  ingress:\n  - fromNodes:\n    - matchLabels: {{node-role.kubernetes.io/control-plane: \"\"}}\n  egressDeny:\n  - toNodes:\n    - matchExpressions: [{{key: k8s:zone, operator: In, values: [a]}}]\n    - {{}}\n    toPorts: [{{ports: [{{port: \"22\"}}]}}]\n"
        ));
        assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
        let text = body(&out);
        let rules: Vec<&str> = text.lines().filter(|l| !l.starts_with("subject")).collect();
        assert_eq!(
            rules,
            [
                "allow nodes {any:node-role.kubernetes.io/control-plane=}",
                "ports *",
                "deny nodes {k8s:zone=a}",
                "deny nodes {}",
                "port ANY 22",
            ],
        );
    }
    let out = parse(&format!(
        "{CNP}spec:\n  endpointSelector: {{}}\n  ingress:\n  - fromNodes:\n    - matchLabels: {{bad key: x}}\n"
    ));
    assert!(!out.diagnostics.is_empty());
    assert!(out.diagnostics[0]
        .path
        .starts_with("spec.ingress[0].fromNodes[0]"));
    assert!(
        out.policy.rules.is_empty(),
        "an object with an error is left out whole"
    );
}

/// Cilium's `getEndpointSelector` (pkg/k8s/apis/cilium.io/utils/utils.go): clusterwide peer
/// selectors without a pod-namespace key get `k8s:io.kubernetes.pod.namespace` Exists, unless
/// they are endpoint selectors with a reserved key or the subject selects `reserved:init`;
/// requires selectors are scoped even with a reserved key.
#[test]
fn ccnp_peer_scoping_follows_cilium() {
    let ccnp = "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: c}\nspec:\n  endpointSelector: {}\n  ingress:\n  - fromEndpoints:\n    - {}\n    - matchLabels: {reserved:host: \"\"}\n    - matchLabels: {io.kubernetes.pod.namespace: kube-system}\n    - matchLabels: {k8s:io.cilium.k8s.namespace.labels.team: a}\n    fromRequires:\n    - matchLabels: {reserved:world: \"\"}\n";
    assert_eq!(
        body(&parse(ccnp)),
        "subject {}\n\
         allow endpoints {k8s:io.kubernetes.pod.namespace}\n\
         allow endpoints {reserved:host=}\n\
         allow endpoints {any:io.kubernetes.pod.namespace=kube-system}\n\
         allow endpoints {k8s:io.cilium.k8s.namespace.labels.team=a, k8s:io.kubernetes.pod.namespace}\n\
         requires {k8s:io.kubernetes.pod.namespace, reserved:world=}\nports *\n"
    );
    // A policy for initializing endpoints: they have no namespace label, so nothing is added.
    let init = "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: c}\nspec:\n  endpointSelector: {matchLabels: {reserved:init: \"\"}}\n  egress:\n  - toEndpoints: [{}]\n";
    assert_eq!(
        body(&parse(init)),
        "subject {reserved:init=}\nallow endpoints {}\nports *\n"
    );
}

#[test]
fn cnp_requires_with_reserved_keys_are_namespaced() {
    let out = parse(&format!(
        "{CNP}spec:\n  endpointSelector: {{}}\n  ingress:\n  - fromEndpoints: [{{matchLabels: {{app: x}}}}]\n    fromRequires: [{{matchLabels: {{reserved:world: \"\"}}}}]\n"
    ));
    assert_eq!(
        body(&out),
        "subject {k8s:io.kubernetes.pod.namespace=shop}\n\
         allow endpoints {any:app=x, k8s:io.kubernetes.pod.namespace=shop}\n\
         requires {k8s:io.kubernetes.pod.namespace=shop, reserved:world=}\nports *\n"
    );
}

#[test]
fn ccnp_peers_select_only_pods_and_json_rules_add_no_namespace() {
    let ccnp = "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: c}\nspec:\n  endpointSelector: {matchLabels: {app: a}}\n  egress:\n  - toEndpoints: [{matchLabels: {app: b}}]\n    icmps: [{fields: [{type: 8}, {type: EchoRequest, family: IPv6}]}]\n";
    assert_eq!(
        body(&parse(ccnp)),
        "subject {any:app=a}\nallow endpoints {any:app=b, k8s:io.kubernetes.pod.namespace}\nport ICMP type 8\nport ICMPv6 type 128\n"
    );
    let json = r#"[{"endpointSelector": {"matchLabels": {"app": "a"}}, "ingressDeny": [{"fromCIDRSet": [{"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}], "toPorts": [{"ports": [{"port": "80", "endPort": 90}]}]}]}]"#;
    let out = parse_sources(vec![Source {
        path: "r.json".into(),
        text: json.as_bytes().to_vec(),
    }]);
    assert_eq!(
        body(&out),
        "subject {any:app=a}\ndeny cidr 10.0.0.0/8 except 10.1.0.0/16\nport ANY 80-90\n"
    );
}

#[test]
fn a_bad_spec_rejects_its_object_and_nothing_else() {
    let text = format!(
        "{CNP}specs:\n- endpointSelector: {{}}\n  ingress: [{{fromEntities: [world]}}]\n- endpointSelector: {{}}\n  ingress: [{{fromEntities: [wrld]}}]\n---\n{CNP}spec:\n  endpointSelector: {{}}\n  egress: [{{toEntities: [cluster]}}]\n"
    );
    let out = parse(&text);
    let codes: Vec<&str> = out.diagnostics.iter().map(|d| d.code.code).collect();
    assert_eq!(codes, ["CP1014"]);
    assert_eq!(
        out.diagnostics[0].path,
        "specs[1].ingress[0].fromEntities[0]"
    );
    assert_eq!(
        (out.diagnostics[0].span.line, out.diagnostics[0].span.column),
        (10, 29)
    );
    assert_eq!(out.policy.rules.len(), 1);
    assert_eq!(out.policy.rules[0].direction, ir::Direction::Egress);
}

#[test]
fn every_independent_error_is_reported() {
    let text = format!(
        "{CNP}spec:\n  endpointSelector: {{matchLabel: {{}}}}\n  ingress:\n  - fromEntities: [wrld]\n    toPorts: [{{ports: [{{port: \"99999\"}}, {{port: \"80\", protocol: XTP}}]}}]\n"
    );
    let codes: Vec<&str> = parse(&text)
        .diagnostics
        .iter()
        .map(|d| d.code.code)
        .collect();
    assert_eq!(codes, ["CP1003", "CP1014", "CP1009", "CP1011"]);
}

#[test]
fn list_kind_and_inventory_objects() {
    let text = "apiVersion: v1\nkind: List\nitems:\n\
- apiVersion: v1\n  kind: Namespace\n  metadata: {name: shop, labels: {team: a}}\n\
- apiVersion: v1\n  kind: Pod\n  metadata: {name: web-1, namespace: shop, labels: {app: web}}\n  spec:\n    serviceAccountName: web\n    containers: [{name: c, ports: [{name: http, containerPort: 8080}, {containerPort: 9090}]}]\n  status: {podIP: 10.0.0.5, podIPs: [{ip: 10.0.0.5}, {ip: 'fd00::5'}]}\n\
- apiVersion: batch/v1\n  kind: CronJob\n  metadata: {name: nightly}\n  spec:\n    jobTemplate:\n      spec:\n        template:\n          metadata: {labels: {job: nightly}}\n          spec: {containers: [{name: c}]}\n\
- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: cfg}\n";
    let out = parse(text);
    assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
    let ns = &out.inventory.namespaces[0];
    assert_eq!(
        ns.labels,
        [
            ("team".to_string(), "a".to_string()),
            (
                "kubernetes.io/metadata.name".to_string(),
                "shop".to_string()
            )
        ]
    );
    let eps = &out.inventory.endpoints;
    assert_eq!(eps.len(), 2);
    assert_eq!(
        (
            eps[0].name.as_str(),
            eps[0].kind.as_str(),
            eps[0].service_account.as_deref()
        ),
        ("shop/web-1", "Pod", Some("web"))
    );
    assert_eq!(
        eps[0].ports,
        [ir::NamedPort {
            name: "http".into(),
            port: 8080,
            protocol: ir::Protocol::Tcp
        }]
    );
    let ips: Vec<String> = eps[0].ips.iter().map(|i| i.to_string()).collect();
    assert_eq!(ips, ["10.0.0.5", "fd00::5"]);
    assert_eq!(
        (eps[1].name.as_str(), &eps[1].k8s_labels[..]),
        (
            "default/nightly",
            &[("job".to_string(), "nightly".to_string())][..]
        )
    );
    assert_eq!(out.skipped.len(), 1);
    assert_eq!(
        (
            out.skipped[0].kind.as_str(),
            out.skipped[0].name.as_str(),
            out.skipped[0].span.line
        ),
        ("ConfigMap", "cfg", 23)
    );
}

#[test]
fn binary_and_non_utf8_input_is_an_error_not_a_crash() {
    for bytes in [&b"\xff\xfe a\0b"[..], &b"a: \xe9\n"[..], &b"a: b\0"[..]] {
        let out = parse_sources(vec![Source {
            path: "bin.yaml".into(),
            text: bytes.to_vec(),
        }]);
        let codes: Vec<&str> = out.diagnostics.iter().map(|d| d.code.code).collect();
        assert_eq!(codes, ["CP1019"], "{bytes:?}");
        assert_eq!(out.diagnostics[0].file, "bin.yaml");
    }
}
