//! The API's unix socket, owned by one agent: `PATH.lock` is held for the agent's lifetime;
//! a socket file that still answers belongs to a live agent and is refused, one that does
//! not (left by a killed agent) is replaced; at exit the socket is removed only if it is
//! still the one this agent bound.

use super::lock::{self, Lock};
use super::ServeError;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The socket path, claimed before the agent starts and bound once it is ready.
pub struct ApiSocket {
    path: PathBuf,
    _lock: Lock,
    /// (device, inode) of the socket file this agent bound.
    bound: Option<(u64, u64)>,
}

fn err(path: &Path) -> impl FnOnce(std::io::Error) -> ServeError + '_ {
    move |e| ServeError::Socket {
        path: path.display().to_string(),
        source: e,
    }
}

impl ApiSocket {
    /// Takes the socket's lock and checks that no live agent answers on it.
    pub fn claim(path: &Path) -> Result<ApiSocket, ServeError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err(dir))?;
        }
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".lock");
        let lock = lock::acquire(Path::new(&lock_path), "API socket")?;
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => {
                match std::os::unix::net::UnixStream::connect(path) {
                    Ok(_) => {
                        return Err(ServeError::LiveSocket {
                            path: path.display().to_string(),
                        })
                    }
                    // Nobody listens: left by an agent that was killed.
                    Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                        tracing::info!(socket = %path.display(), "replacing a stale API socket");
                    }
                    Err(e) => return Err(err(path)(e)),
                }
            }
            Ok(_) => {
                return Err(ServeError::NotASocket {
                    path: path.display().to_string(),
                })
            }
            Err(_) => {}
        }
        Ok(ApiSocket {
            path: path.to_path_buf(),
            _lock: lock,
            bound: None,
        })
    }

    /// Binds the socket with mode 0660: only root and the socket's group may connect.
    pub fn bind(&mut self) -> Result<tokio::net::UnixListener, ServeError> {
        let path = &self.path;
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(path)(e)),
        }
        let listener = tokio::net::UnixListener::bind(path).map_err(err(path))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
            .map_err(err(path))?;
        let m = std::fs::symlink_metadata(path).map_err(err(path))?;
        self.bound = Some((m.dev(), m.ino()));
        Ok(listener)
    }

    /// Removes the socket file if it is still the one this agent bound.
    pub fn remove(&self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| Some((m.dev(), m.ino())) == self.bound);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
