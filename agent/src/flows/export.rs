//! `agent --flow-export FILE`: every datapath flow as a JSON line
//! (`{"flow": {...}, "node_name": ..., "time": ...}`, as Hubble's exporter writes), with
//! size-based rotation (`FILE.1` … `FILE.N`). The exporter is one more listener of the monitor
//! channel: while it is configured the endpoints emit events. The channel is bounded and never
//! waits for a listener, so when the file writer falls behind the oldest flows are overwritten
//! and counted as lost; the datapath reader never blocks.

use crate::monitor::Line;
use compiler::flow::ExportedFlow;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::broadcast::{self, error::RecvError};

/// Where and how much.
#[derive(Clone, Debug)]
pub struct ExportConfig {
    pub path: PathBuf,
    /// Rotate when the file would grow past this many bytes.
    pub max_bytes: u64,
    /// Rotated files kept (`FILE.1` is the newest).
    pub max_backups: u32,
}

/// What the exporter has done, for metrics.
#[derive(Debug, Default)]
pub struct ExportStats {
    pub written: AtomicU64,
    /// Flows overwritten in the channel before the exporter read them, or not written
    /// because the file could not be.
    pub lost: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
#[error("flow export {path}: {source}")]
pub struct ExportError {
    path: String,
    source: std::io::Error,
}

struct Sink {
    cfg: ExportConfig,
    file: BufWriter<File>,
    size: u64,
}

fn open(path: &Path) -> std::io::Result<(BufWriter<File>, u64)> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let size = f.metadata()?.len();
    Ok((BufWriter::new(f), size))
}

impl Sink {
    fn new(cfg: ExportConfig) -> Result<Sink, ExportError> {
        let (file, size) = open(&cfg.path).map_err(|source| ExportError {
            path: cfg.path.display().to_string(),
            source,
        })?;
        Ok(Sink { cfg, file, size })
    }

    fn backup(&self, n: u32) -> PathBuf {
        let mut p = self.cfg.path.clone().into_os_string();
        p.push(format!(".{n}"));
        p.into()
    }

    /// `FILE` → `FILE.1` → … → `FILE.N` (the oldest goes), then a new `FILE`.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        if self.cfg.max_backups == 0 {
            std::fs::remove_file(&self.cfg.path)?;
        } else {
            for n in (1..self.cfg.max_backups).rev() {
                let from = self.backup(n);
                if from.exists() {
                    std::fs::rename(&from, self.backup(n + 1))?;
                }
            }
            std::fs::rename(&self.cfg.path, self.backup(1))?;
        }
        (self.file, self.size) = open(&self.cfg.path)?;
        Ok(())
    }

    fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        let len = line.len() as u64 + 1;
        if self.size > 0 && self.size + len > self.cfg.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(line)?;
        self.file.write_all(b"\n")?;
        self.size += len;
        Ok(())
    }
}

/// Opens the file (an error here stops the agent's start) and starts the exporter thread on
/// `rx`.
pub fn spawn(
    cfg: ExportConfig,
    mut rx: broadcast::Receiver<Line>,
    node: String,
) -> Result<Arc<ExportStats>, ExportError> {
    let mut sink = Sink::new(cfg)?;
    let stats = Arc::new(ExportStats::default());
    let out = stats.clone();
    std::thread::Builder::new()
        .name("flow-export".into())
        .spawn(move || loop {
            let line = match rx.blocking_recv() {
                Ok(line) => line,
                Err(RecvError::Lagged(n)) => {
                    out.lost.fetch_add(n, Ordering::Relaxed);
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            let Some(flow) = line.flow else { continue };
            let rec = ExportedFlow {
                time: flow.time.clone(),
                node_name: Some(node.clone()),
                flow: (*flow).clone(),
            };
            let res = serde_json::to_vec(&rec)
                .map_err(std::io::Error::other)
                .and_then(|b| sink.write(&b));
            // Flushed when nothing else is queued: lines reach the file promptly, and a burst
            // costs one write.
            let res = res.and_then(|()| {
                if rx.is_empty() {
                    sink.file.flush()
                } else {
                    Ok(())
                }
            });
            match res {
                Ok(()) => {
                    out.written.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    out.lost.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "flow export: a flow was not written");
                }
            }
        })
        .map_err(|source| ExportError {
            path: "thread".into(),
            source,
        })?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_the_newest_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flows.json");
        let mut s = Sink::new(ExportConfig {
            path: path.clone(),
            max_bytes: 25,
            max_backups: 2,
        })
        .unwrap();
        for i in 0..7 {
            s.write(format!("line-{i}-0123456789").as_bytes()).unwrap();
        }
        s.file.flush().unwrap();
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        // 18 bytes a line: one line per file, the two newest rotated ones kept.
        assert_eq!(read(&path), "line-6-0123456789\n");
        assert_eq!(read(&s.backup(1)), "line-5-0123456789\n");
        assert_eq!(read(&s.backup(2)), "line-4-0123456789\n");
        assert!(!s.backup(3).exists());
    }
}
