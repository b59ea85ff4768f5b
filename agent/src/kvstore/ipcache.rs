//! The entries each agent publishes for its local endpoints, and the checks on what other
//! nodes wrote. One key per endpoint, `PREFIX/NODE/ID` → JSON
//! `{"identity": N, "labels": ["k8s:app=web", …], "ips": ["10.0.1.2", …]}` (its identity's
//! labels, so that the other nodes select it without another lookup). What another node
//! wrote is bounded and checked here; an entry that fails is skipped whole, with its reason.

use crate::remote::RemoteEndpoint;
use crate::world::{parse_label, LocalEndpoint};
use ir::{Label, LabelSet, LabelSource, NumericIdentity};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

pub const DEFAULT_PREFIX: &str = "/cilium-policy/ipcache";
/// Longest value accepted from another node.
pub const MAX_VALUE: usize = 8192;
/// Labels of one label set, and the longest label.
pub const MAX_LABELS: usize = 64;
pub const MAX_LABEL: usize = 512;
/// The last cluster identity (as [`compiler::identity::IdAllocator::cluster`]).
pub const MAX_IDENTITY: u32 = 65535;
const MAX_IPS: usize = 8;
const MAX_NAME: usize = 253;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
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

/// A cluster identity number (not a reserved one), or why not.
pub fn check_identity(n: u32) -> Result<NumericIdentity, String> {
    if (NumericIdentity::MIN_ALLOCATED.0..=MAX_IDENTITY).contains(&n) {
        Ok(NumericIdentity(n))
    } else {
        Err(format!("identity {n} is not a cluster identity"))
    }
}

/// A label as nodes publish them, `SOURCE:KEY[=VALUE]` of a known source but `reserved`, at
/// most [`MAX_LABEL`] bytes, or why not.
pub fn check_label(text: &str) -> Result<Label, String> {
    let l = parse_label(text, LabelSource::Any);
    if text.len() > MAX_LABEL || l.key.is_empty() || l.source == LabelSource::Any {
        return Err(format!("label {text:?} is not SOURCE:KEY[=VALUE]"));
    }
    if l.source == LabelSource::Reserved {
        return Err(format!("reserved label {text:?}"));
    }
    Ok(l)
}

/// The remote endpoint of key suffix `NODE/ID` (the key without the prefix) and `value`, or
/// why it is skipped. Its name in the world is `kvstore:NODE/ID`.
pub fn parse_remote(suffix: &str, value: &[u8]) -> Result<(String, RemoteEndpoint), String> {
    if value.len() > MAX_VALUE {
        return Err(format!("{} bytes, more than {MAX_VALUE}", value.len()));
    }
    let entry: Entry = serde_json::from_slice(value).map_err(|e| format!("not an entry: {e}"))?;
    remote_of(suffix, entry)
}

/// The remote endpoint of key suffix `NODE/ID` and its decoded `entry`, checked as
/// [`parse_remote`] checks what another node wrote.
pub fn remote_of(suffix: &str, entry: Entry) -> Result<(String, RemoteEndpoint), String> {
    let (node, id) = suffix
        .split_once('/')
        .filter(|(n, i)| valid_part(n) && valid_part(i))
        .ok_or_else(|| format!("key suffix {suffix:?} is not NODE/ID"))?;
    let identity = check_identity(entry.identity)?;
    if entry.ips.is_empty() || entry.ips.len() > MAX_IPS {
        return Err(format!("{} addresses (1 to {MAX_IPS})", entry.ips.len()));
    }
    if entry.labels.is_empty() || entry.labels.len() > MAX_LABELS {
        return Err(format!("{} labels (1 to {MAX_LABELS})", entry.labels.len()));
    }
    let labels = entry
        .labels
        .iter()
        .map(|text| check_label(text))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((
        format!("kvstore:{node}/{id}"),
        RemoteEndpoint {
            node: node.to_string(),
            labels: LabelSet::new(labels),
            identity,
            ips: entry.ips,
        },
    ))
}

/// The entry a remote endpoint was made from (its labels as text).
pub fn entry_of(r: &RemoteEndpoint) -> Entry {
    Entry {
        identity: r.identity.0,
        labels: r.labels.iter().map(|l| l.to_string()).collect(),
        ips: r.ips.clone(),
    }
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
