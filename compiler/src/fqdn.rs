//! Cilium's DNS name matching, shared by `rules.dns` (the DNS proxy), `toFQDNs` (the agent's
//! learned addresses) and `trace --dst-fqdn`: names compare lower-case with a trailing dot; in
//! `matchPattern`, `*` matches any run (possibly empty) of DNS label characters
//! (`[-a-zA-Z0-9_]`, so never a dot), and the pattern `*` alone matches every name.
//!
//! A `toFQDNs` entry is an FQDN selector: it selects the identities carrying its label
//! `fqdn:<name or pattern>` ([`selector_label`]), which the agent gives the addresses of
//! allowed DNS answers for names the selector matches ([`selector_matches`]).

use ir::{DnsRule, Label, LabelSource};

/// `www.Example.com` → `www.example.com.`.
pub fn normalize(name: &str) -> String {
    let mut n = name.to_ascii_lowercase();
    if !n.ends_with('.') {
        n.push('.');
    }
    n
}

fn label_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

/// Whether `name` (normalized) matches `pattern` (normalized), `*` as above.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    if pattern == "*." {
        return true;
    }
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    // ok[j]: the pattern's first i bytes match the name's first j bytes.
    let mut ok = vec![false; n.len() + 1];
    ok[0] = true;
    for &pc in p {
        let mut next = vec![false; n.len() + 1];
        if pc == b'*' {
            next[0] = ok[0];
            for j in 1..=n.len() {
                next[j] = ok[j] || (next[j - 1] && label_char(n[j - 1]));
            }
        } else {
            for j in 1..=n.len() {
                next[j] = ok[j - 1] && n[j - 1] == pc;
            }
        }
        ok = next;
    }
    ok[n.len()]
}

/// The canonical form of a `toFQDNs` entry: lower-case, without the trailing dot (so
/// `API.example.com.` and `api.example.com` are one selector).
pub fn canonical(rule: &DnsRule) -> DnsRule {
    let c = |s: &str| s.trim_end_matches('.').to_ascii_lowercase();
    match rule {
        DnsRule::MatchName(n) => DnsRule::MatchName(c(n)),
        DnsRule::MatchPattern(p) => DnsRule::MatchPattern(c(p)),
    }
}

/// The label an FQDN selector selects: `fqdn:<name or pattern>` of its canonical form
/// (Cilium's identity label of an FQDN selector).
pub fn selector_label(rule: &DnsRule) -> Label {
    let key = match canonical(rule) {
        DnsRule::MatchName(n) | DnsRule::MatchPattern(n) => n,
    };
    Label::new(LabelSource::Fqdn, key, "")
}

/// Whether the FQDN selector `rule` matches `name` (any case, trailing dot or not).
pub fn selector_matches(rule: &DnsRule, name: &str) -> bool {
    let name = normalize(name);
    match rule {
        DnsRule::MatchName(n) => normalize(n) == name,
        DnsRule::MatchPattern(p) => {
            let p = normalize(p);
            p == "*." || pattern_matches(&p, &name)
        }
    }
}

/// A list of `matchName` / `matchPattern` entries; a name matches when one entry does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameMatcher {
    names: Vec<String>,
    patterns: Vec<String>,
    all: bool,
}

impl NameMatcher {
    pub fn new<'a>(rules: impl IntoIterator<Item = &'a DnsRule>) -> NameMatcher {
        let mut m = NameMatcher::default();
        for r in rules {
            m.add(r);
        }
        m
    }

    /// One that matches every name.
    pub fn all() -> NameMatcher {
        NameMatcher {
            all: true,
            ..NameMatcher::default()
        }
    }

    pub fn add(&mut self, rule: &DnsRule) {
        match rule {
            DnsRule::MatchName(n) => self.names.push(normalize(n)),
            DnsRule::MatchPattern(p) => {
                let p = normalize(p);
                self.all |= p == "*.";
                self.patterns.push(p);
            }
        }
    }

    /// Whether `name` (any case, trailing dot or not) matches.
    pub fn matches(&self, name: &str) -> bool {
        if self.all {
            return true;
        }
        let name = normalize(name);
        self.names.contains(&name) || self.patterns.iter().any(|p| pattern_matches(p, &name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(rules: &[DnsRule]) -> NameMatcher {
        NameMatcher::new(rules)
    }

    #[test]
    fn star_matches_one_label_run_only() {
        let p = m(&[DnsRule::MatchPattern("*.allowed.test".into())]);
        assert!(p.matches("www.allowed.test"));
        assert!(p.matches("WWW.Allowed.Test."));
        assert!(p.matches(".allowed.test"), "`*` may match the empty run");
        assert!(!p.matches("a.b.allowed.test"), "`*` does not match a dot");
        assert!(!p.matches("allowed.test"));
        assert!(!p.matches("www.allowed.test.evil"));
        assert!(!p.matches("blocked.test"));
        let mid = m(&[DnsRule::MatchPattern("api-*.example.com".into())]);
        assert!(mid.matches("api-v1.example.com"));
        assert!(mid.matches("api-.example.com"));
        assert!(!mid.matches("api.example.com"));
        assert!(!mid.matches("xapi-v1.example.com"));
    }

    #[test]
    fn lone_star_matches_everything() {
        let p = m(&[DnsRule::MatchPattern("*".into())]);
        assert!(p.matches("a.b.c.example.com"));
        assert!(p.matches("."));
    }

    #[test]
    fn match_name_is_exact_and_case_insensitive() {
        let p = m(&[DnsRule::MatchName("Example.COM".into())]);
        assert!(p.matches("example.com."));
        assert!(!p.matches("www.example.com"));
        assert!(!m(&[]).matches("example.com"));
        assert!(NameMatcher::all().matches("x"));
    }

    #[test]
    fn selectors_have_one_canonical_label_and_match_like_rules_dns() {
        let a = DnsRule::MatchPattern("*.Allowed.TEST.".into());
        let b = DnsRule::MatchPattern("*.allowed.test".into());
        assert_eq!(canonical(&a), b);
        assert_eq!(selector_label(&a), selector_label(&b));
        assert_eq!(selector_label(&a).to_string(), "fqdn:*.allowed.test");
        for name in [
            "api.allowed.test",
            "API.allowed.test.",
            "x.y.allowed.test",
            "allowed.test",
        ] {
            assert_eq!(
                selector_matches(&a, name),
                m(std::slice::from_ref(&a)).matches(name),
                "{name}"
            );
        }
        let n = DnsRule::MatchName("api.allowed.test".into());
        assert!(selector_matches(&n, "API.Allowed.test."));
        assert!(!selector_matches(&n, "www.allowed.test"));
        assert!(selector_matches(
            &DnsRule::MatchPattern("*".into()),
            "a.b.c"
        ));
    }
}
