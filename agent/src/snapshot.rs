//! What reads see: an immutable view of the agent taken after every write, published by the
//! writer (`writer.rs`) and read without waiting for the write in progress. A reply built from
//! a snapshot is the state of the last completed write: never a change half applied. Every
//! read path (`healthz`, `config`, `endpoint`, `identity`, `policy`, `policy/resolve` between
//! local endpoints and addresses, the monitor's flows, `/metrics`) takes what it needs from
//! here, never from the world the writer changes. Built incrementally (`snapshot_build.rs`):
//! what a write did not change is shared with the previous snapshot.

use super::error::AgentError;
use super::model::*;
use super::rule_table::RuleTable;
use super::EndpointRef;
use ir::{EndpointPolicy, IpCache, NumericIdentity, RuleId};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

/// The agent as of its last completed write.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub healthz: Healthz,
    pub config: serde_json::Value,
    /// Every endpoint, by id; shared with the previous snapshot when the write touched none,
    /// and each endpoint's view shared while no write touches it.
    pub(crate) endpoints: Arc<BTreeMap<u16, Arc<EndpointView>>>,
    /// Which revision the endpoints enforce (the part of their status every write changes).
    pub(crate) enforcing: Enforcing,
    pub identities: Arc<Vec<IdentityReply>>,
    pub revisions: Arc<Vec<RevisionInfo>>,
    /// The policy repository (`None`: no source applied). Shared with the previous snapshot
    /// when the write left the policy alone.
    pub policy: Option<Arc<PolicyView>>,
    /// The world's rules by id.
    pub(crate) rules: Arc<RuleTable>,
    /// For each local endpoint's identity, the rules putting it into default deny (ingress,
    /// egress): what a default-deny drop is attributed to.
    pub(crate) isolating: Arc<HashMap<u32, [Vec<RuleId>; 2]>>,
    /// The ipcache (identity of an address) and whether the cluster is dual-stack.
    pub(crate) ipcache: Arc<(IpCache, bool)>,
    /// Learned `toFQDNs` addresses, and whether any rule selects by name.
    pub(crate) fqdn_learned: usize,
    pub(crate) fqdn_rules: bool,
    /// The world the snapshot was taken from ([`crate::world::World::instance`]).
    pub(crate) world: u64,
}

/// Which revision the endpoints enforce.
#[derive(Clone, Debug, Default)]
pub(crate) struct Enforcing {
    /// The revision every endpoint enforces but the lagging ones.
    pub synced: u64,
    /// The last accepted revision.
    pub revision: u64,
    /// With a datapath an endpoint is ready once it enforces the last revision.
    pub datapath: bool,
    /// Endpoints whose last sync failed: the revision they still enforce, and why.
    pub lagging: BTreeMap<u16, (u64, String)>,
}

/// One local endpoint as reads see it.
#[derive(Debug)]
pub struct EndpointView {
    /// Its status but for `policy_revision`, `state` and `error` ([`Enforcing`]).
    pub(crate) status: EndpointStatus,
    /// Its name in the cluster.
    pub(crate) name: String,
    /// Its first address (as `policy/resolve` names it).
    pub(crate) addr: Option<IpAddr>,
    /// Its map state (shared with the world).
    pub(crate) policy: Option<Arc<EndpointPolicy>>,
}

impl Enforcing {
    /// `view`'s whole status.
    pub(crate) fn status(&self, view: &EndpointView) -> EndpointStatus {
        let mut st = view.status.clone();
        let (rev, err) = match self.lagging.get(&st.id) {
            Some((rev, err)) => (*rev, Some(err.clone())),
            None => (self.synced, None),
        };
        let ready = err.is_none() && (!self.datapath || rev == self.revision);
        st.policy_revision = rev;
        st.state = if ready { "ready" } else { "not-ready" }.into();
        st.error = err;
        st
    }
}

/// The policy repository of a snapshot. Its rules' text is joined on the first read, from the
/// snapshot's rule table.
#[derive(Debug)]
pub struct PolicyView {
    sources: Vec<SourceDoc>,
    deleted: BTreeMap<String, Vec<Vec<String>>>,
    live: Vec<RuleId>,
    table: Arc<RuleTable>,
    rules: OnceLock<String>,
}

impl PolicyView {
    pub(crate) fn new(
        sources: Vec<SourceDoc>,
        deleted: BTreeMap<String, Vec<Vec<String>>>,
        live: Vec<RuleId>,
        table: Arc<RuleTable>,
    ) -> Self {
        PolicyView {
            sources,
            deleted,
            live,
            table,
            rules: OnceLock::new(),
        }
    }

    /// The reply at `revision` (the rules' text joined the first time).
    pub(crate) fn reply(&self, revision: u64) -> PolicyReply {
        let rules = self.rules.get_or_init(|| {
            let rules = self.live.iter().filter_map(|id| self.table.get(*id));
            rules.enumerate().map(|(i, r)| r.text_at(i)).collect()
        });
        PolicyReply {
            revision,
            sources: self.sources.clone(),
            rules: rules.clone(),
            deleted_labels: self.deleted.clone(),
        }
    }
}

impl Snapshot {
    /// Endpoints carrying every label of `filter` (`k=v,k2=v2`; a label matches with or without
    /// its source prefix); all of them without a filter.
    pub fn endpoints(&self, filter: Option<&str>) -> Result<Vec<EndpointStatus>, AgentError> {
        let all = self.views().map(|v| self.enforcing.status(v));
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
            EndpointRef::Id(id) => self.endpoints.get(id).map(|v| &**v),
            EndpointRef::Pod(p) => self.views().find(|v| v.status.pod.as_deref() == Some(p)),
            EndpointRef::Container(c) => self
                .views()
                .find(|v| v.status.container_id.as_deref() == Some(c)),
        };
        found.map(|v| self.enforcing.status(v)).ok_or_else(|| {
            AgentError::NotFound(match r {
                EndpointRef::Id(id) => format!("endpoint {id} not found"),
                EndpointRef::Pod(p) => format!("no endpoint for pod {p}"),
                EndpointRef::Container(c) => format!("no endpoint for container {c}"),
            })
        })
    }

    /// Every local endpoint's view, by id.
    pub(crate) fn views(&self) -> impl Iterator<Item = &EndpointView> {
        self.endpoints.values().map(|v| &**v)
    }

    pub fn identity(&self, id: u32) -> Result<IdentityReply, AgentError> {
        self.identities
            .iter()
            .find(|i| i.id == id)
            .cloned()
            .ok_or_else(|| AgentError::NotFound(format!("identity {id} not found")))
    }

    /// `GET /v1/policy`.
    pub fn policy(&self) -> Result<PolicyReply, AgentError> {
        let view = self
            .policy
            .as_deref()
            .ok_or_else(|| AgentError::NotFound("no policy rules found".into()))?;
        Ok(view.reply(self.healthz.policy_revision))
    }

    /// The identity of `addr` as the ipcache of this snapshot gives it.
    pub(crate) fn identity_of_addr(&self, addr: IpAddr) -> NumericIdentity {
        let (ipcache, dual_stack) = &*self.ipcache;
        compiler::cluster::addr_identity(ipcache, *dual_stack, addr)
    }

    /// The rules putting endpoints of `identity` into default deny in direction `ingress` or
    /// not.
    pub(crate) fn isolating(&self, identity: u32, ingress: bool) -> &[RuleId] {
        self.isolating
            .get(&identity)
            .map_or(&[][..], |r| &r[usize::from(!ingress)])
    }
}
