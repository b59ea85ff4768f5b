//! What the agent persists in `--state-dir` to recover after a restart: policy sources,
//! endpoints, the revision counter and the revision log. A snapshot (`state.json`, written
//! atomically: temporary file, fsync, rename) plus a journal of the changes since
//! (`journal.jsonl`, one line per change, appended and fdatasync'ed): a change costs what it
//! changed, not the size of the whole state. The snapshot is rewritten (and the journal
//! emptied) every [`SNAPSHOT_EVERY`] changes. Journal records are framed with their length
//! and CRC-32 (`journal_frame.rs`): a crash or a full disk leaves the old or the new state (a
//! torn last record is dropped and cut off; a failed append is cut off before the error is
//! answered). The directory (0700) and its files (0600) are private, and locked by one agent.

use super::journal_frame;
use super::lock::{self, Lock};
use super::model::{EndpointSpec, RevisionInfo, SourceDoc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{Seek, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
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
    #[error("{path}:{line}: not a valid journal record: {reason}, and records follow it")]
    CorruptRecord {
        path: PathBuf,
        line: usize,
        reason: &'static str,
    },
    #[error("{path}:{line}: journal entry of revision {found} where {expected} was expected (was the state directory shared by two agents?)")]
    RevisionOutOfOrder {
        path: PathBuf,
        line: usize,
        found: u64,
        expected: u64,
    },
    #[error("{snapshot} is missing but {journal} holds changes: the journal alone is not the whole state; restore the snapshot or remove both files to start empty")]
    MissingSnapshot { snapshot: PathBuf, journal: PathBuf },
    #[error("{path}: writing the journal failed: {source}{}", match cut {
        Some(e) => format!("; the partial record could not be removed yet ({e}), the next change removes it first"),
        None => "; the partial record was removed".into(),
    })]
    Append {
        path: PathBuf,
        source: std::io::Error,
        cut: Option<std::io::Error>,
    },
    #[error(transparent)]
    Lock(#[from] lock::LockError),
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

    /// What the state would hold after `edit` (sources, endpoints and label deletions; no
    /// revision is recorded and the log is left out), to build a world from before committing.
    pub fn with_edit(&self, edit: &Edit) -> Persisted {
        let mut next = Persisted {
            revision: self.revision,
            sources: self.sources.clone(),
            endpoints: self.endpoints.clone(),
            revisions: Vec::new(),
            deleted: self.deleted.clone(),
        };
        next.apply_maps(edit);
        next
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
    /// Bytes of the journal's complete records: the next record is written there.
    len: u64,
    /// A failed append may have left bytes past `len` that could not be removed yet.
    dirty: bool,
    /// This agent's exclusive hold on the state directory.
    _lock: Lock,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |e| StoreError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// Reads a file, `None` when it does not exist.
fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

/// Opens a state file for writing, created readable by its owner only.
fn open_private(path: &Path) -> Result<std::fs::File, StoreError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io(path))
}

impl Store {
    /// Opens the state directory (created, or restricted, to mode 0700) and takes its lock:
    /// a second agent on the same directory is refused.
    pub fn new(state_dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(state_dir).map_err(io(state_dir))?;
        std::fs::set_permissions(state_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io(state_dir))?;
        let lock = lock::acquire(&state_dir.join("lock"), "state directory")?;
        Ok(Store {
            path: state_dir.join("state.json"),
            journal: state_dir.join("journal.jsonl"),
            entries: 0,
            len: 0,
            dirty: false,
            _lock: lock,
        })
    }

