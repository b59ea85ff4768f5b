//! What the agent persists in `--state-dir` to recover after a restart: policy sources,
//! endpoints, the revision counter and the revision log. A snapshot (`state.json`, written
//! atomically: temporary file, fsync, rename) plus a journal of the changes since
//! (`journal.jsonl`, one line per change, appended and fdatasync'ed): a change costs what it
//! changed, not the size of the whole state. The snapshot is rewritten (and the journal
//! emptied) every [`SNAPSHOT_EVERY`] changes. A crash leaves the old or the new state (a torn
//! last journal line is ignored).

use super::model::{EndpointSpec, RevisionInfo, SourceDoc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// How many revision log entries are kept.
const REVISION_LOG: usize = 256;
/// Journal entries after which the snapshot is rewritten.
pub const SNAPSHOT_EVERY: usize = 1000;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Persisted {
    pub revision: u64,
    /// Policy sources by path.
    pub sources: BTreeMap<String, String>,
    pub endpoints: BTreeMap<u16, EndpointSpec>,
    pub revisions: Vec<RevisionInfo>,
    /// Per source path, the label lists of `policy delete --labels` requests: the source's
    /// rules carrying every label of one list are not in force. Re-applying the path clears them.
    #[serde(default)]
    pub deleted: BTreeMap<String, Vec<Vec<String>>>,
}

impl Persisted {
    pub fn source_docs(&self) -> Vec<SourceDoc> {
        self.sources
            .iter()
            .map(|(p, t)| SourceDoc {
                path: p.clone(),
                text: t.clone(),
            })
            .collect()
    }

    /// Bumps the revision and logs why.
    pub fn bump(&mut self, action: &str, paths: Vec<String>) -> u64 {
        self.revision += 1;
        let unix_time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.revisions.push(RevisionInfo {
            revision: self.revision,
            unix_time,
            action: action.into(),
            paths,
        });
        if self.revisions.len() > REVISION_LOG {
            self.revisions.remove(0);
        }
        self.revision
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid agent state file: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// One journal line: what one change did (`None`: removed).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Entry {
    revision: u64,
    log: Option<RevisionInfo>,
    #[serde(default)]
    sources: BTreeMap<String, Option<String>>,
    #[serde(default)]
    endpoints: BTreeMap<u16, Option<EndpointSpec>>,
    #[serde(default)]
    deleted: BTreeMap<String, Option<Vec<Vec<String>>>>,
}

/// The keys of `new` whose value differs from `old`'s, with the new value (`None`: removed).
fn map_diff<K: Ord + Clone, V: PartialEq + Clone>(
    old: &BTreeMap<K, V>,
    new: &BTreeMap<K, V>,
) -> BTreeMap<K, Option<V>> {
    let mut out: BTreeMap<K, Option<V>> = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    out.extend(
        old.keys()
            .filter(|k| !new.contains_key(*k))
            .map(|k| (k.clone(), None)),
    );
    out
}

fn map_apply<K: Ord, V>(map: &mut BTreeMap<K, V>, diff: BTreeMap<K, Option<V>>) {
    for (k, v) in diff {
        match v {
            Some(v) => map.insert(k, v),
            None => map.remove(&k),
        };
    }
}

impl Entry {
    fn between(old: &Persisted, new: &Persisted) -> Entry {
        Entry {
            revision: new.revision,
            log: new
                .revisions
                .last()
                .filter(|r| r.revision > old.revision)
                .cloned(),
            sources: map_diff(&old.sources, &new.sources),
            endpoints: map_diff(&old.endpoints, &new.endpoints),
            deleted: map_diff(&old.deleted, &new.deleted),
        }
    }

    fn replay(self, st: &mut Persisted) {
        st.revision = self.revision;
        if let Some(l) = self.log {
            st.revisions.push(l);
            if st.revisions.len() > REVISION_LOG {
                st.revisions.remove(0);
            }
        }
        map_apply(&mut st.sources, self.sources);
        map_apply(&mut st.endpoints, self.endpoints);
        map_apply(&mut st.deleted, self.deleted);
    }
}

pub struct Store {
    path: PathBuf,
    journal: PathBuf,
    /// Entries in the journal.
    entries: usize,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |e| StoreError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

impl Store {
    pub fn new(state_dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(state_dir).map_err(io(state_dir))?;
        Ok(Store {
            path: state_dir.join("state.json"),
            journal: state_dir.join("journal.jsonl"),
            entries: 0,
        })
    }

    /// The saved state (snapshot plus journal), or an empty one on first start.
    pub fn load(&mut self) -> Result<Persisted, StoreError> {
        let mut st = match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                path: self.path.clone(),
                source: e,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Persisted::default(),
            Err(e) => return Err(io(&self.path)(e)),
        };
        let text = match std::fs::read_to_string(&self.journal) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io(&self.journal)(e)),
        };
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        for (i, line) in lines.iter().enumerate() {
            match serde_json::from_str::<Entry>(line) {
                // Entries already in the snapshot (a crash between snapshot and truncation).
                Ok(e) if e.revision <= st.revision => {}
                Ok(e) => e.replay(&mut st),
                // A torn last line: the change it recorded was never acknowledged.
                Err(_) if i + 1 == lines.len() => {
                    tracing::warn!(journal = %self.journal.display(), "ignoring a torn last journal entry")
                }
                Err(e) => {
                    return Err(StoreError::Corrupt {
                        path: self.journal.clone(),
                        source: e,
                    })
                }
            }
        }
        self.entries = lines.len();
        Ok(st)
    }

    /// Records the change from `old` to `new` durably.
    pub fn save(&mut self, old: &Persisted, new: &Persisted) -> Result<(), StoreError> {
        if self.entries >= SNAPSHOT_EVERY {
            return self.snapshot(new);
        }
        let mut line =
            serde_json::to_vec(&Entry::between(old, new)).map_err(|e| StoreError::Corrupt {
                path: self.journal.clone(),
                source: e,
            })?;
        line.push(b'\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.journal)
            .map_err(io(&self.journal))?;
        f.write_all(&line).map_err(io(&self.journal))?;
        f.sync_data().map_err(io(&self.journal))?;
        self.entries += 1;
        Ok(())
    }

    /// Writes the whole state as the snapshot and empties the journal.
    pub fn snapshot(&mut self, state: &Persisted) -> Result<(), StoreError> {
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| StoreError::Corrupt {
            path: tmp.clone(),
            source: e,
        })?;
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, &self.path).map_err(io(&self.path))?;
        // Entries at or below the snapshot's revision are skipped on load, so a crash here is safe.
        std::fs::write(&self.journal, b"").map_err(io(&self.journal))?;
        self.entries = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_a_save_and_load() {
        let dir = std::env::temp_dir().join(format!("cp-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut store = Store::new(&dir).unwrap();
        assert_eq!(store.load().unwrap(), Persisted::default());
        let empty = Persisted::default();
        let mut st = Persisted::default();
        st.sources.insert("a.json".into(), "[]".into());
        st.sources.insert("b.json".into(), "[1]".into());
        st.endpoints.insert(
            7,
            EndpointSpec {
                id: 7,
                iface: "veth7".into(),
                labels: vec!["id=app1".into()],
                ipv4: None,
                ipv6: None,
                pod: None,
            },
        );
        assert_eq!(st.bump("put", vec!["a.json".into()]), 1);
        store.save(&empty, &st).unwrap();
        // A second change: one source removed, one deletion by labels recorded.
        let mut st2 = st.clone();
        st2.sources.remove("b.json");
        st2.deleted
            .insert("a.json".into(), vec![vec!["team=a".into()]]);
        st2.bump("delete", vec!["b.json".into()]);
        store.save(&st, &st2).unwrap();
        let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
        assert_eq!(journal.lines().count(), 2);
        assert!(
            !journal.lines().nth(1).unwrap().contains("veth7"),
            "only what changed"
        );
        assert_eq!(Store::new(&dir).unwrap().load().unwrap(), st2);
        // A torn last line is ignored; the snapshot takes over the journal.
        std::fs::write(dir.join("journal.jsonl"), format!("{journal}{{\"revis")).unwrap();
        let mut again = Store::new(&dir).unwrap();
        assert_eq!(again.load().unwrap(), st2);
        again.snapshot(&st2).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("journal.jsonl")).unwrap(),
            ""
        );
        assert_eq!(Store::new(&dir).unwrap().load().unwrap(), st2);
        std::fs::write(dir.join("state.json"), b"{not json").unwrap();
        assert!(matches!(
            Store::new(&dir).unwrap().load(),
            Err(StoreError::Corrupt { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
