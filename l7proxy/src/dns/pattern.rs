//! Cilium's DNS name matching (`rules.dns` and `toFQDNs`): names compare lower-case with a
//! trailing dot; in `matchPattern`, `*` matches any run (possibly empty) of DNS label
//! characters (`[-a-zA-Z0-9_]`, so never a dot), and the pattern `*` alone matches every name.

use ir::DnsRule;

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
}
