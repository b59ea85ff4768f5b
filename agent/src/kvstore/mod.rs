//! The agent's key-value store (`--kvstore etcd --kvstore-endpoint URL`): cluster identities
//! shared between nodes, so every agent gives the same identity-relevant label set the same
//! number, claimed under a lease that expires with the node. See Documentation/agent.md
//! ("Identities shared between nodes").
//!
//! - `connect`: endpoint URL and TLS files to a client, and the check made at start.
//! - `etcd`: the blocking calls the agent makes, run on the kvstore's own tokio runtime.
//! - `lease`: the node's lease, kept alive while the agent runs and granted anew after it expired.
//! - `identities`: allocation, claims, release and the freeing of dead nodes' identities.
//! - `ipcache`, `sync`: the node's endpoints published, the other nodes' watched (the
//!   cluster-wide ipcache).
//! - `cache`, `id_cache`, `remote_cache`: the node's identity numbers and the other nodes'
//!   endpoints kept in the state directory, for a start while etcd does not answer.

pub mod cache;
pub mod connect;
pub mod etcd;
pub mod id_cache;
pub mod identities;
pub mod ipcache;
pub mod lease;
pub mod remote_cache;
pub mod sync;

use compiler::identity::SharedIdentities;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum KvError {
    #[error("kvstore endpoint {url:?}: {why}")]
    BadEndpoint { url: String, why: String },
    #[error("kvstore: reading the {what} {}: {error}", path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("kvstore {endpoint}: {why}")]
    #[diagnostic(help(
        "check --kvstore-ca (the CA that signed etcd's server certificate) and \
         --kvstore-cert/--kvstore-key (a client certificate etcd's --trusted-ca-file accepts)"
    ))]
    Refused { endpoint: String, why: String },
    #[error("kvstore {endpoint}: {op}: {why}")]
    Call {
        endpoint: String,
        op: &'static str,
        why: String,
    },
    #[error("kvstore {endpoint}: {key}: {why}")]
    Stored {
        endpoint: String,
        key: String,
        why: String,
    },
    #[error("kvstore {endpoint}: no identity for {labels} after {tries} tries from {from}")]
    Exhausted {
        endpoint: String,
        labels: String,
        tries: u32,
        from: u32,
    },
}

/// How to reach etcd and what this node keeps there.
#[derive(Clone, Debug)]
pub struct EtcdConfig {
    /// Client URL, `http://HOST:PORT` or `https://HOST:PORT`.
    pub endpoint: String,
    /// PEM CA certificate(s) that sign etcd's server certificate (`https://` only).
    pub ca: Option<PathBuf>,
    /// PEM client certificate and key, for etcd's `--client-cert-auth` (`https://` only).
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Key prefix of identities.
    pub prefix: String,
    /// Key prefix of the cluster-wide ipcache.
    pub ipcache_prefix: String,
    /// This node's name (claims are per node).
    pub node: String,
    /// Seconds the node's lease outlives its last keep-alive.
    pub lease_ttl: i64,
}

/// What the agent shares through etcd.
pub struct Kvstore {
    pub identities: Arc<dyn SharedIdentities>,
    pub ipcache: Arc<sync::IpcacheSync>,
}

/// This node in etcd. Checks the endpoint once (a TLS or authentication failure is refused
/// here; an unreachable etcd is only logged: changes that need it are refused until it
/// answers), then keeps the node's lease alive, frees the identities of nodes whose lease
/// expired and publishes the node's endpoints, in the background. The node's numbers and the
/// other nodes' endpoints are cached in `state_dir` (read here and by the agent's start).
pub fn open_etcd(cfg: &EtcdConfig, state_dir: &Path) -> Result<Kvstore, KvError> {
    let etcd = connect::connect(cfg)?;
    let lease = lease::Lease::start(etcd.clone(), cfg.lease_ttl);
    let ids = identities::EtcdIdentities::start(
        etcd.clone(),
        lease.clone(),
        &cfg.prefix,
        &cfg.node,
        id_cache::open(state_dir, cfg.prefix.trim_end_matches('/')),
    );
    let remote = remote_cache::open(state_dir, cfg.ipcache_prefix.trim_end_matches('/'));
    Ok(Kvstore {
        identities: Arc::new(ids),
        ipcache: sync::IpcacheSync::start(etcd, lease, &cfg.ipcache_prefix, &cfg.node, remote),
    })
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
