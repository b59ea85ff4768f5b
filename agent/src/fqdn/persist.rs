//! The learned-address cache on disk, `<state-dir>/fqdn.json`: what clients resolved before an
//! agent restart stays allowed until its expiry, as the datapath allowed it while no agent ran
//! (without it, the restarted agent's first sync removed every learned address, and the
//! connections to them were cut at their next packet, until each client resolved again).
//!
//! Written after a learn or an expiry changed the cache, at most once per [`MIN_INTERVAL`]
//! (the writer wakes for a write held back), by [`crate::durable::replace`], so
//! a crash leaves either version whole. Expiries are wall-clock times: the time an agent was
//! down counts. Read once at start; a file that cannot be read or parsed is logged and the
//! agent starts with nothing learned (fail closed: the addresses are denied until resolved
//! again), never refuses to start.

use super::FqdnCache;
use l7proxy::dns::learn::Learned;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The file's name in the state directory.
pub const FILE: &str = "fqdn.json";
/// Writes at most this often: learning the same names again moves their expiry on each answer.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// A file larger than this is not read (a full cache of 4,096 addresses with a few names each
/// is a few hundred KiB).
pub const MAX_BYTES: u64 = 32 << 20;
/// The format's version.
const VERSION: u32 = 1;
/// The longest DNS name, in its text form with the trailing dot.
const MAX_NAME: usize = 254;

#[derive(Debug, thiserror::Error)]
pub enum FqdnFileError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {size} bytes, more than the {MAX_BYTES} read")]
    TooLarge { path: String, size: u64 },
    #[error("{path}:{line}:{column}: {reason}")]
    Parse {
        path: String,
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("{path}: version {found}, this agent reads version {VERSION}")]
    Version { path: String, found: u32 },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnDisk {
    version: u32,
    entries: Vec<Entry>,
}

/// One learned (address, name), until `expires_unix_ms`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    addr: IpAddr,
    name: String,
    expires_unix_ms: u64,
}

/// The cache's file and when it must be written next.
#[derive(Debug)]
pub struct FqdnFile {
    path: PathBuf,
    /// The cache changed since the last write, which is due then.
    due: Option<Instant>,
    last: Option<Instant>,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().try_into().unwrap_or(u64::MAX))
}

impl FqdnFile {
    pub fn new(state_dir: &Path) -> FqdnFile {
        FqdnFile {
            path: state_dir.join(FILE),
            due: None,
            last: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cache changed at `now`: a write is due then, or [`MIN_INTERVAL`] after the last.
    pub fn changed(&mut self, now: Instant) {
        if self.due.is_none() {
            let earliest = self.last.map_or(now, |l| l + MIN_INTERVAL);
            self.due = Some(earliest.max(now));
        }
    }

    /// When a held-back write is due.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    /// Writes `cache` if a write is due by `now`. A failed write stays due, tried again after
    /// [`MIN_INTERVAL`].
    pub fn save_if_due(&mut self, now: Instant, cache: &FqdnCache) -> Result<(), FqdnFileError> {
        if self.due.is_none_or(|d| d > now) {
            return Ok(());
        }
        self.last = Some(now);
        let saved = self.save(now, SystemTime::now(), cache);
        self.due = saved.is_err().then(|| now + MIN_INTERVAL);
        saved
    }

    fn io(&self) -> impl Fn(std::io::Error) -> FqdnFileError + '_ {
        |source| FqdnFileError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Writes every entry of `cache`, its expiry taken from `now` (monotonic) to `wall`.
    fn save(&self, now: Instant, wall: SystemTime, cache: &FqdnCache) -> Result<(), FqdnFileError> {
        let entries = cache
            .entries()
            .map(|(addr, name, until)| Entry {
                addr,
                name: name.clone(),
                expires_unix_ms: unix_ms(wall + until.saturating_duration_since(now)),
            })
            .collect();
        let text = serde_json::to_vec(&OnDisk {
            version: VERSION,
            entries,
        })
        .map_err(|e| self.io()(e.into()))?;
        crate::durable::replace(&self.path, &text).map_err(self.io())
    }

    /// The entries not expired at `wall`, as answers with the time they have left (whole
    /// seconds, rounded down: never longer than the answer allowed); names the DNS proxy would
    /// not have learned are left out. No file: none.
    pub fn load(&self, wall: SystemTime) -> Result<Vec<Learned>, FqdnFileError> {
        let path = self.path.display().to_string();
        let size = match std::fs::metadata(&self.path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io()(e)),
        };
        if size > MAX_BYTES {
            return Err(FqdnFileError::TooLarge { path, size });
        }
        let text = std::fs::read(&self.path).map_err(self.io())?;
        let disk: OnDisk = serde_json::from_slice(&text).map_err(|e| FqdnFileError::Parse {
            path: path.clone(),
            line: e.line(),
            column: e.column(),
            reason: e.to_string(),
        })?;
        if disk.version != VERSION {
            return Err(FqdnFileError::Version {
                path,
                found: disk.version,
            });
        }
        let at = unix_ms(wall);
        Ok(disk
            .entries
            .into_iter()
            .filter(|e| e.expires_unix_ms > at && valid_name(&e.name))
            .map(|e| Learned {
                addr: e.addr,
                ttl: ((e.expires_unix_ms - at) / 1000)
                    .try_into()
                    .unwrap_or(u32::MAX),
                names: vec![e.name],
            })
            .collect())
    }
}

/// A name as the DNS proxy learns them: lower-case, with its trailing dot, at most 254 bytes.
fn valid_name(name: &str) -> bool {
    name.len() <= MAX_NAME
        && name.ends_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
}

#[cfg(test)]
mod tests;
