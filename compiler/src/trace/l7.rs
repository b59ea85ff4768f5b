//! L7 (HTTP) rule evaluation for `trace --http-*`: method, path and host are extended regexes
//! matched against the whole value; headers must be present (with the value, when given).

use ir::{HttpRule, L7Rules};
use regex::Regex;

/// The request being traced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    pub host: String,
    /// `(name, value)`; names compare case-insensitively.
    pub headers: Vec<(String, String)>,
}

/// The proxy's decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum L7Verdict {
    /// No L7 rule applies at the deciding key: not redirected.
    NotRedirected,
    /// Redirected; no request given to evaluate.
    Redirected,
    Allowed,
    /// Redirected and no rule matched: the proxy answers 403.
    Denied,
}

/// The regex an HTTP rule's `method`, `path` or `host` field stands for: the field anchored at
/// both ends, or `None` when the field matches every value (absent or empty). The L7 proxy
/// compiles the same patterns, so trace and proxy read a rule the same way.
pub fn anchored_pattern(re: Option<&str>) -> Option<String> {
    re.filter(|r| !r.is_empty()).map(|r| format!("^(?:{r})$"))
}

fn full(re: &Option<String>, value: &str) -> bool {
    match anchored_pattern(re.as_deref()) {
        None => true,
        Some(r) => Regex::new(&r).map(|re| re.is_match(value)).unwrap_or(false),
    }
}

/// Does the HTTP rule allow the request?
pub fn http_matches(rule: &HttpRule, req: &HttpRequest) -> bool {
    full(&rule.method, &req.method)
        && full(&rule.path, &req.path)
        && full(&rule.host, &req.host)
        && rule.headers.iter().all(|h| {
            req.headers.iter().any(|(n, v)| {
                n.eq_ignore_ascii_case(&h.name) && h.value.as_ref().is_none_or(|want| want == v)
            })
        })
}

/// Do these L7 rules allow the request? DNS rules are not evaluated (they do not apply to HTTP).
pub fn l7_allows(l7: &L7Rules, req: &HttpRequest) -> bool {
    match l7 {
        L7Rules::Http(rules) => rules.is_empty() || rules.iter().any(|r| http_matches(r, req)),
        L7Rules::Dns(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_language_http_example() {
        let rules = L7Rules::Http(vec![
            HttpRule {
                method: Some("GET".into()),
                path: Some("/path1$".into()),
                ..Default::default()
            },
            HttpRule {
                method: Some("PUT".into()),
                path: Some("/path2$".into()),
                headers: vec![ir::HeaderMatch {
                    name: "X-My-Header".into(),
                    value: Some("true".into()),
                }],
                ..Default::default()
            },
        ]);
        let req = |m: &str, p: &str, h: &[(&str, &str)]| HttpRequest {
            method: m.into(),
            path: p.into(),
            host: String::new(),
            headers: h
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        };
        assert!(l7_allows(&rules, &req("GET", "/path1", &[])));
        assert!(!l7_allows(&rules, &req("GET", "/path2", &[])));
        assert!(!l7_allows(&rules, &req("PUT", "/path2", &[])));
        assert!(l7_allows(
            &rules,
            &req("PUT", "/path2", &[("x-my-header", "true")])
        ));
        assert!(!l7_allows(&rules, &req("POST", "/path1", &[])));
    }
}
