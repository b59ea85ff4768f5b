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

/// What a create-if-absent transaction found.
#[derive(Debug, PartialEq, Eq)]
pub enum Created {
    /// Both keys were absent and now hold the given values.
    Yes,
    /// At least one key existed; nothing was written. Their current values.
    No {
        first: Option<String>,
        second: Option<String>,
    },
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

    /// Writes `first` and `second` (key, value) in one transaction if neither key exists yet;
    /// otherwise writes nothing and returns both keys' current values.
    pub fn create_both(
        &self,
        first: (&str, &str),
        second: (&str, &str),
    ) -> Result<Created, KvError> {
        let path = "/v3/kv/txn";
        let absent = |k: &str| json!({"key": B64.encode(k), "target": "CREATE", "result": "EQUAL", "create_revision": "0"});
        let put = |(k, v): (&str, &str)| json!({"request_put": {"key": B64.encode(k), "value": B64.encode(v)}});
        let range = |k: &str| json!({"request_range": {"key": B64.encode(k)}});
        let body = json!({
            "compare": [absent(first.0), absent(second.0)],
            "success": [put(first), put(second)],
            "failure": [range(first.0), range(second.0)],
        });
        let r = self.http.post_json(path, &body)?;
        if r["succeeded"].as_bool() == Some(true) {
            return Ok(Created::Yes);
        }
        let responses = r["responses"]
            .as_array()
            .filter(|a| a.len() == 2)
            .ok_or_else(|| self.reply(path, format!("failed transaction without 2 ranges: {r}")))?;
        Ok(Created::No {
            first: self.first_value(path, &responses[0]["response_range"])?,
            second: self.first_value(path, &responses[1]["response_range"])?,
        })
    }

    /// The decoded value of the first key-value of a range reply.
    fn first_value(&self, path: &str, range: &Value) -> Result<Option<String>, KvError> {
        let Some(kv) = range["kvs"].as_array().and_then(|a| a.first()) else {
            return Ok(None);
        };
        // An empty value is omitted from the JSON.
        let b64 = kv["value"].as_str().unwrap_or("");
        let bytes = B64
            .decode(b64)
            .map_err(|e| self.reply(path, format!("value is not base64: {e}")))?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| self.reply(path, "value is not UTF-8"))
    }
}
