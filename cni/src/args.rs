//! Where an endpoint's identity comes from: `CNI_ARGS` (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`) and
//! `args.cni.labels` in the network configuration.

use serde_json::Value;

/// `KEY=VALUE;KEY=VALUE` (the spec's `CNI_ARGS`); a pair without `=` is an error.
pub fn parse_cni_args(s: &str) -> Result<Vec<(String, String)>, String> {
    s.split(';')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| format!("CNI_ARGS: `{p}` is not KEY=VALUE"))
        })
        .collect()
}

/// The pod a runtime names: `namespace/name` (namespace `default` when absent), or `None`.
pub fn pod_of(args: &[(String, String)]) -> Option<String> {
    let get = |k: &str| args.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
    let name = get("K8S_POD_NAME").filter(|n| !n.is_empty())?;
    let ns = get("K8S_POD_NAMESPACE")
        .filter(|n| !n.is_empty())
        .unwrap_or("default");
    Some(format!("{ns}/{name}"))
}

/// `args.cni.labels`: `[{"key": K, "value": V}]` (CNI conventions) or `["k=v"]`, as agent
/// label strings (`k=v`, source `container` unless written `source:k=v`).
pub fn conf_labels(args: Option<&Value>) -> Result<Vec<String>, String> {
    let Some(list) = args
        .and_then(|a| a.get("cni"))
        .and_then(|c| c.get("labels"))
    else {
        return Ok(Vec::new());
    };
    let Some(items) = list.as_array() else {
        return Err("args.cni.labels: expected a list".into());
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) if !s.is_empty() => Ok(s.clone()),
            Value::Object(m) => {
                let key = m.get("key").and_then(Value::as_str).unwrap_or_default();
                let value = m.get("value").and_then(Value::as_str).unwrap_or_default();
                if key.is_empty() {
                    return Err(format!("args.cni.labels[{i}]: `key` is missing or empty"));
                }
                Ok(format!("{key}={value}"))
            }
            _ => Err(format!(
                "args.cni.labels[{i}]: expected {{\"key\", \"value\"}} or \"key=value\""
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_default_to_the_default_namespace() {
        let a = parse_cni_args("IgnoreUnknown=1;K8S_POD_NAME=web").unwrap();
        assert_eq!(pod_of(&a).as_deref(), Some("default/web"));
        let a = parse_cni_args("K8S_POD_NAMESPACE=shop;K8S_POD_NAME=db;").unwrap();
        assert_eq!(pod_of(&a).as_deref(), Some("shop/db"));
        assert_eq!(pod_of(&parse_cni_args("IgnoreUnknown=1").unwrap()), None);
        assert!(parse_cni_args("K8S_POD_NAME").is_err());
    }

    #[test]
    fn labels_in_both_forms() {
        let v: Value = serde_json::json!({"cni": {"labels": [{"key": "app", "value": "web"}, "k8s:tier=front"]}});
        assert_eq!(
            conf_labels(Some(&v)).unwrap(),
            vec!["app=web", "k8s:tier=front"]
        );
        assert!(conf_labels(None).unwrap().is_empty());
        let bad: Value = serde_json::json!({"cni": {"labels": [{"value": "x"}]}});
        assert!(conf_labels(Some(&bad)).unwrap_err().contains("labels[0]"));
    }
}
