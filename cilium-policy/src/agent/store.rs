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
        self.log(RevisionInfo {
            revision: self.revision,
            unix_time,
            action: action.into(),
            paths,
        });
        self.revision
    }

    /// Appends to the revision log, which keeps the newest [`REVISION_LOG`] entries.
    fn log(&mut self, info: RevisionInfo) {
        self.revisions.push(info);
        if self.revisions.len() > REVISION_LOG {
            self.revisions.remove(0);
        }
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
    #[error("{path}:{line}: not a valid journal entry: {source}")]
    CorruptJournal {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
}

/// What one change does to the persisted state (`None`: removed), and its journal line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Edit {
    /// The revision the change produced, and its log entry (filled in by [`Persisted::apply`]).
    #[serde(default)]
    pub revision: u64,
    #[serde(default)]
    pub log: Option<RevisionInfo>,
    #[serde(default)]
    pub sources: BTreeMap<String, Option<String>>,
    #[serde(default)]
    pub endpoints: BTreeMap<u16, Option<EndpointSpec>>,
    #[serde(default)]
    pub deleted: BTreeMap<String, Option<Vec<Vec<String>>>>,
}

fn map_apply<K: Ord + Clone, V: Clone>(map: &mut BTreeMap<K, V>, diff: &BTreeMap<K, Option<V>>) {
    for (k, v) in diff {
        match v {
            Some(v) => map.insert(k.clone(), v.clone()),
            None => map.remove(k),
        };
    }
}

/// The current values of the keys of `diff` (to undo it).
fn map_old<K: Ord + Clone, V: Clone, W>(
    map: &BTreeMap<K, V>,
    diff: &BTreeMap<K, W>,
) -> BTreeMap<K, Option<V>> {
    diff.keys()
        .map(|k| (k.clone(), map.get(k).cloned()))
        .collect()
}

impl Persisted {
    /// Records `edit` as the next revision, logged as `action` on `paths`: fills in its
    /// revision and log entry and applies it. Returns the inverse, for [`Persisted::undo`].
    pub fn apply(&mut self, edit: &mut Edit, action: &str, paths: Vec<String>) -> Edit {
        let inverse = Edit {
            revision: self.revision,
            log: None,
            sources: map_old(&self.sources, &edit.sources),
            endpoints: map_old(&self.endpoints, &edit.endpoints),
            deleted: map_old(&self.deleted, &edit.deleted),
        };
        edit.revision = self.bump(action, paths);
        edit.log = self.revisions.last().cloned();
        self.apply_maps(edit);
        inverse
    }

    /// Undoes [`Persisted::apply`] (the revision log loses its newest entry).
    pub fn undo(&mut self, inverse: &Edit) {
        self.revision = inverse.revision;
        self.revisions.pop();
        self.apply_maps(inverse);
    }

    fn apply_maps(&mut self, edit: &Edit) {
        map_apply(&mut self.sources, &edit.sources);
        map_apply(&mut self.endpoints, &edit.endpoints);
        map_apply(&mut self.deleted, &edit.deleted);
    }

    /// Replays a journal line.
    fn replay(&mut self, edit: &Edit) {
        self.revision = edit.revision;
        if let Some(l) = &edit.log {
            self.log(l.clone());
        }
        self.apply_maps(edit);
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
        // (line number in the file, line), blank lines left out.
        let lines: Vec<(usize, &str)> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .collect();
        for (i, (n, line)) in lines.iter().enumerate() {
            match serde_json::from_str::<Edit>(line) {
                // Entries already in the snapshot (a crash between snapshot and truncation).
                Ok(e) if e.revision <= st.revision => {}
                Ok(e) => st.replay(&e),
                // A torn last line: the change it recorded was never acknowledged.
                Err(_) if i + 1 == lines.len() => {
                    tracing::warn!(journal = %self.journal.display(), "ignoring a torn last journal entry")
                }
                Err(e) => {
                    return Err(StoreError::CorruptJournal {
                        path: self.journal.clone(),
                        line: n + 1,
                        source: e,
                    })
                }
            }
        }
        self.entries = lines.len();
        Ok(st)
    }

    /// Records `edit` (already applied to `state`) durably.
    pub fn save(&mut self, edit: &Edit, state: &Persisted) -> Result<(), StoreError> {
        if self.entries >= SNAPSHOT_EVERY {
            return self.snapshot(state);
        }
        let mut line = serde_json::to_vec(edit).map_err(|e| StoreError::Corrupt {
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
        let mut st = Persisted::default();
        let spec = EndpointSpec {
            id: 7,
            iface: "veth7".into(),
            labels: vec!["id=app1".into()],
            ipv4: None,
            ipv6: None,
            pod: None,
            container_id: None,
        };
        let mut e1 = Edit::default();
        e1.sources.insert("a.json".into(), Some("[]".into()));
        e1.sources.insert("b.json".into(), Some("[1]".into()));
        e1.endpoints.insert(7, Some(spec.clone()));
        st.apply(&mut e1, "put", vec!["a.json".into()]);
        assert_eq!(e1.revision, 1);
        store.save(&e1, &st).unwrap();
        // A second change: one source removed, one deletion by labels recorded.
        let mut e2 = Edit::default();
        e2.sources.insert("b.json".into(), None);
        e2.deleted
            .insert("a.json".into(), Some(vec![vec!["team=a".into()]]));
        let before = st.clone();
        let inverse = st.apply(&mut e2, "delete", vec!["b.json".into()]);
        store.save(&e2, &st).unwrap();
        let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
        assert_eq!(journal.lines().count(), 2);
        assert!(
            !journal.lines().nth(1).unwrap().contains("veth7"),
            "only what changed"
        );
        assert_eq!(Store::new(&dir).unwrap().load().unwrap(), st);
        assert_eq!(st.sources.len(), 1);
        assert_eq!(st.endpoints[&7], spec);
        // The inverse restores the previous state.
        let mut undone = st.clone();
        undone.undo(&inverse);
        assert_eq!(undone, before);
        // A torn last line is ignored; the snapshot takes over the journal.
        std::fs::write(dir.join("journal.jsonl"), format!("{journal}{{\"revis")).unwrap();
        let mut again = Store::new(&dir).unwrap();
        assert_eq!(again.load().unwrap(), st);
        again.snapshot(&st).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("journal.jsonl")).unwrap(),
            ""
        );
        assert_eq!(Store::new(&dir).unwrap().load().unwrap(), st);
        // A bad line before the last is corruption, reported with its line number.
        std::fs::write(dir.join("journal.jsonl"), format!("\n{{\"revis\n{journal}")).unwrap();
        match Store::new(&dir).unwrap().load() {
            Err(e @ StoreError::CorruptJournal { line: 2, .. }) => {
                assert!(e.to_string().contains("journal.jsonl:2:"), "{e}")
            }
            other => panic!("expected a corrupt journal at line 2, got {other:?}"),
        }
        std::fs::write(dir.join("journal.jsonl"), "").unwrap();
        std::fs::write(dir.join("state.json"), b"{not json").unwrap();
        assert!(matches!(
            Store::new(&dir).unwrap().load(),
            Err(StoreError::Corrupt { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
