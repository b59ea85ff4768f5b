//! The CLI's client for the agent API: HTTP/1.1 over the agent's unix socket.

use crate::model::ErrorReply;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ClientError {
    #[error("cannot reach the agent at {path}: {source}")]
    #[diagnostic(help(
        "is `cilium-policy agent --api-socket {path}` running, and may you open its socket?"
    ))]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("talking to the agent: {0}")]
    Http(String),
    #[error("the agent refused the request ({status}): {error}{}", render_diags(.diagnostics))]
    Api {
        status: StatusCode,
        error: String,
        diagnostics: Vec<String>,
    },
    #[error("unexpected reply from the agent: {0}")]
    Decode(String),
    #[error("the agent did not answer within {0:?}")]
    Timeout(std::time::Duration),
}

fn render_diags(d: &[String]) -> String {
    d.iter().map(|l| format!("\n  {l}")).collect()
}

pub struct Client {
    socket: PathBuf,
    rt: tokio::runtime::Runtime,
    /// Bound on one whole request (connect, send, reply); none by default (the CLI waits for
    /// long regenerations; the CNI plugin bounds them).
    timeout: Option<std::time::Duration>,
}

impl Client {
    pub fn new(socket: &Path) -> Result<Client, ClientError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClientError::Http(e.to_string()))?;
        Ok(Client {
            socket: socket.into(),
            rt,
            timeout: None,
        })
    }

    /// Every request fails with [`ClientError::Timeout`] after `limit`.
    pub fn with_timeout(mut self, limit: std::time::Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    pub fn put<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.call(Method::PUT, path, Some(body))
    }

    pub fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::DELETE, path, None::<&()>)
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, None::<&()>)
    }

    /// Sends `body` as JSON and decodes the JSON reply; non-2xx replies become [`ClientError::Api`].
    pub fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let bytes = self.rt.block_on(self.bounded(async {
            let mut resp = self.send(method, path, body).await?;
            let status = resp.status();
            let body = resp
                .body_mut()
                .collect()
                .await
                .map_err(|e| ClientError::Http(e.to_string()))?
                .to_bytes();
            if !status.is_success() {
                let e: ErrorReply = serde_json::from_slice(&body).unwrap_or_else(|_| ErrorReply {
                    error: String::from_utf8_lossy(&body).into_owned(),
                    diagnostics: vec![],
                });
                return Err(ClientError::Api {
                    status,
                    error: e.error,
                    diagnostics: e.diagnostics,
                });
            }
            Ok(body)
        }))?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Streams a reply body: `connected` once the agent has answered (its status was a
    /// success), then `line` for every line until the agent closes it.
    pub fn stream_lines(
        &self,
        path: &str,
        connected: impl FnOnce(),
        mut line: impl FnMut(&str),
    ) -> Result<(), ClientError> {
        self.rt.block_on(async {
            let mut resp = self.send(Method::GET, path, None::<&()>).await?;
            if !resp.status().is_success() {
                return Err(ClientError::Api {
                    status: resp.status(),
                    error: "monitor refused".into(),
                    diagnostics: vec![],
                });
            }
            connected();
            let mut buf = Vec::new();
            while let Some(frame) = resp.body_mut().frame().await {
                let frame = frame.map_err(|e| ClientError::Http(e.to_string()))?;
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                    while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                        let l: Vec<u8> = buf.drain(..=i).collect();
                        line(String::from_utf8_lossy(&l[..l.len() - 1]).as_ref());
                    }
                }
            }
            Ok(())
        })
    }

    async fn bounded<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        match self.timeout {
            None => f.await,
            Some(limit) => tokio::time::timeout(limit, f)
                .await
                .map_err(|_| ClientError::Timeout(limit))?,
        }
    }

    async fn send<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| ClientError::Connect {
                path: self.socket.display().to_string(),
                source: e,
            })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        tokio::spawn(conn);
        let payload = match body {
            Some(b) => serde_json::to_vec(b).map_err(|e| ClientError::Http(e.to_string()))?,
            None => Vec::new(),
        };
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "cilium-policy-agent")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(payload)))
            .map_err(|e| ClientError::Http(e.to_string()))?;
        sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Http(e.to_string()))
    }
}
