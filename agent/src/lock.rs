//! Exclusive ownership of what one agent may not share with another: its state directory,
//! its API socket and its node's pin directory. Each is held through an advisory `flock`
//! taken without waiting; the kernel drops it when the agent exits, however it exits, so a
//! killed agent never leaves a stale lock behind.

use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} {} is in use by another agent{}; refusing to start", path.display(), holder.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Held {
        what: &'static str,
        path: PathBuf,
        holder: Option<u32>,
    },
}

/// A held lock; released when dropped (or when the process exits).
#[derive(Debug)]
pub struct Lock {
    _file: std::fs::File,
}

/// Locks the file `path` (created with mode 0600), and writes this process's id into it so
/// that a refused agent can name the holder. `what` names the resource in the error.
pub fn acquire(path: &Path, what: &'static str) -> Result<Lock, LockError> {
    let io = |source| LockError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    if !try_flock(&file).map_err(io)? {
        let mut text = String::new();
        let holder = file
            .read_to_string(&mut text)
            .ok()
            .and_then(|_| text.trim().parse().ok());
        return Err(LockError::Held {
            what,
            path: path.to_path_buf(),
            holder,
        });
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    Ok(Lock { _file: file })
}

/// Locks the directory `dir` itself (for file systems such as bpffs that hold no regular
/// files).
pub fn acquire_dir(dir: &Path, what: &'static str) -> Result<Lock, LockError> {
    let io = |source| LockError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)
        .map_err(io)?;
    if !try_flock(&file).map_err(io)? {
        return Err(LockError::Held {
            what,
            path: dir.to_path_buf(),
            holder: None,
        });
    }
    Ok(Lock { _file: file })
}

/// `flock(LOCK_EX | LOCK_NB)`: false when another open file holds it.
fn try_flock(file: &std::fs::File) -> std::io::Result<bool> {
    // SAFETY: flock on a file descriptor this function borrows; no memory is passed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = acquire(&path, "state directory").unwrap();
        match acquire(&path, "state directory") {
            Err(
                e @ LockError::Held {
                    holder: Some(pid), ..
                },
            ) => {
                assert_eq!(pid, std::process::id());
                assert!(e.to_string().contains("in use by another agent"), "{e}");
            }
            other => panic!("expected the lock to be held, got {other:?}"),
        }
        let d = acquire_dir(dir.path(), "pin directory").unwrap();
        assert!(matches!(
            acquire_dir(dir.path(), "pin directory"),
            Err(LockError::Held { holder: None, .. })
        ));
        drop((first, d));
        acquire(&path, "state directory").unwrap();
        acquire_dir(dir.path(), "pin directory").unwrap();
    }
}
