//! L7 rules of a Cilium `toPorts` entry: `rules.http` (and the deprecated `HTTP`), `rules.dns`;
//! other L7 parsers are understood but not enforced.

use super::codes;
use super::decode::{Cx, Field, Unknown};
use ir::{DnsRule, HeaderMatch, HttpRule, L7Rules};

const L7_FIELDS: &[&str] = &["http", "HTTP", "dns", "kafka", "l7proto", "l7"];

/// Decodes `rules:`; `None` when it holds nothing the IR keeps or has errors (reported in `cx`).
pub fn l7_rules(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<L7Rules> {
    let before = cx.errors();
    let m = cx.map(f, L7_FIELDS, Unknown::Error)?;
    let mut out = None;
    let http = match (m.get("http"), m.get("HTTP")) {
        (Some(h), Some(old)) => {
            cx.at(
                &codes::DUPLICATE_KEY,
                &old,
                "both `http` and its deprecated spelling `HTTP` are given",
            );
            Some(h)
        }
        (Some(h), None) => Some(h),
        (None, Some(old)) => {
            let span = m.key("HTTP").map_or(old.span(), |k| k.span);
            let help = Some("write `http` (lowercase)".to_string());
            cx.report(
                &codes::DEPRECATED,
                span,
                &old.path,
                "the capitalised `HTTP` key of L7 rules is deprecated",
                help,
            );
            Some(old)
        }
        (None, None) => None,
    };
    if let Some(h) = http {
        let rules: Vec<HttpRule> = cx
            .seq(&h)
            .iter()
            .filter_map(|item| http_rule(cx, item))
            .collect();
        out = Some(L7Rules::Http(rules));
    }
    if let Some(d) = m.get("dns") {
        let rules: Vec<DnsRule> = cx
            .seq(&d)
            .iter()
            .filter_map(|item| dns_rule(cx, item))
            .collect();
        if out.is_some() {
            cx.at(
                &codes::CONFLICTING_FIELDS,
                &d,
                "one `rules` block can hold only one kind of L7 rules",
            );
        }
        out = Some(L7Rules::Dns(rules));
    }
    for other in ["kafka", "l7proto", "l7"] {
        if let Some(o) = m.get(other) {
            cx.not_enforced(
                &o,
                &format!("`rules.{other}` (L7 parsers other than HTTP and DNS)"),
            );
        }
    }
    if cx.errors() > before {
        return None;
    }
    out
}

fn check_regex(cx: &mut Cx<'_>, f: &Field<'_>, what: &str) -> Option<String> {
    let s = cx.str(f)?;
    // Parsing (not compiling) finds every syntax error and is cheap enough for large repositories.
    match regex_syntax::Parser::new().parse(&format!("^(?:{s})$")) {
        Ok(_) => Some(s.to_string()),
        Err(e) => {
            let detail = e.to_string();
            let last = detail.lines().last().unwrap_or_default().trim().to_string();
            cx.at(
                &codes::INVALID_REGEX,
                f,
                format!("HTTP {what} `{s}` is not a valid regular expression: {last}"),
            );
            None
        }
    }
}

fn http_rule(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<HttpRule> {
    let before = cx.errors();
    let m = cx.map(
        f,
        &["method", "path", "host", "headers", "headerMatches"],
        Unknown::Error,
    )?;
    let mut rule = HttpRule {
        method: m.get("method").and_then(|x| check_regex(cx, &x, "method")),
        path: m.get("path").and_then(|x| check_regex(cx, &x, "path")),
        host: m.get("host").and_then(|x| check_regex(cx, &x, "host")),
        ..HttpRule::default()
    };
    if let Some(h) = m.get("headers") {
        for (item, text) in cx.strings(&h) {
            let (name, value) = match text.split_once(':') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => match text.trim().split_once(char::is_whitespace) {
                    Some((n, v)) => (n, Some(v.trim())),
                    None => (text.trim(), None),
                },
            };
            if name.is_empty() {
                cx.at(
                    &codes::INVALID_VALUE,
                    &item,
                    format!("header `{text}` has no name"),
                );
                continue;
            }
            let value = value.filter(|v| !v.is_empty()).map(str::to_string);
            rule.headers.push(HeaderMatch {
                name: name.to_string(),
                value,
            });
        }
    }
    if let Some(hm) = m.get("headerMatches") {
        for item in cx.seq(&hm) {
            if let Some(h) = header_match(cx, &item) {
                rule.headers.push(h);
            }
        }
    }
    (cx.errors() == before).then_some(rule)
}

fn header_match(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<HeaderMatch> {
    let m = cx.map(f, &["name", "value", "secret", "mismatch"], Unknown::Error)?;
    let name = cx.required(&m, "name").and_then(|n| cx.str(&n))?;
    if let Some(s) = m.get("secret") {
        cx.not_enforced(
            &s,
            "`headerMatches[].secret` (header values from Kubernetes secrets)",
        );
    }
    if let Some(mm) = m.get("mismatch") {
        let action = cx.str(&mm)?;
        if !matches!(action, "LOG" | "ADD" | "DELETE" | "REPLACE") {
            cx.at(
                &codes::INVALID_VALUE,
                &mm,
                format!("unknown mismatch action `{action}` (LOG, ADD, DELETE or REPLACE)"),
            );
            return None;
        }
        cx.not_enforced(
            &mm,
            "`headerMatches[].mismatch` (header rewriting on mismatch)",
        );
    }
    let value = match m.get("value") {
        Some(v) => Some(cx.str(&v)?.to_string()),
        None => None,
    };
    Some(HeaderMatch {
        name: name.to_string(),
        value,
    })
}

pub fn dns_rule(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<DnsRule> {
    let m = cx.map(f, &["matchName", "matchPattern"], Unknown::Error)?;
    match (m.get("matchName"), m.get("matchPattern")) {
        (Some(n), None) => Some(DnsRule::MatchName(cx.str(&n)?.to_string())),
        (None, Some(p)) => Some(DnsRule::MatchPattern(cx.str(&p)?.to_string())),
        (Some(_), Some(p)) => {
            cx.at(
                &codes::CONFLICTING_FIELDS,
                &p,
                "give either `matchName` or `matchPattern`, not both",
            );
            None
        }
        (None, None) => {
            let msg = "missing required field `matchName` or `matchPattern`";
            cx.report(&codes::MISSING_FIELD, m.span(), m.path(), msg, None);
            None
        }
    }
}
