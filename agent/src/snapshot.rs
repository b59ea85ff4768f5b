//! What reads see: an immutable view of the agent taken after every write, published by the
//! writer (`writer.rs`) and read without waiting for the write in progress. A reply built from
//! a snapshot is the state of the last completed write: never a change half applied.

use super::error::AgentError;
use super::model::*;
use super::state::Agent;
use super::world::World;
use super::EndpointRef;
use ir::RuleId;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};

/// The agent as of its last completed write.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub healthz: Healthz,
    pub config: serde_json::Value,
    /// Every endpoint's status, by id.
    pub endpoints: BTreeMap<u16, EndpointStatus>,
    pub identities: Arc<Vec<IdentityReply>>,
    pub revisions: Arc<Vec<RevisionInfo>>,
    /// The policy repository (`None`: no source applied). Shared with the previous snapshot
    /// when the write left the policy alone.
    pub policy: Option<Arc<PolicyView>>,
}

/// The policy repository of a snapshot. Its rules are rendered on the first read (rendering
/// thousands of rules on every write would slow every write down), from the world's policy set
/// by rule id: the set only grows between rebuilds, so the ids still name the committed rules
/// while the writer works on the next change.
#[derive(Debug)]
pub struct PolicyView {
    sources: Vec<SourceDoc>,
    deleted: BTreeMap<String, Vec<Vec<String>>>,
    live: Vec<RuleId>,
    epoch: u64,
    rules: OnceLock<String>,
}

impl PolicyView {
    pub(crate) fn new(
        sources: Vec<SourceDoc>,
        deleted: BTreeMap<String, Vec<Vec<String>>>,
        live: Vec<RuleId>,
        epoch: u64,
    ) -> Self {
        PolicyView {
            sources,
            deleted,
            live,
            epoch,
            rules: OnceLock::new(),
        }
    }

    /// The reply at `revision`, rendering the rules from `world` the first time. Should the
    /// world have been rebuilt since (a compaction, rule ids renumbered), the rules in force
    /// now are rendered instead, uncached.
    pub(crate) fn reply(&self, revision: u64, world: &RwLock<World>) -> PolicyReply {
        let rules = match self.rules.get() {
            Some(r) => r.clone(),
            None => {
                let w = world.read().unwrap_or_else(|e| e.into_inner());
                if w.epoch == self.epoch {
                    let text = ir::text::render(&w.policy_of(&self.live));
                    self.rules.get_or_init(|| text).clone()
                } else {
                    ir::text::render(&w.live_policy())
                }
            }
        };
        PolicyReply {
            revision,
            sources: self.sources.clone(),
            rules,
            deleted_labels: self.deleted.clone(),
        }
    }
}

impl Snapshot {
    /// Endpoints carrying every label of `filter` (`k=v,k2=v2`; a label matches with or without
    /// its source prefix); all of them without a filter.
    pub fn endpoints(&self, filter: Option<&str>) -> Result<Vec<EndpointStatus>, AgentError> {
        let all = self.endpoints.values().cloned();
        let Some(filter) = filter else {
            return Ok(all.collect());
        };
        let want: Vec<&str> = filter.split(',').filter(|s| !s.is_empty()).collect();
        let hits: Vec<_> = all
            .filter(|e| {
                want.iter().all(|w| {
                    e.labels
                        .iter()
                        .any(|l| l == w || l.split_once(':').map(|x| x.1) == Some(w))
                })
            })
            .collect();
        if hits.is_empty() {
            return Err(AgentError::NotFound(format!(
                "no endpoint has labels {filter}"
            )));
        }
        Ok(hits)
    }

    pub fn endpoint(&self, r: &EndpointRef) -> Result<EndpointStatus, AgentError> {
        let found = match r {
            EndpointRef::Id(id) => self.endpoints.get(id),
            EndpointRef::Pod(p) => self
                .endpoints
                .values()
                .find(|e| e.pod.as_deref() == Some(p)),
            EndpointRef::Container(c) => self
                .endpoints
                .values()
                .find(|e| e.container_id.as_deref() == Some(c)),
        };
        found.cloned().ok_or_else(|| {
            AgentError::NotFound(match r {
                EndpointRef::Id(id) => format!("endpoint {id} not found"),
                EndpointRef::Pod(p) => format!("no endpoint for pod {p}"),
                EndpointRef::Container(c) => format!("no endpoint for container {c}"),
            })
        })
    }

    pub fn identity(&self, id: u32) -> Result<IdentityReply, AgentError> {
        self.identities
            .iter()
            .find(|i| i.id == id)
            .cloned()
            .ok_or_else(|| AgentError::NotFound(format!("identity {id} not found")))
    }

    /// `GET /v1/policy`, with the rules of `world` (the agent's, see [`PolicyView`]).
    pub fn policy(&self, world: &RwLock<World>) -> Result<PolicyReply, AgentError> {
        let view = self
            .policy
            .as_deref()
            .ok_or_else(|| AgentError::NotFound("no policy rules found".into()))?;
        Ok(view.reply(self.healthz.policy_revision, world))
    }
}

impl Agent {
    /// The view reads get until the next write. `previous` lends its policy reply when this
    /// write did not change the policy (rendering every rule is the costly part).
    pub fn snapshot(&mut self, previous: Option<&Snapshot>) -> Snapshot {
        let policy = match previous {
            Some(p) if !std::mem::take(&mut self.policy_changed) => p.policy.clone(),
            _ => {
                self.policy_changed = false;
                self.policy_view().map(Arc::new)
            }
        };
        Snapshot {
            healthz: self.healthz(),
            config: self.config_json(),
            endpoints: self
                .persisted
                .endpoints
                .keys()
                .filter_map(|id| Some((*id, self.status(*id)?)))
                .collect(),
            identities: Arc::new(self.identities()),
            revisions: Arc::new(self.persisted.revisions.clone()),
            policy,
        }
    }
}
