//! The same generated cluster written as manifest files, as a user would keep them: per namespace
//! a `Namespace` YAML, the pods as `kubectl get pods -n NS -o json` output (a `List`), and the
//! policies as YAML (two NetworkPolicies and two CiliumNetworkPolicies).

use super::{NAMESPACES, PODS_PER_NS};
use std::fmt::Write;
use std::path::Path;

fn pod_json(n: usize, i: usize) -> String {
    let app = i % 5;
    let tier = i % 2;
    let ip = format!("10.{}.{}.{}", n / 250, n % 250, i + 1);
    format!(
        r#"    {{
      "apiVersion": "v1",
      "kind": "Pod",
      "metadata": {{
        "creationTimestamp": "2026-11-20T10:{m:02}:00Z",
        "generateName": "app{app}-t{tier}-6f9c{n:04}-",
        "labels": {{
          "app": "app{app}",
          "tier": "t{tier}",
          "pod-template-hash": "6f9c{n:04}{i:02}"
        }},
        "name": "pod{i}",
        "namespace": "ns{n}",
        "ownerReferences": [
          {{
            "apiVersion": "apps/v1",
            "blockOwnerDeletion": true,
            "controller": true,
            "kind": "ReplicaSet",
            "name": "app{app}-t{tier}-6f9c{n:04}",
            "uid": "5d0c{n:04}-{i:04}-4e1a-9b7e-000000000000"
          }}
        ],
        "resourceVersion": "{rv}",
        "uid": "a1b2{n:04}-{i:04}-4c3d-8e9f-000000000000"
      }},
      "spec": {{
        "containers": [
          {{
            "image": "registry.example.com/app{app}:1.{tier}.0",
            "imagePullPolicy": "IfNotPresent",
            "name": "app",
            "ports": [
              {{ "containerPort": 8080, "name": "http", "protocol": "TCP" }}
            ],
            "resources": {{ "requests": {{ "cpu": "100m", "memory": "128Mi" }} }}
          }}
        ],
        "dnsPolicy": "ClusterFirst",
        "nodeName": "node-{node}",
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "serviceAccountName": "default",
        "terminationGracePeriodSeconds": 30
      }},
      "status": {{
        "hostIP": "172.16.0.{node}",
        "phase": "Running",
        "podIP": "{ip}",
        "podIPs": [ {{ "ip": "{ip}" }} ],
        "qosClass": "Burstable",
        "startTime": "2026-11-20T10:{m:02}:05Z"
      }}
    }}"#,
        m = (n + i) % 60,
        rv = 100_000 + n * 100 + i,
        node = (n * PODS_PER_NS + i) % 50 + 1,
    )
}

fn pods_list(n: usize) -> String {
    let items: Vec<String> = (0..PODS_PER_NS).map(|i| pod_json(n, i)).collect();
    format!(
        "{{\n  \"apiVersion\": \"v1\",\n  \"items\": [\n{}\n  ],\n  \"kind\": \"List\",\n  \"metadata\": {{ \"resourceVersion\": \"\" }}\n}}\n",
        items.join(",\n")
    )
}

fn namespace_yaml(n: usize) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns{n}\n  labels:\n    team: team{}\n",
        n % 10
    )
}

/// The four policies of namespace `n` (the rules of [`super::generate`], as manifests).
fn policies_yaml(n: usize) -> String {
    let a = |k: usize| format!("app{}", (n + k) % 5);
    let mut s = String::new();
    let _ = write!(
        s,
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: np-app
  namespace: ns{n}
spec:
  podSelector:
    matchLabels:
      app: {a0}
  policyTypes: [Ingress]
  ingress:
    - from:
        - podSelector:
            matchLabels:
              app: {a1}
      ports:
        - protocol: TCP
          port: 80
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: np-team
  namespace: ns{n}
spec:
  podSelector:
    matchLabels:
      app: {a1}
  policyTypes: [Ingress]
  ingress:
    - from:
        - namespaceSelector:
            matchLabels:
              team: team{team}
      ports:
        - protocol: TCP
          port: 443
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: cnp-range
  namespace: ns{n}
spec:
  endpointSelector:
    matchLabels:
      app: {a2}
  ingress:
    - fromEndpoints:
        - matchLabels:
            app: {a3}
      toPorts:
        - ports:
            - port: \"8080\"
              endPort: 8090
              protocol: TCP
  egress:
    - toEntities: [world]
      toPorts:
        - ports:
            - port: \"443\"
              protocol: TCP
    - toCIDR: [192.168.{cidr}.0/24]
      toPorts:
        - ports:
            - port: \"443\"
              protocol: TCP
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: cnp-deny
  namespace: ns{n}
spec:
  endpointSelector:
    matchLabels:
      app: {a3}
  ingressDeny:
    - fromEntities: [all]
      toPorts:
        - ports:
            - port: \"22\"
              protocol: TCP
",
        a0 = a(0),
        a1 = a(1),
        a2 = a(2),
        a3 = a(3),
        team = (n + 1) % 10,
        cidr = n % 250,
    );
    s
}

/// Writes the cluster under `dir`: `nsN/namespace.yaml`, `nsN/pods.json`, `nsN/policies.yaml`.
pub fn write_manifests(dir: &Path) -> std::io::Result<()> {
    for n in 0..NAMESPACES {
        let d = dir.join(format!("ns{n}"));
        std::fs::create_dir_all(&d)?;
        std::fs::write(d.join("namespace.yaml"), namespace_yaml(n))?;
        std::fs::write(d.join("pods.json"), pods_list(n))?;
        std::fs::write(d.join("policies.yaml"), policies_yaml(n))?;
    }
    Ok(())
}