    /// The saved state (snapshot plus journal), or an empty one on first start. A torn last
    /// record (a crash or a full disk while appending: never acknowledged) is dropped and cut
    /// off the file; any other bad record stops the load with its line.
    pub fn load(&mut self) -> Result<Persisted, StoreError> {
        let snapshot = read_optional(&self.path)?;
        let bytes = read_optional(&self.journal)?.unwrap_or_default();
        for f in [&self.path, &self.journal] {
            if f.exists() {
                std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600))
                    .map_err(io(f))?;
            }
        }
        let scan = journal_frame::scan(&bytes);
        let legacy = scan.records.iter().any(|r| r.legacy);
        let mut st = match &snapshot {
            Some(b) => serde_json::from_slice(b).map_err(|e| StoreError::Corrupt {
                path: self.path.clone(),
                source: e,
            })?,
            None if scan.records.is_empty() && scan.bad.is_none() => Persisted::default(),
            // Agents before framed journals wrote no snapshot before 1,000 changes.
            None if scan.records.iter().all(|r| r.legacy) && legacy => Persisted::default(),
            None => {
                return Err(StoreError::MissingSnapshot {
                    snapshot: self.path.clone(),
                    journal: self.journal.clone(),
                })
            }
        };
        let mut good = 0;
        let mut replayed = false;
        for (i, r) in scan.records.iter().enumerate() {
            let e = match serde_json::from_slice::<Edit>(r.payload) {
                Ok(e) => e,
                // An unframed torn last line of an earlier agent: never acknowledged.
                Err(_) if r.legacy && i + 1 == scan.records.len() && scan.bad.is_none() => {
                    self.torn(r.line, "not a complete JSON document");
                    break;
                }
                Err(e) => {
                    return Err(StoreError::CorruptJournal {
                        path: self.journal.clone(),
                        line: r.line,
                        source: e,
                    })
                }
            };
            good = r.end;
            // Entries already in the snapshot (a crash between snapshot and truncation).
            if e.revision <= st.revision && !replayed {
                continue;
            }
            if e.revision != st.revision + 1 {
                return Err(StoreError::RevisionOutOfOrder {
                    path: self.journal.clone(),
                    line: r.line,
                    found: e.revision,
                    expected: st.revision + 1,
                });
            }
            st.replay(&e);
            replayed = true;
        }
        match &scan.bad {
            Some((bad, true)) => self.torn(bad.line, bad.reason),
            Some((bad, false)) => {
                return Err(StoreError::CorruptRecord {
                    path: self.journal.clone(),
                    line: bad.line,
                    reason: bad.reason,
                })
            }
            None => {}
        }
        self.entries = scan.records.len();
        self.len = good as u64;
        if good < bytes.len() {
            // Cut what was dropped, so that the next record does not follow it.
            let f = open_private(&self.journal)?;
            f.set_len(self.len).map_err(io(&self.journal))?;
            f.sync_data().map_err(io(&self.journal))?;
        }
        if snapshot.is_none() || legacy {
            // First start (the snapshot exists from now on), or the one-time migration of an
            // unframed journal into the snapshot.
            self.snapshot(&st)?;
        }
        Ok(st)
    }

    fn torn(&self, line: usize, reason: &str) {
        tracing::warn!(
            "{}:{line}: dropping a torn last journal record ({reason}): the change it \
             recorded was never acknowledged",
            self.journal.display()
        );
    }

    /// Records `edit` (already applied to `state`) durably. A failed write is cut off the
    /// journal again before the error is returned: the next record never follows a partial one.
    pub fn save(&mut self, edit: &Edit, state: &Persisted) -> Result<(), StoreError> {
        if self.entries >= SNAPSHOT_EVERY {
            return self.snapshot(state);
        }
        let payload = serde_json::to_vec(edit).map_err(|e| StoreError::Corrupt {
            path: self.journal.clone(),
            source: e,
        })?;
        let record = journal_frame::encode(&payload);
        let mut f = open_private(&self.journal)?;
        let written = (|| {
            if self.dirty {
                f.set_len(self.len)?;
            }
            f.seek(std::io::SeekFrom::Start(self.len))?;
            f.write_all(&record)?;
            let _fdatasync = tracing::debug_span!("fdatasync").entered();
            f.sync_data()
        })();
        if let Err(source) = written {
            let cut = f.set_len(self.len).and_then(|()| f.sync_data());
            self.dirty = cut.is_err();
            return Err(StoreError::Append {
                path: self.journal.clone(),
                source,
                cut: cut.err(),
            });
        }
        self.dirty = false;
        self.len += record.len() as u64;
        self.entries += 1;
        Ok(())
    }

    /// Writes the whole state as the snapshot and empties the journal.
    pub fn snapshot(&mut self, state: &Persisted) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| StoreError::Corrupt {
            path: self.path.clone(),
            source: e,
        })?;
        crate::durable::replace(&self.path, &bytes).map_err(io(&self.path))?;
        // Entries at or below the snapshot's revision are skipped on load, so a crash here is safe.
        let f = open_private(&self.journal)?;
        f.set_len(0).map_err(io(&self.journal))?;
        f.sync_data().map_err(io(&self.journal))?;
        self.entries = 0;
        self.len = 0;
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
