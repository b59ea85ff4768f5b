//! The kvstore's caches in the state directory, so that an agent started while etcd does not
//! answer comes back with the enforcement it had: the numbers of the label sets the node
//! claims (`kvstore-identities.json`, [`super::id_cache`]) and the other nodes' endpoints it last
//! learnt (`kvstore-remote.json`, [`super::remote_cache`]). See Documentation/agent.md ("Starting
//! while etcd does not answer").
//!
//! Both are inputs: a file is read only up to its size bound, decoded strictly (unknown fields
//! refused, the line and column of what does not parse), must carry this format's version and
//! the key prefix the agent uses, and is then checked whole by its module as strictly as what
//! other nodes write to etcd. A file that fails any of it is not used at all (the caller logs
//! why, naming the file, and goes on as if there were none); it is replaced at the next write.
//! Writes go through [`crate::durable::replace`], only when the content differs from what the
//! file holds.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The format's version.
pub const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {size} bytes, more than the {max} read", path.display())]
    TooLarge { path: PathBuf, size: u64, max: u64 },
    #[error("{}:{line}:{column}: {reason}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("{}: version {found}, this agent reads version {VERSION}", path.display())]
    Version { path: PathBuf, found: u32 },
    #[error("{}: written for the key prefix {found:?}, this agent uses {want:?}", path.display())]
    Prefix {
        path: PathBuf,
        found: String,
        want: String,
    },
    #[error("{}: {why}", path.display())]
    Invalid { path: PathBuf, why: String },
}

/// A file as written: its version, the key prefix its content comes from, and its records.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnDisk<R> {
    version: u32,
    prefix: String,
    records: Vec<R>,
}

/// A cache file of content `T`, and what it holds as far as this agent knows.
#[derive(Debug)]
pub struct CacheFile<T> {
    path: PathBuf,
    /// The kvstore prefix its content belongs to.
    prefix: String,
    /// Bytes read at most.
    max: u64,
    /// The content last read or written (`None`: neither yet, or the file is unusable).
    held: Mutex<Option<T>>,
}

impl<T: Clone + PartialEq> CacheFile<T> {
    pub fn new(path: PathBuf, prefix: &str, max: u64) -> CacheFile<T> {
        CacheFile {
            path,
            prefix: prefix.to_string(),
            max,
            held: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self) -> impl Fn(std::io::Error) -> CacheError + '_ {
        |source| CacheError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// The file's content, its records turned into `T` by `check` (which refuses them whole
    /// with its reason); `None` when there is no file.
    pub fn load<R: DeserializeOwned>(
        &self,
        check: impl FnOnce(Vec<R>) -> Result<T, String>,
    ) -> Result<Option<T>, CacheError> {
        let size = match std::fs::metadata(&self.path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io()(e)),
        };
        if size > self.max {
            return Err(CacheError::TooLarge {
                path: self.path.clone(),
                size,
                max: self.max,
            });
        }
        let bytes = std::fs::read(&self.path).map_err(self.io())?;
        let disk: OnDisk<R> = serde_json::from_slice(&bytes).map_err(|e| CacheError::Parse {
            path: self.path.clone(),
            line: e.line(),
            column: e.column(),
            reason: e.to_string(),
        })?;
        if disk.version != VERSION {
            return Err(CacheError::Version {
                path: self.path.clone(),
                found: disk.version,
            });
        }
        if disk.prefix != self.prefix {
            return Err(CacheError::Prefix {
                path: self.path.clone(),
                found: disk.prefix,
                want: self.prefix.clone(),
            });
        }
        let content = check(disk.records).map_err(|why| CacheError::Invalid {
            path: self.path.clone(),
            why,
        })?;
        if let Ok(mut held) = self.held.lock() {
            *held = Some(content.clone());
        }
        Ok(Some(content))
    }

    /// Writes `content` (as the records `records` gives) unless the file holds it already;
    /// whether it wrote.
    pub fn save<R: Serialize>(
        &self,
        content: &T,
        records: impl FnOnce(&T) -> Vec<R>,
    ) -> Result<bool, CacheError> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.as_ref() == Some(content) {
            return Ok(false);
        }
        let disk = OnDisk {
            version: VERSION,
            prefix: self.prefix.clone(),
            records: records(content),
        };
        let bytes = serde_json::to_vec(&disk).map_err(|e| self.io()(e.into()))?;
        crate::durable::replace(&self.path, &bytes).map_err(self.io())?;
        *held = Some(content.clone());
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path) -> CacheFile<Vec<u32>> {
        CacheFile::new(dir.join("c.json"), "/p", 200)
    }

    fn check(r: Vec<u32>) -> Result<Vec<u32>, String> {
        match r.iter().find(|n| **n == 0) {
            Some(_) => Err("record 0".into()),
            None => Ok(r),
        }
    }

    #[test]
    fn writes_only_what_differs_and_reads_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let f = file(dir.path());
        assert!(f.load(check).unwrap().is_none(), "no file");
        assert!(f.save(&vec![1, 2], |v| v.clone()).unwrap());
        assert!(!f.save(&vec![1, 2], |v| v.clone()).unwrap(), "unchanged");
        assert!(f.save(&vec![3], |v| v.clone()).unwrap());
        assert_eq!(file(dir.path()).load(check).unwrap(), Some(vec![3]));
    }

    #[test]
    fn a_bad_file_is_refused_whole_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let f = file(dir.path());
        let path = f.path().display().to_string();
        let big = format!("{:201}", "{}");
        for (text, want) in [
            ("{\n  \"version\": 1,", format!("{path}:2:")),
            (
                r#"{"version": 2, "prefix": "/p", "records": []}"#,
                "version 2".into(),
            ),
            (
                r#"{"version": 1, "prefix": "/q", "records": []}"#,
                "key prefix \"/q\"".into(),
            ),
            (
                r#"{"version": 1, "prefix": "/p", "records": [], "x": 1}"#,
                "unknown field".into(),
            ),
            (
                r#"{"version": 1, "prefix": "/p", "records": [1, 0]}"#,
                format!("{path}: record 0"),
            ),
            (big.as_str(), "more than the 200".into()),
        ] {
            std::fs::write(f.path(), text).unwrap();
            let err = f.load(check).unwrap_err().to_string();
            assert!(err.contains(&want) && err.contains(&path), "{text}: {err}");
        }
    }
}
