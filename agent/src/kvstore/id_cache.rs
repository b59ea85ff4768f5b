//! `--state-dir/kvstore-identities.json`: the label sets this node claims in etcd with their
//! numbers, `{"version": 1, "prefix": "/cilium-policy/identities", "records": [{"labels":
//! "k8s:app=web k8s:io.kubernetes.pod.namespace=a", "identity": 300}, …]}`. Written when that
//! set changes; read at start, where its numbers stand in for etcd's while etcd does not
//! answer (`identities::offline`). Checked whole like the other nodes' ipcache entries: a
//! cluster identity each, a label set's text of at most 64 labels `SOURCE:KEY[=VALUE]`, none
//! `reserved:`, in canonical order, no label set or number twice.

use super::cache::CacheFile;
use super::ipcache::{check_identity, check_label, MAX_IDENTITY, MAX_LABELS};
use ir::{LabelSet, NumericIdentity};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

/// The file's name in the state directory.
pub const FILE: &str = "kvstore-identities.json";
/// Bytes read at most (a label set's text is at most about 33 KiB; a node holds a few
/// thousand at most).
pub const MAX_BYTES: u64 = 32 << 20;

/// Label set (its canonical text) → number.
pub type Numbers = BTreeMap<String, NumericIdentity>;

pub type IdCache = CacheFile<Numbers>;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    labels: String,
    identity: u32,
}

/// The cache of `state_dir` for identities under `prefix`.
pub fn open(state_dir: &Path, prefix: &str) -> IdCache {
    CacheFile::new(state_dir.join(FILE), prefix, MAX_BYTES)
}

/// The file's numbers, or why it is not used (logged by the caller).
pub fn load(file: &IdCache) -> Result<Numbers, super::cache::CacheError> {
    Ok(file.load(check)?.unwrap_or_default())
}

/// Writes `numbers` if they differ from the file's; label sets this module would not read
/// back are left out (they need etcd at start).
pub fn save(file: &IdCache, numbers: &Numbers) -> Result<bool, super::cache::CacheError> {
    file.save(numbers, |n| {
        n.iter()
            .filter(|(l, _)| check_labels(l).is_ok())
            .map(|(l, id)| Record {
                labels: l.clone(),
                identity: id.0,
            })
            .collect()
    })
}

/// A label set's canonical text, as [`compiler::identity::alloc::key_of`] writes it.
fn check_labels(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Ok(());
    }
    let parts: Vec<&str> = text.split(' ').collect();
    if parts.len() > MAX_LABELS {
        return Err(format!("{} labels (at most {MAX_LABELS})", parts.len()));
    }
    let labels = parts
        .iter()
        .map(|p| check_label(p))
        .collect::<Result<Vec<_>, _>>()?;
    if LabelSet::new(labels).to_string() != text {
        return Err(format!("label set {text:?} is not in canonical order"));
    }
    Ok(())
}

fn check(records: Vec<Record>) -> Result<Numbers, String> {
    let most = (MAX_IDENTITY - NumericIdentity::MIN_ALLOCATED.0 + 1) as usize;
    if records.len() > most {
        return Err(format!("{} records, more than {most}", records.len()));
    }
    let mut numbers = Numbers::new();
    let mut taken = HashSet::new();
    for (i, r) in records.into_iter().enumerate() {
        let at = |why: String| format!("record {}: {why}", i + 1);
        check_labels(&r.labels).map_err(at)?;
        let id = check_identity(r.identity).map_err(at)?;
        if !taken.insert(id) {
            return Err(at(format!("identity {} is given twice", id.0)));
        }
        if numbers.insert(r.labels.clone(), id).is_some() {
            return Err(at(format!("label set {:?} is given twice", r.labels)));
        }
    }
    Ok(numbers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let file = open(dir.path(), "/p");
        let mut n = Numbers::new();
        n.insert("container:id=web".into(), NumericIdentity(300));
        n.insert("k8s:a=b k8s:c=d".into(), NumericIdentity(301));
        n.insert(String::new(), NumericIdentity(302));
        // Not readable back: left out of the file.
        n.insert("reserved:host".into(), NumericIdentity(303));
        assert!(save(&file, &n).unwrap());
        n.remove("reserved:host");
        assert_eq!(load(&open(dir.path(), "/p")).unwrap(), n);

        let path = file.path().to_path_buf();
        for (records, why) in [
            (
                r#"[{"labels": "k8s:a", "identity": 2}]"#,
                "record 1: identity 2",
            ),
            (
                r#"[{"labels": "k8s:a", "identity": 65536}]"#,
                "not a cluster identity",
            ),
            (r#"[{"labels": "a", "identity": 300}]"#, "not SOURCE:KEY"),
            (
                r#"[{"labels": "reserved:world", "identity": 300}]"#,
                "reserved label",
            ),
            (
                r#"[{"labels": "k8s:c k8s:a", "identity": 300}]"#,
                "canonical order",
            ),
            (
                r#"[{"labels": "k8s:a", "identity": 300}, {"labels": "k8s:b", "identity": 300}]"#,
                "record 2: identity 300 is given twice",
            ),
            (
                r#"[{"labels": "k8s:a", "identity": 300}, {"labels": "k8s:a", "identity": 301}]"#,
                "given twice",
            ),
            (
                r#"[{"labels": "k8s:a", "identity": "300"}]"#,
                "invalid type",
            ),
            (r#"[{"labels": "k8s:a"}]"#, "missing field"),
        ] {
            let text = format!(r#"{{"version": 1, "prefix": "/p", "records": {records}}}"#);
            std::fs::write(&path, text).unwrap();
            let err = load(&open(dir.path(), "/p")).unwrap_err().to_string();
            assert!(err.contains(why), "{records}: {err}");
        }
        let many = format!(
            "k8s:a{}",
            (1..=64)
                .map(|i| format!(" k8s:b{i:02}"))
                .collect::<String>()
        );
        assert!(check_labels(&many).unwrap_err().contains("65 labels"));
    }
}
