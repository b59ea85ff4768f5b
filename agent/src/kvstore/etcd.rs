//! The etcd v3 calls the kvstore makes, over gRPC (`etcd-client`). They are `async` and run on
//! the kvstore's own runtime (one thread, see `connect`); [`Etcd::block_on`] is how the
//! agent's synchronous writer waits for one.

use super::KvError;
use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, TxnOp, TxnOpResponse};
use std::future::Future;

#[derive(Clone)]
pub struct Etcd {
    client: etcd_client::Client,
    endpoint: String,
    rt: tokio::runtime::Handle,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// Comparisons and operations of a transaction.
pub mod op {
    use super::{Compare, CompareOp, GetOptions, PutOptions, TxnOp};

    /// `key` does not exist.
    pub fn absent(key: &str) -> Compare {
        Compare::create_revision(key, CompareOp::Equal, 0)
    }
    /// `key` holds `value`.
    pub fn holds(key: &str, value: &str) -> Compare {
        Compare::value(key, CompareOp::Equal, value)
    }
    /// No key starts with `prefix` (every key of an empty range has version 0).
    pub fn none_under(prefix: &str) -> Compare {
        Compare::version(prefix, CompareOp::Equal, 0).with_prefix()
    }
    /// Puts `key` under lease `lease` (0: none).
    pub fn put(key: &str, value: &str, lease: i64) -> TxnOp {
        TxnOp::put(key, value, Some(PutOptions::new().with_lease(lease)))
    }
    pub fn delete(key: &str) -> TxnOp {
        TxnOp::delete(key, None)
    }
    pub fn get(key: &str) -> TxnOp {
        TxnOp::get(key, Some(GetOptions::new()))
    }
}

/// The result of a transaction: whether the comparisons held, and the values its range
/// operations read (in order; `None` for a missing key).
#[derive(Debug, PartialEq, Eq)]
pub struct TxnResult {
    pub succeeded: bool,
    pub values: Vec<Option<String>>,
}

/// The error under an etcd error and its causes, outermost first (`etcd_client::Error` does
/// not expose them as its `source`).
pub fn causes(e: &etcd_client::Error) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    let first: Option<&(dyn std::error::Error + 'static)> = match e {
        etcd_client::Error::GRpcStatus(s) => Some(s),
        etcd_client::Error::TransportError(t) => Some(t),
        etcd_client::Error::IoError(io) => Some(io),
        _ => None,
    };
    std::iter::successors(first, |s| s.source())
}

/// An etcd error as one line: the gRPC status message or the transport error with its causes
/// (the TLS or connection failure underneath).
pub fn describe(e: &etcd_client::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let head = match e {
        etcd_client::Error::GRpcStatus(s) => format!("{:?}: {}", s.code(), s.message()),
        other => other.to_string(),
    };
    for s in std::iter::once(head).chain(causes(e).skip(1).map(|c| c.to_string())) {
        if !s.is_empty() && !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

impl Etcd {
    pub fn new(client: etcd_client::Client, endpoint: String, rt: tokio::runtime::Handle) -> Etcd {
        Etcd {
            client,
            endpoint,
            rt,
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn client(&self) -> etcd_client::Client {
        self.client.clone()
    }

    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.rt
    }

    pub fn call_error(&self, op: &'static str, e: &etcd_client::Error) -> KvError {
        KvError::Call {
            endpoint: self.endpoint.clone(),
            op,
            why: describe(e),
        }
    }

    fn stored(&self, key: &[u8], why: impl Into<String>) -> KvError {
        KvError::Stored {
            endpoint: self.endpoint.clone(),
            key: String::from_utf8_lossy(key).into_owned(),
            why: why.into(),
        }
    }

    /// Runs `fut` on the kvstore's runtime and waits for it (from a thread that is not one of
    /// that runtime's).
    pub fn block_on<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, KvError>> + Send + 'static,
    ) -> Result<T, KvError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().unwrap_or_else(|_| {
            Err(KvError::Call {
                endpoint: self.endpoint.clone(),
                op: "call",
                why: "the kvstore's runtime stopped".into(),
            })
        })
    }

    fn text(&self, key: &[u8], value: &[u8]) -> Result<String, KvError> {
        String::from_utf8(value.to_vec()).map_err(|_| self.stored(key, "value is not UTF-8"))
    }

    /// The value of `key`, if it exists.
    pub async fn get(&self, key: &str) -> Result<Option<String>, KvError> {
        let mut kv = self.client.kv_client();
        let r = kv
            .get(key, None)
            .await
            .map_err(|e| self.call_error("get", &e))?;
        r.kvs()
            .first()
            .map(|kv| self.text(kv.key(), kv.value()))
            .transpose()
    }

    /// The keys starting with `prefix`, without it (keys that are not UTF-8 are skipped).
    pub async fn keys_under(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        let mut kv = self.client.kv_client();
        let r = kv
            .get(
                prefix,
                Some(GetOptions::new().with_prefix().with_keys_only()),
            )
            .await
            .map_err(|e| self.call_error("list", &e))?;
        Ok(r.kvs()
            .iter()
            .filter_map(|kv| kv.key_str().ok()?.strip_prefix(prefix).map(str::to_string))
            .collect())
    }

    /// The keys starting with `prefix` (without it) and their values, and the store's
    /// revision they were read at (to watch from the next one).
    pub async fn list(&self, prefix: &str) -> Result<(Vec<(String, Vec<u8>)>, i64), KvError> {
        let mut kv = self.client.kv_client();
        let r = kv
            .get(prefix, Some(GetOptions::new().with_prefix()))
            .await
            .map_err(|e| self.call_error("list", &e))?;
        let revision = r.header().map_or(0, |h| h.revision());
        let kvs = r
            .kvs()
            .iter()
            .filter_map(|kv| {
                let rest = kv.key_str().ok()?.strip_prefix(prefix)?;
                Some((rest.to_string(), kv.value().to_vec()))
            })
            .collect();
        Ok((kvs, revision))
    }

    /// Puts `key` under lease `lease` (0: none).
    pub async fn put(&self, key: &str, value: &str, lease: i64) -> Result<(), KvError> {
        let mut kv = self.client.kv_client();
        kv.put(key, value, Some(PutOptions::new().with_lease(lease)))
            .await
            .map_err(|e| self.call_error("put", &e))?;
        Ok(())
    }

    pub async fn delete(&self, key: &str) -> Result<(), KvError> {
        let mut kv = self.client.kv_client();
        kv.delete(key, None)
            .await
            .map_err(|e| self.call_error("delete", &e))?;
        Ok(())
    }

    /// Runs `success` if every comparison holds, else `failure` (see [`op`]).
    pub async fn txn(
        &self,
        compare: Vec<Compare>,
        success: Vec<TxnOp>,
        failure: Vec<TxnOp>,
    ) -> Result<TxnResult, KvError> {
        let mut kv = self.client.kv_client();
        let txn = etcd_client::Txn::new()
            .when(compare)
            .and_then(success)
            .or_else(failure);
        let r = kv
            .txn(txn)
            .await
            .map_err(|e| self.call_error("transaction", &e))?;
        let mut values = Vec::new();
        for resp in r.op_responses() {
            if let TxnOpResponse::Get(range) = resp {
                let v = range.kvs().first();
                values.push(v.map(|kv| self.text(kv.key(), kv.value())).transpose()?);
            }
        }
        Ok(TxnResult {
            succeeded: r.succeeded(),
            values,
        })
    }
}
