//! The etcd v3 calls identity allocation needs, through etcd's JSON gateway (`/v3/kv/range`,
//! `/v3/kv/txn`; keys and values base64-encoded, 64-bit numbers as strings).

use super::http::HttpEndpoint;
use super::KvError;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};

#[derive(Clone, Debug)]
pub struct Etcd {
    http: HttpEndpoint,
}

/// Comparisons and operations of a transaction (JSON gateway form).
pub mod op {
    use super::{json, Value, B64};
    use base64::Engine;

    /// `key` does not exist.
    pub fn absent(key: &str) -> Value {
        json!({"key": B64.encode(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"})
    }
    /// `key` holds `value`.
    pub fn holds(key: &str, value: &str) -> Value {
        json!({"key": B64.encode(key), "target": "VALUE", "result": "EQUAL", "value": B64.encode(value)})
    }
    /// No key starts with `prefix` (every key of an empty range has version 0).
    pub fn none_under(prefix: &str) -> Value {
        json!({"key": B64.encode(prefix), "range_end": B64.encode(super::prefix_end(prefix)),
               "target": "VERSION", "result": "EQUAL", "version": "0"})
    }
    pub fn put(key: &str, value: &str) -> Value {
        json!({"request_put": {"key": B64.encode(key), "value": B64.encode(value)}})
    }
    pub fn delete(key: &str) -> Value {
        json!({"request_delete_range": {"key": B64.encode(key)}})
    }
    pub fn get(key: &str) -> Value {
        json!({"request_range": {"key": B64.encode(key)}})
    }
}

/// The first key after every key starting with `prefix` (etcd's `range_end` for a prefix).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The result of a transaction: whether the comparisons held, and the values its range
/// operations read (in order; `None` for a missing key).
#[derive(Debug, PartialEq, Eq)]
pub struct TxnResult {
    pub succeeded: bool,
    pub values: Vec<Option<String>>,
}

impl Etcd {
    pub fn new(http: HttpEndpoint) -> Etcd {
        Etcd { http }
    }

    pub fn endpoint(&self) -> String {
        self.http.name()
    }

    fn reply(&self, path: &str, why: impl Into<String>) -> KvError {
        KvError::Reply {
            endpoint: self.http.name(),
            path: path.to_string(),
            why: why.into(),
        }
    }

    /// The value of `key`, if it exists.
    pub fn get(&self, key: &str) -> Result<Option<String>, KvError> {
        let path = "/v3/kv/range";
        let r = self
            .http
            .post_json(path, &json!({"key": B64.encode(key)}))?;
        self.first_value(path, &r)
    }

    /// The keys starting with `prefix`, without it.
    pub fn keys_under(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        let path = "/v3/kv/range";
        let body = json!({"key": B64.encode(prefix), "range_end": B64.encode(prefix_end(prefix)),
                          "keys_only": true});
        let r = self.http.post_json(path, &body)?;
        let mut out = Vec::new();
        for kv in r["kvs"].as_array().into_iter().flatten() {
            let k = self.decode(path, kv["key"].as_str().unwrap_or(""))?;
            if let Some(rest) = k.strip_prefix(prefix) {
                out.push(rest.to_string());
            }
        }
        Ok(out)
    }

    /// Runs `success` if every comparison holds, else `failure` (see [`op`]).
    pub fn txn(
        &self,
        compare: Vec<Value>,
        success: Vec<Value>,
        failure: Vec<Value>,
    ) -> Result<TxnResult, KvError> {
        let path = "/v3/kv/txn";
        let body = json!({"compare": compare, "success": success, "failure": failure});
        let r = self.http.post_json(path, &body)?;
        let mut values = Vec::new();
        for resp in r["responses"].as_array().into_iter().flatten() {
            if let Some(range) = resp.get("response_range") {
                values.push(self.first_value(path, range)?);
            }
        }
        Ok(TxnResult {
            succeeded: r["succeeded"].as_bool() == Some(true),
            values,
        })
    }

    /// The decoded value of the first key-value of a range reply.
    fn first_value(&self, path: &str, range: &Value) -> Result<Option<String>, KvError> {
        let Some(kv) = range["kvs"].as_array().and_then(|a| a.first()) else {
            return Ok(None);
        };
        // An empty value is omitted from the JSON.
        self.decode(path, kv["value"].as_str().unwrap_or(""))
            .map(Some)
    }

    fn decode(&self, path: &str, b64: &str) -> Result<String, KvError> {
        let bytes = B64
            .decode(b64)
            .map_err(|e| self.reply(path, format!("not base64: {e}")))?;
        String::from_utf8(bytes).map_err(|_| self.reply(path, "not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end("/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
    }
}
