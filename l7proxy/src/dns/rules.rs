//! The `rules.dns` of one DNS redirect key, kept rule by rule: a query's verdict names the rule
//! that allowed it, or the rules it failed (the flows' `*_allowed_by` / `*_denied_by`), as an
//! HTTP request's does.

use super::NameMatcher;
use ir::RuleId;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsRules {
    by_rule: Vec<(RuleId, NameMatcher)>,
}

impl DnsRules {
    /// Adds the names one port rule of `rule` allows (`NameMatcher::all()` for an empty
    /// `dns` block).
    pub fn push(&mut self, rule: RuleId, names: NameMatcher) {
        self.by_rule.push((rule, names));
    }

    /// The first rule that allows `name`, if any.
    pub fn allowing(&self, name: &str) -> Option<RuleId> {
        self.by_rule
            .iter()
            .find(|(_, m)| m.matches(name))
            .map(|(id, _)| *id)
    }

    pub fn matches(&self, name: &str) -> bool {
        self.allowing(name).is_some()
    }

    /// Every rule at the key, once each, in order: what a denied query failed.
    pub fn rules(&self) -> Vec<RuleId> {
        let mut out: Vec<RuleId> = Vec::new();
        for (id, _) in &self.by_rule {
            if !out.contains(id) {
                out.push(*id);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ir::DnsRule;

    #[test]
    fn the_first_allowing_rule_names_the_verdict() {
        let pattern = |p: &str| DnsRule::MatchPattern(p.into());
        let mut r = DnsRules::default();
        r.push(RuleId(3), NameMatcher::new(&[pattern("*.a.test")]));
        r.push(RuleId(5), NameMatcher::new(&[pattern("www.*.test")]));
        r.push(RuleId(3), NameMatcher::new(&[pattern("b.test")]));
        assert_eq!(r.allowing("x.a.test"), Some(RuleId(3)));
        assert_eq!(r.allowing("www.c.test"), Some(RuleId(5)));
        assert_eq!(r.allowing("b.test."), Some(RuleId(3)));
        assert_eq!(r.allowing("c.test"), None);
        assert_eq!(r.rules(), [RuleId(3), RuleId(5)]);
        r.push(RuleId(7), NameMatcher::all());
        assert_eq!(r.allowing("c.test"), Some(RuleId(7)));
    }
}
