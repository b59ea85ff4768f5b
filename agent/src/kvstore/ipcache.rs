//! The entries each agent publishes for its local endpoints, and the checks on what other
//! nodes wrote. One key per endpoint, `PREFIX/NODE/ID` → JSON
//! `{"identity": N, "labels": ["k8s:app=web", …], "ips": ["10.0.1.2", …]}` (its identity's
//! labels, so that the other nodes select it without another lookup). What another node
//! wrote is bounded and checked here; an entry that fails is skipped whole, with its reason.

use crate::remote::RemoteEndpoint;
use crate::world::{parse_label, LocalEndpoint};
use ir::{LabelSet, LabelSource, NumericIdentity};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

pub const DEFAULT_PREFIX: &str = "/cilium-policy/ipcache";
/// Longest value accepted from another node.
pub const MAX_VALUE: usize = 8192;
const MAX_LABELS: usize = 64;
const MAX_LABEL: usize = 512;
const MAX_IPS: usize = 8;
const MAX_NAME: usize = 253;

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub identity: u32,
    pub labels: Vec<String>,
    pub ips: Vec<IpAddr>,
}

/// The entries of this node's local endpoints that have an address: key suffix (`NODE/ID`)
/// to value. `labels_of` gives an identity's labels.
pub fn local_entries<'a>(
    node: &str,
    endpoints: impl Iterator<Item = (&'a u16, &'a LocalEndpoint)>,
    labels_of: impl Fn(NumericIdentity) -> Option<LabelSet>,
) -> BTreeMap<String, String> {
    endpoints
        .filter_map(|(id, ep)| {
            let ips: Vec<IpAddr> = ep
                .ipv4
                .map(IpAddr::V4)
                .into_iter()
                .chain(ep.ipv6.map(IpAddr::V6))
                .collect();
            if ips.is_empty() {
                return None;
            }
            let labels = labels_of(ep.identity)?;
            let entry = Entry {
                identity: ep.identity.0,
                labels: labels.iter().map(|l| l.to_string()).collect(),
                ips,
            };
            let value = serde_json::to_string(&entry).ok()?;
            Some((format!("{node}/{id}"), value))
        })
        .collect()
}

/// A node name or endpoint id as it may appear in a key.
fn valid_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// The remote endpoint of key suffix `NODE/ID` (the key without the prefix) and `value`, or
/// why it is skipped. Its name in the world is `kvstore:NODE/ID`.
pub fn parse_remote(suffix: &str, value: &[u8]) -> Result<(String, RemoteEndpoint), String> {
    let (node, id) = suffix
        .split_once('/')
        .filter(|(n, i)| valid_part(n) && valid_part(i))
        .ok_or_else(|| format!("key suffix {suffix:?} is not NODE/ID"))?;
    if value.len() > MAX_VALUE {
        return Err(format!("{} bytes, more than {MAX_VALUE}", value.len()));
    }
    let entry: Entry = serde_json::from_slice(value).map_err(|e| format!("not an entry: {e}"))?;
    if !(NumericIdentity::MIN_ALLOCATED.0..=65535).contains(&entry.identity) {
        return Err(format!(
            "identity {} is not a cluster identity",
            entry.identity
        ));
    }
    if entry.ips.is_empty() || entry.ips.len() > MAX_IPS {
        return Err(format!("{} addresses (1 to {MAX_IPS})", entry.ips.len()));
    }
    if entry.labels.is_empty() || entry.labels.len() > MAX_LABELS {
        return Err(format!("{} labels (1 to {MAX_LABELS})", entry.labels.len()));
    }
    let mut labels = Vec::new();
    for text in &entry.labels {
        let l = parse_label(text, LabelSource::Any);
        if text.len() > MAX_LABEL || l.key.is_empty() || l.source == LabelSource::Any {
            return Err(format!("label {text:?} is not SOURCE:KEY[=VALUE]"));
        }
        if l.source == LabelSource::Reserved {
            return Err(format!("reserved label {text:?}"));
        }
        labels.push(l);
    }
    Ok((
        format!("kvstore:{node}/{id}"),
        RemoteEndpoint {
            node: node.to_string(),
            labels: LabelSet::new(labels),
            identity: NumericIdentity(entry.identity),
            ips: entry.ips,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::parse_remote;

    #[test]
    fn parses_and_bounds_remote_entries() {
        let ok = br#"{"identity": 300, "labels": ["k8s:app=web"], "ips": ["10.0.1.2"]}"#;
        let (name, r) = parse_remote("n1/7", ok).unwrap();
        assert_eq!(name, "kvstore:n1/7");
        assert_eq!((r.node.as_str(), r.identity.0), ("n1", 300));
        assert_eq!(r.labels.iter().next().unwrap().to_string(), "k8s:app=web");
        let big = format!(
            r#"{{"identity": 300, "labels": ["k8s:a={}"], "ips": ["10.0.1.2"]}}"#,
            "x".repeat(9000)
        );
        for (suffix, value, why) in [
            ("n1", &ok[..], "not NODE/ID"),
            ("n1/7/x", &ok[..], "not NODE/ID"),
            ("n 1/7", &ok[..], "not NODE/ID"),
            ("n1/7", b"{", "not an entry"),
            ("n1/7", br#"{"identity": 300}"#, "not an entry"),
            (
                "n1/7",
                br#"{"identity": 300, "labels": ["k8s:a"], "ips": ["10.0.1.2"], "x": 1}"#,
                "not an entry",
            ),
            (
                "n1/7",
                br#"{"identity": 2, "labels": ["k8s:a"], "ips": ["10.0.1.2"]}"#,
                "not a cluster identity",
            ),
            (
                "n1/7",
                br#"{"identity": 300, "labels": ["k8s:a"], "ips": []}"#,
                "0 addresses",
            ),
            (
                "n1/7",
                br#"{"identity": 300, "labels": [], "ips": ["10.0.1.2"]}"#,
                "0 labels",
            ),
            (
                "n1/7",
                br#"{"identity": 300, "labels": ["=x"], "ips": ["10.0.1.2"]}"#,
                "is not SOURCE:KEY",
            ),
            (
                "n1/7",
                br#"{"identity": 300, "labels": ["reserved:host"], "ips": ["10.0.1.2"]}"#,
                "reserved label",
            ),
            ("n1/7", big.as_bytes(), "more than 8192"),
        ] {
            let err = parse_remote(suffix, value).unwrap_err();
            assert!(
                err.contains(why),
                "{suffix} {}: {err}",
                String::from_utf8_lossy(value)
            );
        }
    }
}
