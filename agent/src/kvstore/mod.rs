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

/// The shared identity allocator of node `node` in the etcd at `url` (its client URL,
/// `http://HOST:PORT`), under key prefix `prefix`. Nothing is contacted yet.
pub fn open_etcd(
    url: &str,
    prefix: &str,
    node: &str,
) -> Result<Arc<dyn SharedIdentities>, KvError> {
    let client = etcd::Etcd::new(http::HttpEndpoint::parse(url)?);
    Ok(Arc::new(identities::EtcdIdentities::new(
        client, prefix, node,
    )))
}

/// After a change took effect (and at start): tells the kvstore every label set the agent's
/// cluster uses, so that it drops the node's claims on the others. Failures are logged and
/// retried after the next change.
pub fn retain_in_use(cfg: &crate::config::AgentConfig, cluster: &compiler::cluster::Cluster) {
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
