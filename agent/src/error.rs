//! What an agent operation can fail with. The agent knows no transport: the HTTP layer turns
//! each kind into a status and an `ErrorReply` body in one place (`server::error`).

use super::store::StoreError;
use compiler::cluster::ClusterError;

/// The error of every agent operation. A failed operation changed nothing (state, journal and
/// datapath are as they were) unless its message says otherwise.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The request or the policy it carries is invalid; `diagnostics` are the parser's and
    /// checker's messages (file:line:column), one a line.
    #[error("{message}")]
    Invalid {
        message: String,
        diagnostics: Vec<String>,
    },
    /// A named endpoint, identity, policy source or rule does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts the current state (an endpoint id or interface in use).
    #[error("{0}")]
    Conflict(String),
    /// A label to remove from an endpoint is not on it.
    #[error("label {0} not found")]
    LabelNotFound(String),
    /// A policy source path that cannot name a source (empty, or with a NUL byte).
    #[error("invalid path {0:?}")]
    InvalidPath(String),
    /// An endpoint's map would overflow with the change.
    #[error("{0}")]
    MapFull(String),
    /// The kernel refused a program (the verifier's verdict and the tail of its log).
    #[error("{0}")]
    Verifier(String),
    /// The kvstore (cluster identities shared between nodes) failed.
    #[error("{0}")]
    Kvstore(String),
    /// The persisted state could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file or system call failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Loading, attaching or writing the datapath failed.
    #[error("{0}")]
    Datapath(String),
    /// The agent's own state is inconsistent (a bug or a damaged state directory).
    #[error("{0}")]
    Internal(String),
}

impl AgentError {
    pub fn invalid(message: impl Into<String>) -> Self {
        AgentError::Invalid {
            message: message.into(),
            diagnostics: Vec::new(),
        }
    }

    /// A datapath failure, from any displayable error.
    pub fn datapath(e: impl std::fmt::Display) -> Self {
        AgentError::Datapath(e.to_string())
    }

    /// A failure of the cluster model: the kvstore's, or `otherwise` for the rest.
    pub fn cluster(e: ClusterError, otherwise: fn(String) -> AgentError) -> Self {
        match e {
            ClusterError::SharedIdentities(why) => {
                AgentError::Kvstore(format!("cluster-wide identity allocation failed: {why}"))
            }
            other => otherwise(other.to_string()),
        }
    }

    /// The diagnostics of an invalid input (none for the other kinds).
    pub fn diagnostics(&self) -> &[String] {
        match self {
            AgentError::Invalid { diagnostics, .. } => diagnostics,
            _ => &[],
        }
    }
}
