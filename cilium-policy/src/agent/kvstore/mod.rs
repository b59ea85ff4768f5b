//! The agent's key-value store (`--kvstore etcd --kvstore-endpoint URL`): cluster identities
//! shared between nodes, so every agent gives the same identity-relevant label set the same
//! number. See Documentation/agent.md ("Identities shared between nodes").

pub mod etcd;
pub mod http;
pub mod identities;

use compiler::identity::SharedIdentities;
use std::sync::Arc;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum KvError {
    #[error("kvstore endpoint {url:?}: {why}")]
    BadEndpoint { url: String, why: &'static str },
    #[error("kvstore {endpoint}: {source}")]
    Io {
        endpoint: String,
        source: std::io::Error,
    },
    #[error("kvstore {endpoint}{path}: HTTP {status}: {body}")]
    Status {
        endpoint: String,
        path: String,
        status: u16,
        body: String,
    },
    #[error("kvstore {endpoint}{path}: unexpected reply: {why}")]
    Reply {
        endpoint: String,
        path: String,
        why: String,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// etcd v3, through its JSON gateway (`/v3/kv/...`).
    Etcd,
}

/// The agent's kvstore flags.
#[derive(clap::Args, Debug, Clone)]
pub struct KvstoreArgs {
    /// Share cluster identities with the other nodes' agents through this store.
    #[arg(long, value_enum, requires = "kvstore_endpoint")]
    pub kvstore: Option<Kind>,
    /// The store's client URL (`http://HOST:PORT`), e.g. `http://127.0.0.1:2379`.
    #[arg(long, requires = "kvstore")]
    pub kvstore_endpoint: Option<String>,
    /// Key prefix under which identities live (`PREFIX/id/N`, `PREFIX/value/LABELS`).
    #[arg(long, default_value = identities::DEFAULT_PREFIX, requires = "kvstore")]
    pub kvstore_prefix: String,
}

impl KvstoreArgs {
    /// The shared identity allocator of node `node`, when `--kvstore` is given (nothing is
    /// contacted yet).
    pub fn open(&self, node: &str) -> Result<Option<Arc<dyn SharedIdentities>>, KvError> {
        let (Some(Kind::Etcd), Some(url)) = (self.kvstore, &self.kvstore_endpoint) else {
            return Ok(None);
        };
        let client = etcd::Etcd::new(http::HttpEndpoint::parse(url)?);
        Ok(Some(Arc::new(identities::EtcdIdentities::new(
            client,
            &self.kvstore_prefix,
            node,
        ))))
    }
}

/// After a change took effect (and at start): tells the kvstore every label set the agent's
/// cluster uses, so that it drops the node's claims on the others. Failures are logged and
/// retried after the next change.
pub fn retain_in_use(
    cfg: &crate::agent::config::AgentConfig,
    cluster: &compiler::cluster::Cluster,
) {
    let Some(kv) = &cfg.kvstore else {
        return;
    };
    let in_use = cluster
        .identities()
        .filter(|i| matches!(i.kind, compiler::identity::IdentityKind::Endpoint))
        .map(|i| compiler::identity::alloc::key_of(&i.labels))
        .collect();
    if let Err(e) = kv.retain(&in_use) {
        tracing::warn!(error = %e, "releasing unused identities in the kvstore failed");
    }
}
