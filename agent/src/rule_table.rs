//! What reads need of the world's rules (`GET /v1/policy`'s text, `policy/resolve`'s rule
//! locations, the monitor's and the metrics' policy references), held by the snapshots so that
//! no read locks the world. The policy set only grows within one world (rule ids are stable
//! until it is rebuilt), so the table is extended by the rules a write added and shares the
//! rest with the previous snapshot, in chunks: a write copies nothing but its new rules'
//! entries (and, now and then, merges chunks).

use super::world::World;
use compiler::flow::PolicyRef;
use ir::{PolicySet, RuleId};
use std::sync::Arc;

/// One rule as reads see it.
#[derive(Clone, Debug)]
pub struct RuleInfo {
    /// Its IR text (`ir::text`) after the leading `rule rN `, which names the rule by its
    /// position in the set rendered ([`RuleInfo::text_at`]).
    body: String,
    /// The policy it belongs to, at revision 0 (readers set the revision they answer for).
    pub policy: PolicyRef,
    /// `file:line:column`.
    pub location: String,
}

impl RuleInfo {
    fn of(set: &PolicySet, id: RuleId) -> RuleInfo {
        let text = ir::text::render_rule(set, id);
        let lead = format!("rule r{} ", id.0);
        RuleInfo {
            body: text
                .strip_prefix(&lead)
                .map_or(text.clone(), str::to_string),
            policy: PolicyRef::of_rule(set, id, 0),
            location: set.location(id),
        }
    }

    /// Its text as the `position`th rule of a rendered set (`GET /v1/policy` renders the rules
    /// in force as a set of their own).
    pub fn text_at(&self, position: usize) -> String {
        format!("rule r{position} {}", self.body)
    }

    /// Its policy reference at `revision`.
    pub fn policy_at(&self, revision: u64) -> PolicyRef {
        PolicyRef {
            revision,
            ..self.policy.clone()
        }
    }
}

/// Every rule of one world's policy set by id.
#[derive(Clone, Debug, Default)]
pub struct RuleTable {
    /// The world it describes ([`World::instance`]).
    instance: u64,
    /// Runs of consecutive ids: the first id of each, and its rules.
    chunks: Vec<(u32, Arc<[RuleInfo]>)>,
    len: u32,
}

impl RuleTable {
    pub fn get(&self, id: RuleId) -> Option<&RuleInfo> {
        let i = self
            .chunks
            .partition_point(|(start, _)| *start <= id.0)
            .checked_sub(1)?;
        let (start, rules) = &self.chunks[i];
        rules.get((id.0 - start) as usize)
    }

    /// The rule's `file:line:column` (empty for an id the table does not hold).
    pub fn location(&self, id: RuleId) -> String {
        self.get(id).map(|r| r.location.clone()).unwrap_or_default()
    }

    /// The table of `world`: `previous` itself when the world added no rule, `previous` plus
    /// the added rules when it describes the same world, else built anew.
    pub fn of(previous: Option<&Arc<RuleTable>>, world: &World) -> Arc<RuleTable> {
        let set = &world.engine.policy;
        let n = set.rules.len() as u32;
        let mut table = match previous {
            Some(p) if p.instance == world.instance && p.len == n => return p.clone(),
            Some(p) if p.instance == world.instance && p.len < n => RuleTable::clone(p),
            _ => RuleTable {
                instance: world.instance,
                ..RuleTable::default()
            },
        };
        let added: Arc<[RuleInfo]> = (table.len..n)
            .map(|i| RuleInfo::of(set, RuleId(i)))
            .collect();
        if !added.is_empty() {
            table.chunks.push((table.len, added));
        }
        table.len = n;
        // Like a binary counter: a chunk no shorter than the one before it is merged into it, so
        // there are O(log n) chunks and a rule is copied O(log n) times over the world's life.
        while let [.., (_, a), (_, b)] = table.chunks.as_slice() {
            if b.len() < a.len() {
                break;
            }
            let (_, b) = table.chunks.pop().expect("two chunks");
            let (start, a) = table.chunks.pop().expect("two chunks");
            let merged: Arc<[RuleInfo]> = a.iter().chain(b.iter()).cloned().collect();
            table.chunks.push((start, merged));
        }
        Arc::new(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::{agent, put};

    #[test]
    fn the_table_grows_with_the_policy_set_and_shares_what_it_had() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = agent(dir.path());
        let rule = |app: &str| {
            format!(
                r#"[{{"endpointSelector": {{"matchLabels": {{"app": "{app}"}}}},
                "ingress": [{{"fromEndpoints": [{{"matchLabels": {{"app": "x"}}}}]}}]}}]"#
            )
        };
        let mut table = RuleTable::of(None, &a.world());
        for i in 0..9 {
            put(&mut a, &format!("{i}.json"), &rule(&format!("a{i}"))).unwrap();
            let next = RuleTable::of(Some(&table), &a.world());
            let w = a.world();
            let set = &w.engine.policy;
            assert_eq!(next.len as usize, set.rules.len());
            for id in 0..set.rules.len() as u32 {
                let info = next.get(RuleId(id)).expect("every rule");
                assert_eq!(
                    info.text_at(id as usize),
                    ir::text::render_rule(set, RuleId(id))
                );
                assert_eq!(info.location, set.location(RuleId(id)));
            }
            assert!(next.get(RuleId(set.rules.len() as u32)).is_none());
            // Shared: the same world adding nothing gives the same table.
            assert!(Arc::ptr_eq(&next, &RuleTable::of(Some(&next), &w)));
            assert!(next.chunks.len() <= 1 + (set.rules.len() as f64).log2().ceil() as usize);
            table = next;
        }
        // Another world (rebuilt): a table of its own.
        let other = World::default();
        let fresh = RuleTable::of(Some(&table), &other);
        assert_eq!(fresh.len, 0);
        assert!(fresh.get(RuleId(0)).is_none());
    }
}
