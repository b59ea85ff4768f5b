//! `--listen-tcp`: the API on a loopback TCP port is reachable by every local user (and by web
//! pages through DNS rebinding), so every request there must carry the token of
//! `--api-token-file` (`Authorization: Bearer TOKEN`) and name the listening address in its
//! `Host` header. The token file must be a regular file readable by its owner only, owned by
//! root or by the agent's user.

use super::ServeError;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

/// Tokens shorter than this are refused (guessable).
const MIN_TOKEN: usize = 16;

/// What a TCP request must present.
pub struct TcpAuth {
    token: String,
    /// Accepted `Host` values: the listening address, and `localhost:PORT`.
    hosts: [String; 2],
}

fn token_error(path: &Path, reason: impl Into<String>) -> ServeError {
    ServeError::TokenFile {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

impl TcpAuth {
    /// Reads and checks the token file.
    pub fn new(addr: SocketAddr, token_file: &Path) -> Result<TcpAuth, ServeError> {
        let m = std::fs::symlink_metadata(token_file)
            .map_err(|e| token_error(token_file, e.to_string()))?;
        if !m.file_type().is_file() {
            return Err(token_error(token_file, "not a regular file"));
        }
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        if m.uid() != 0 && m.uid() != euid {
            return Err(token_error(
                token_file,
                format!("owned by uid {}, not by root or the agent's user", m.uid()),
            ));
        }
        if m.mode() & 0o077 != 0 {
            return Err(token_error(
                token_file,
                format!(
                    "mode {:o} lets other users read it; chmod 600",
                    m.mode() & 0o777
                ),
            ));
        }
        let text = std::fs::read_to_string(token_file)
            .map_err(|e| token_error(token_file, e.to_string()))?;
        let token = text.trim().to_string();
        if token.len() < MIN_TOKEN || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(token_error(
                token_file,
                format!("the token must be one word of at least {MIN_TOKEN} characters"),
            ));
        }
        Ok(TcpAuth {
            token,
            hosts: [addr.to_string(), format!("localhost:{}", addr.port())],
        })
    }

    /// Why a request is refused, if it is.
    fn refuse(&self, req: &Request) -> Option<(StatusCode, String)> {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if !self.hosts.iter().any(|h| h == host) {
            return Some((
                StatusCode::FORBIDDEN,
                format!(
                    "Host {host:?} is not this agent's address ({})",
                    self.hosts[0]
                ),
            ));
        }
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or("");
        if !same(given.as_bytes(), self.token.as_bytes()) {
            return Some((
                StatusCode::UNAUTHORIZED,
                "missing or wrong Authorization: Bearer token (--api-token-file)".into(),
            ));
        }
        None
    }
}

/// Compares without stopping at the first difference (no timing hint about the token).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The middleware in front of every route of the TCP listener.
pub async fn check(State(auth): State<Arc<TcpAuth>>, req: Request, next: Next) -> Response {
    match auth.refuse(&req) {
        Some((status, error)) => {
            let mut r = super::error::HttpError::transport(status, error).into_response();
            if status == StatusCode::UNAUTHORIZED {
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
            }
            r
        }
        None => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn token_files_readable_by_others_or_short_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        let addr: SocketAddr = "127.0.0.1:9234".parse().unwrap();
        std::fs::write(&f, "0123456789abcdef0123\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = TcpAuth::new(addr, &f).err().expect("refused").to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let auth = TcpAuth::new(addr, &f).unwrap();
        assert_eq!(auth.token, "0123456789abcdef0123");
        std::fs::write(&f, "short").unwrap();
        let e = TcpAuth::new(addr, &f).err().expect("refused").to_string();
        assert!(e.contains("at least 16"), "{e}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        let e = TcpAuth::new(addr, &link)
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }
}
