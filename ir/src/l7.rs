//! Layer 7 rules carried by a port rule (HTTP, DNS). Enforced by redirecting to a proxy.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum L7Rules {
    Http(Vec<HttpRule>),
    Dns(Vec<DnsRule>),
}

/// `method`, `path` and `host` are POSIX-extended regexes matched against the whole value;
/// an absent field matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HttpRule {
    pub method: Option<String>,
    pub path: Option<String>,
    pub host: Option<String>,
    /// `headers: ["Name: value"]` and `headerMatches`.
    pub headers: Vec<HeaderMatch>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HeaderMatch {
    pub name: String,
    /// `None`: the header must be present.
    pub value: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DnsRule {
    MatchName(String),
    MatchPattern(String),
}
