//! `--state-dir/kvstore-remote.json`: the other nodes' endpoints this node last enforced,
//! `{"version": 1, "prefix": "/cilium-policy/ipcache", "records": [{"key": "NODE/ID",
//! "entry": {"identity": N, "labels": […], "ips": […]}}, …]}` (`entry` as in etcd). Written
//! when the world's remote endpoints change; read at start, so that they stay in the world and
//! the ipcache maps until the kvstore's watch reads etcd again (whose difference then replaces
//! them). Every record is checked as an entry read from etcd is ([`super::ipcache`]); one of
//! this node, or a key given twice, refuses the file.

use super::cache::CacheFile;
use super::ipcache::{entry_of, remote_of, Entry};
use crate::remote::RemoteEndpoint;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The file's name in the state directory.
pub const FILE: &str = "kvstore-remote.json";
/// Bytes read at most (an entry is at most 8 KiB in etcd, and rarely more than a few hundred
/// bytes).
pub const MAX_BYTES: u64 = 64 << 20;
/// Records read at most.
const MAX_RECORDS: usize = 1 << 18;

/// Name in the world (`kvstore:NODE/ID`) → endpoint.
pub type Remote = BTreeMap<String, RemoteEndpoint>;

pub type RemoteCache = CacheFile<Remote>;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    key: String,
    entry: Entry,
}

/// The cache of `state_dir` for the ipcache under `prefix`.
pub fn open(state_dir: &Path, prefix: &str) -> RemoteCache {
    CacheFile::new(state_dir.join(FILE), prefix, MAX_BYTES)
}

/// The file's endpoints (none of node `node`), or why it is not used.
pub fn load(file: &RemoteCache, node: &str) -> Result<Remote, super::cache::CacheError> {
    Ok(file.load(|r| check(r, node))?.unwrap_or_default())
}

/// Writes `remote` if it differs from the file's.
pub fn save(file: &RemoteCache, remote: &Remote) -> Result<bool, super::cache::CacheError> {
    file.save(remote, |r| {
        r.iter()
            .filter_map(|(name, ep)| {
                Some(Record {
                    key: name.strip_prefix("kvstore:")?.to_string(),
                    entry: entry_of(ep),
                })
            })
            .collect()
    })
}

fn check(records: Vec<Record>, node: &str) -> Result<Remote, String> {
    if records.len() > MAX_RECORDS {
        return Err(format!(
            "{} records, more than {MAX_RECORDS}",
            records.len()
        ));
    }
    let mut remote = Remote::new();
    for Record { key, entry } in records {
        let at = |why: String| format!("record {key:?}: {why}");
        let (name, ep) = remote_of(&key, entry).map_err(at)?;
        if ep.node == node {
            return Err(at("an endpoint of this node".into()));
        }
        if remote.insert(name, ep).is_some() {
            return Err(at("given twice".into()));
        }
    }
    Ok(remote)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_checks() {
        let dir = tempfile::tempdir().unwrap();
        let file = open(dir.path(), "/p");
        let value = br#"{"identity": 300, "labels": ["k8s:app=web"], "ips": ["10.0.1.2"]}"#;
        let (name, ep) = super::super::ipcache::parse_remote("n1/7", value).unwrap();
        let remote: Remote = [(name, ep)].into_iter().collect();
        assert!(save(&file, &remote).unwrap());
        assert_eq!(load(&open(dir.path(), "/p"), "n0").unwrap(), remote);

        let entry = r#"{"identity": 300, "labels": ["k8s:app=web"], "ips": ["10.0.1.2"]}"#;
        for (records, why) in [
            (format!(r#"[{{"key": "n0/1", "entry": {entry}}}]"#), "this node"),
            (format!(r#"[{{"key": "n1", "entry": {entry}}}]"#), "not NODE/ID"),
            (
                format!(r#"[{{"key": "n1/1", "entry": {entry}}}, {{"key": "n1/1", "entry": {entry}}}]"#),
                "given twice",
            ),
            (
                r#"[{"key": "n1/1", "entry": {"identity": 300, "labels": ["k8s:a"], "ips": []}}]"#.into(),
                "record \"n1/1\": 0 addresses",
            ),
            (
                r#"[{"key": "n1/1", "entry": {"identity": 7, "labels": ["k8s:a"], "ips": ["10.0.0.1"]}}]"#.into(),
                "not a cluster identity",
            ),
            (
                r#"[{"key": "n1/1", "entry": {"identity": 300, "labels": ["x"], "ips": ["10.0.0.1"]}}]"#.into(),
                "not SOURCE:KEY",
            ),
            (
                r#"[{"key": "n1/1", "entry": {"identity": 300, "labels": ["k8s:a"], "ips": ["10.0.0.300"]}}]"#.into(),
                "invalid IP address",
            ),
        ] {
            let text = format!(r#"{{"version": 1, "prefix": "/p", "records": {records}}}"#);
            std::fs::write(file.path(), text).unwrap();
            let err = load(&open(dir.path(), "/p"), "n0").unwrap_err().to_string();
            assert!(err.contains(why), "{records}: {err}");
        }
    }
}
