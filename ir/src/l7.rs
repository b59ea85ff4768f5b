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

/// Text form used by `ir::text`: `http {method="GET" path="/public"} {…}`, `dns {matchPattern="*"}`.
/// Strings are quoted with Rust escaping so regexes and header values survive unambiguously.
impl std::fmt::Display for L7Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            L7Rules::Http(rules) => {
                f.write_str("http")?;
                for r in rules {
                    write!(f, " {r}")?;
                }
            }
            L7Rules::Dns(rules) => {
                f.write_str("dns")?;
                for r in rules {
                    match r {
                        DnsRule::MatchName(n) => write!(f, " {{matchName={n:?}}}")?,
                        DnsRule::MatchPattern(p) => write!(f, " {{matchPattern={p:?}}}")?,
                    }
                }
            }
        }
        Ok(())
    }
}

impl std::fmt::Display for HttpRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut fields: Vec<String> = Vec::new();
        for (name, value) in [
            ("method", &self.method),
            ("path", &self.path),
            ("host", &self.host),
        ] {
            if let Some(v) = value {
                fields.push(format!("{name}={v:?}"));
            }
        }
        for h in &self.headers {
            match &h.value {
                Some(v) => fields.push(format!("header={:?}", format!("{}: {v}", h.name))),
                None => fields.push(format!("header={:?}", h.name)),
            }
        }
        write!(f, "{{{}}}", fields.join(" "))
    }
}
