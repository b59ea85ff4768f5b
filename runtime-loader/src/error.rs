//! The loader's error type: every failure names the object (path, interface, map) it concerns.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error("{path}: not a BPF filesystem and mounting one failed: {source}")]
    Mount {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid name {name:?} for {what}: only ASCII letters, digits, '-', '_' and '.' are allowed (1-{max} characters)")]
    InvalidName {
        what: &'static str,
        name: String,
        max: usize,
    },
    #[error("interface {iface:?}: {message}")]
    Interface { iface: String, message: String },
    #[error("attaching to {iface} ({hook}): {message}")]
    Attach {
        iface: String,
        hook: &'static str,
        message: String,
    },
    #[error("map {path}: {message}")]
    Map { path: PathBuf, message: String },
    #[error(
        "map {path}: the update needs {needed} entries but the map holds at most {max}; nothing was written"
    )]
    MapFull {
        path: PathBuf,
        needed: u64,
        max: u32,
    },
    #[error("map {path}: key/value sizes {got_key}/{got_value} do not match the expected {want_key}/{want_value}")]
    MapLayout {
        path: PathBuf,
        got_key: u32,
        got_value: u32,
        want_key: u32,
        want_value: u32,
    },
    #[error("bpf({cmd}) on {path}: {source}")]
    Syscall {
        cmd: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T, E = LoaderError> = std::result::Result<T, E>;

impl LoaderError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LoaderError::Io {
            path: path.into(),
            source,
        }
    }
}
