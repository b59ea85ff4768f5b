//! What reads see: an immutable view of the agent taken after every write, published by the
//! writer (`writer.rs`) and read without waiting for the write in progress. A reply built from
//! a snapshot is the state of the last completed write: never a change half applied.

use super::error::AgentError;
use super::model::*;
use super::state::Agent;
use super::EndpointRef;
use std::collections::BTreeMap;
use std::sync::Arc;

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
    pub policy: Option<Arc<PolicyReply>>,
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

    pub fn policy(&self) -> Result<PolicyReply, AgentError> {
        self.policy
            .as_deref()
            .cloned()
            .ok_or_else(|| AgentError::NotFound("no policy rules found".into()))
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
                self.policy_reply().map(Arc::new)
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
