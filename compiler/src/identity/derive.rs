//! Derives an endpoint's Cilium labels from its Kubernetes object, as Cilium does for pods.

use ir::{Endpoint, Label, LabelSet, Namespace};

/// `k8s:io.kubernetes.pod.namespace=<namespace>`.
pub const NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
/// Prefix of namespace labels copied onto pods: `k8s:io.cilium.k8s.namespace.labels.<key>=<value>`.
pub const NAMESPACE_LABELS_PREFIX: &str = "io.cilium.k8s.namespace.labels.";
/// `k8s:io.cilium.k8s.policy.serviceaccount=<service account>`.
pub const SERVICE_ACCOUNT_LABEL: &str = "io.cilium.k8s.policy.serviceaccount";
/// `k8s:io.cilium.k8s.policy.cluster=<cluster name>`.
pub const CLUSTER_LABEL: &str = "io.cilium.k8s.policy.cluster";
/// `Endpoint::kind` of an endpoint read from a `CiliumEndpoint`: its labels are Cilium's own.
pub const CILIUM_ENDPOINT_KIND: &str = "CiliumEndpoint";
/// The label the API server puts on every namespace (Kubernetes ≥ 1.21).
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// All labels of an endpoint (before identity-relevance filtering).
///
/// For a Kubernetes object (`namespace` is set): every pod label as `k8s:key=value`, the namespace
/// as `k8s:io.kubernetes.pod.namespace`, every label of the namespace (including the
/// `kubernetes.io/metadata.name` label the API server adds) under
/// `k8s:io.cilium.k8s.namespace.labels.`, the service account (`default` when unset, as the
/// admission controller fills it in) and the cluster name. Labels given directly in Cilium form
/// (`endpoint.labels`) are kept as they are; a `CiliumEndpoint` has only those (Cilium already
/// derived them), whatever its namespace.
pub fn derive_labels(ep: &Endpoint, ns: Option<&Namespace>, cluster: &str) -> LabelSet {
    if ep.kind == CILIUM_ENDPOINT_KIND {
        return ep.labels.clone();
    }
    let mut out: Vec<Label> = ep.labels.iter().cloned().collect();
    out.extend(
        ep.k8s_labels
            .iter()
            .map(|(k, v)| Label::k8s(k.clone(), v.clone())),
    );
    if let Some(namespace) = &ep.namespace {
        out.push(Label::k8s(NAMESPACE_LABEL, namespace.clone()));
        let mut has_name_label = false;
        for (k, v) in ns.map(|n| n.labels.as_slice()).unwrap_or(&[]) {
            has_name_label |= k == NAMESPACE_NAME_LABEL;
            out.push(Label::k8s(
                format!("{NAMESPACE_LABELS_PREFIX}{k}"),
                v.clone(),
            ));
        }
        if !has_name_label {
            out.push(Label::k8s(
                format!("{NAMESPACE_LABELS_PREFIX}{NAMESPACE_NAME_LABEL}"),
                namespace.clone(),
            ));
        }
        let sa = ep
            .service_account
            .clone()
            .unwrap_or_else(|| "default".to_string());
        out.push(Label::k8s(SERVICE_ACCOUNT_LABEL, sa));
        out.push(Label::k8s(CLUSTER_LABEL, cluster.to_string()));
    }
    LabelSet::new(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{namespace, pod};

    #[test]
    fn pod_labels_as_cilium_derives_them() {
        let ns = namespace("prod", &[("team", "a")]);
        let l = derive_labels(&pod("prod", "p", &[("id", "app1")]), Some(&ns), "default");
        assert_eq!(
            l.to_string(),
            "k8s:id=app1 k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=prod \
             k8s:io.cilium.k8s.namespace.labels.team=a k8s:io.cilium.k8s.policy.cluster=default \
             k8s:io.cilium.k8s.policy.serviceaccount=default k8s:io.kubernetes.pod.namespace=prod"
        );
    }

    #[test]
    fn cilium_endpoint_labels_are_kept_as_given() {
        let mut ep = pod("prod", "cep", &[]);
        ep.kind = CILIUM_ENDPOINT_KIND.into();
        ep.labels = LabelSet::new(vec![Label::k8s("id", "app1")]);
        let ns = namespace("prod", &[("team", "a")]);
        assert_eq!(
            derive_labels(&ep, Some(&ns), "default").to_string(),
            "k8s:id=app1"
        );
    }
}
