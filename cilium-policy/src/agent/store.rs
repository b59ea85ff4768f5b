//! What the agent persists in `--state-dir` to recover after a restart: policy sources,
//! endpoints, the revision counter and the revision log. Written atomically (temporary file,
//! fsync, rename), so a crash leaves either the old or the new state.

use super::model::{EndpointSpec, RevisionInfo, SourceDoc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// How many revision log entries are kept.
const REVISION_LOG: usize = 256;

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

pub struct Store {
    path: PathBuf,
}

impl Store {
    pub fn new(state_dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(state_dir).map_err(|e| StoreError::Io {
            path: state_dir.into(),
            source: e,
        })?;
        Ok(Store {
            path: state_dir.join("state.json"),
        })
    }

    /// The saved state, or an empty one on first start.
    pub fn load(&self) -> Result<Persisted, StoreError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                path: self.path.clone(),
                source: e,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Persisted::default()),
            Err(e) => Err(StoreError::Io {
                path: self.path.clone(),
                source: e,
            }),
        }
    }

    pub fn save(&self, state: &Persisted) -> Result<(), StoreError> {
        let tmp = self.path.with_extension("json.tmp");
        let io = |e| StoreError::Io {
            path: tmp.clone(),
            source: e,
        };
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| StoreError::Corrupt {
            path: tmp.clone(),
            source: e,
        })?;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(|e| StoreError::Io {
            path: self.path.clone(),
            source: e,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_a_save_and_load() {
        let dir = std::env::temp_dir().join(format!("cp-store-{}", std::process::id()));
        let store = Store::new(&dir).unwrap();
        assert_eq!(store.load().unwrap(), Persisted::default());
        let mut st = Persisted::default();
        st.sources.insert("a.json".into(), "[]".into());
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
        store.save(&st).unwrap();
        assert_eq!(store.load().unwrap(), st);
        std::fs::write(dir.join("state.json"), b"{not json").unwrap();
        assert!(matches!(store.load(), Err(StoreError::Corrupt { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
