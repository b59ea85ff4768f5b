//! The agent's state and its operations: the policy repository (sources with revisions),
//! endpoints, and the derived world (identities, per-endpoint map state) kept in step with the
//! datapath. Every change is applied to the world incrementally and brought to the datapath for
//! the endpoints it touched only; a change that fails validation or cannot be enforced is
//! undone (its inverse applied) and leaves state and datapath as they were.

use super::change::Change;
use super::config::AgentConfig;
use super::datapath::{Datapath, Scope};
use super::error::AgentError;
use super::fqdn::persist::FqdnFile;
use super::model::*;
use super::proxy::{L7Shared, L7};
use super::store::{Edit, Persisted, Store};
use super::world::World;
use super::EndpointRef;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub struct Agent {
    pub cfg: AgentConfig,
    store: Store,
    pub(super) persisted: Persisted,
    /// Written only by the agent's writer (in memory, never across a datapath sync or the
    /// journal); `GET /v1/policy/resolve` reads it.
    world: Arc<RwLock<World>>,
    /// The policy repository changed since the last [`Agent::snapshot`].
    pub(crate) policy_changed: bool,
    pub(crate) datapath: Option<Datapath>,
    /// The revision every endpoint enforces, except those in `lagging`.
    synced: u64,
    /// Endpoints whose last sync failed: the revision they still enforce, and the error.
    lagging: BTreeMap<u16, (u64, String)>,
    /// Endpoints touched by changes accepted without waiting and not enforced yet.
    pending: BTreeSet<u16>,
    /// The L7 proxy's table, rebuilt for changes that concern L7 (`proxy/table.rs`).
    l7: L7,
    /// What the next snapshot compares with (`snapshot_build.rs`).
    snapshot_cache: build::SnapshotCache,
    set_debug: Box<dyn Fn(bool) + Send>,
    /// The learned `toFQDNs` addresses on disk (`fqdn/persist.rs`).
    pub(crate) fqdn_file: FqdnFile,
    /// When the periodic datapath check's next turn runs, and the endpoint id it starts from
    /// (`guard.rs`).
    next_check: Option<std::time::Instant>,
    check_cursor: u16,
}

impl Agent {
    /// Loads the persisted state, builds the world and brings the datapath (pinned state
    /// left by a previous agent, if any) in line with it.
    pub fn start(
        cfg: AgentConfig,
        set_debug: Box<dyn Fn(bool) + Send>,
    ) -> Result<Agent, AgentError> {
        if cfg.datapath {
            super::privileges::check_datapath().map_err(AgentError::Datapath)?;
        }
        let mut store = Store::new(&cfg.state_dir)?;
        let persisted = store.load()?;
        let mut world = World::build(&persisted, &cfg).map_err(|e| persisted_invalid(&cfg, e))?;
        let fqdn_file = FqdnFile::new(&cfg.state_dir);
        world.restore_fqdn(&fqdn_file, &cfg.fqdn)?;
        Agent::restore_remote(&cfg, &mut world);
        super::kvstore::retain_in_use(&cfg, &world.engine.cluster);
        let datapath = if cfg.datapath {
            let mut dp = Datapath::open(&cfg)?;
            // Before any endpoint redirects: with no proxy listening yet, redirected flows
            // are dropped (reason 178), never passed unfiltered.
            super::proxy::install_node_redirect(&mut dp)?;
            Some(dp)
        } else {
            None
        };
        let next_check = cfg
            .datapath_check_interval
            .filter(|_| datapath.is_some())
            .map(|i| std::time::Instant::now() + i);
        let mut agent = Agent {
            cfg,
            store,
            synced: persisted.revision,
            persisted,
            world: Arc::new(RwLock::new(world)),
            policy_changed: true,
            datapath,
            lagging: BTreeMap::new(),
            pending: BTreeSet::new(),
            l7: L7::new(l7proxy::Limits::default()),
            snapshot_cache: Default::default(),
            set_debug,
            fqdn_file,
            next_check,
            check_cursor: 0,
        };
        // Adopts what a previous agent pinned and writes only what differs.
        agent.sync_datapath(Scope::All, agent.persisted.revision)?;
        agent.refresh_l7();
        agent.publish_local();
        tracing::info!(
            revision = agent.persisted.revision,
            endpoints = agent.persisted.endpoints.len(),
            "agent state restored"
        );
        Ok(agent)
    }

    /// What the L7 proxy reads: its table, the committed addresses, its events.
    pub fn l7_shared(&self) -> L7Shared {
        self.l7.shared()
    }

    /// Builds and installs the L7 table of the whole world (at start and after a rebuild). A
    /// build refused here (a persisted rule an earlier agent accepted) leaves the table in use,
    /// empty at start: the proxy then answers 403 to every request (fail closed).
    fn refresh_l7(&mut self) {
        let prepared = self.l7.prepare(&self.world(), None);
        match prepared {
            Ok(Some(p)) => self.l7.commit(p),
            Ok(None) => {}
            Err(e) => tracing::error!(
                error = %e,
                diagnostics = ?e.diagnostics(),
                "the L7 proxy cannot enforce the persisted policy; its requests are denied"
            ),
        }
    }

    /// Turns the endpoints' datapath events on (a `monitor` client listens) or off.
    pub fn set_listening(&mut self, on: bool) {
        if let Some(dp) = self.datapath.as_mut() {
            if let Err(e) = super::events::set_listening(dp, on) {
                tracing::warn!(error = %e, on, "switching datapath events");
            }
        }
    }

    /// The node's pin layout (`None` without a datapath).
    pub fn node_layout(&self) -> Option<runtime_loader::layout::NodeLayout> {
        self.datapath.as_ref().map(|d| d.layout().clone())
    }

    /// What the pool of programs verified ahead did, with a datapath.
    pub fn program_pool_stats(&self) -> Option<std::sync::Arc<super::program_pool::PoolStats>> {
        self.datapath.as_ref().map(|d| d.program_pool_stats())
    }

    /// Pin path of the node's event ring buffer (for the monitor reader).
    pub fn events_pin(&self) -> Option<std::path::PathBuf> {
        self.datapath
            .as_ref()
            .and_then(|d| d.layout().shared_map(codegen::maps::EVENTS.name).ok())
    }

    /// The world, for reading. A poisoned lock (a panic while it was written) is taken as it is:
    /// the writer rebuilds the world when undoing a change fails.
    pub(crate) fn world(&self) -> RwLockReadGuard<'_, World> {
        self.world.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn world_mut(&self) -> RwLockWriteGuard<'_, World> {
        self.world.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The world shared with `GET /v1/policy/resolve`.
    pub fn shared_world(&self) -> Arc<RwLock<World>> {
        self.world.clone()
    }

    pub(crate) fn healthz_of(&self, world: &World) -> Healthz {
        Healthz {
            status: "ok".into(),
            policy_revision: self.persisted.revision,
            endpoints: self.persisted.endpoints.len(),
            identities: world.engine.cluster.identities().len(),
            datapath: self
                .datapath
                .as_ref()
                .map_or("disabled".into(), |d| d.mode_name().into()),
        }
    }

    pub(crate) fn config_json(&self) -> serde_json::Value {
        serde_json::json!({
            "state-dir": self.cfg.state_dir,
            "api-socket": self.cfg.api_socket,
            "policy-dir": self.cfg.policy_dir,
            "bpf-root": self.cfg.bpf_root,
            "node": self.cfg.node,
            "debug": self.cfg.debug,
            "bpf-ct-global-tcp-max": self.cfg.ct_tcp_max,
            "bpf-ct-global-any-max": self.cfg.ct_any_max,
            "flow-cache-slots": self.cfg.flow_cache_slots,
            "deny-cache": self.datapath.as_ref().is_some_and(|d| d.deny_cache()),
            "datapath": self.datapath.as_ref().map_or("disabled", |d| d.mode_name()),
            "attach-mode": self.cfg.attach_mode.name(),
            "spare-programs": self.cfg.spare_programs,
        })
    }

    /// `PATCH /v1/config`: only `debug` is mutable; all or nothing.
    pub fn patch_config(
        &mut self,
        body: &BTreeMap<String, serde_json::Value>,
    ) -> Result<(), AgentError> {
        // Every field is checked before any is applied: a refused request changes nothing.
        let mut debug = None;
        for (k, v) in body {
            match (k.as_str(), v) {
                ("debug", serde_json::Value::Bool(b)) => debug = Some(*b),
                _ => {
                    return Err(AgentError::invalid(format!(
                        "configuration {k}={v} cannot be changed; nothing was changed"
                    )))
                }
            }
        }
        if let Some(b) = debug {
            self.cfg.debug = b;
            (self.set_debug)(b);
        }
        Ok(())
    }

    pub(crate) fn resolve_ref(&self, r: &EndpointRef) -> Result<u16, AgentError> {
        match r {
            EndpointRef::Id(id) if self.persisted.endpoints.contains_key(id) => Ok(*id),
            EndpointRef::Id(id) => Err(AgentError::NotFound(format!("endpoint {id} not found"))),
            EndpointRef::Pod(p) => self
                .persisted
                .endpoints
                .values()
                .find(|e| e.pod.as_deref() == Some(p))
                .map(|e| e.id)
                .ok_or_else(|| AgentError::NotFound(format!("no endpoint for pod {p}"))),
            EndpointRef::Container(c) => self
                .container_endpoint(c)
                .ok_or_else(|| AgentError::NotFound(format!("no endpoint for container {c}"))),
        }
    }

    pub fn put_endpoint(&mut self, spec: EndpointSpec) -> Result<RevisionReply, AgentError> {
        if spec.id == 0 {
            return Err(AgentError::invalid("endpoint id 0 is reserved"));
        }
        if self.persisted.endpoints.contains_key(&spec.id) {
            return Err(AgentError::Conflict(format!(
                "endpoint {} already exists",
                spec.id
            )));
        }
        self.check_iface(spec.id, &spec.iface)?;
        self.commit_endpoint(spec.id, Some(spec))
    }

    pub fn patch_endpoint(
        &mut self,
        r: &EndpointRef,
        patch: EndpointPatch,
    ) -> Result<RevisionReply, AgentError> {
        let id = self.resolve_ref(r)?;
        if patch.id.is_some_and(|p| p != id) {
            return Err(AgentError::invalid(format!(
                "the id of endpoint {id} cannot change (delete it and create another)"
            )));
        }
        if let Some(i) = &patch.iface {
            self.check_iface(id, i)?;
        }
        self.edit_endpoint(r, |ep| {
            if let Some(why) = unchangeable(ep, &patch) {
                return Err(AgentError::invalid(why));
            }
            if let Some(i) = patch.iface {
                ep.iface = i;
            }
            if let Some(l) = patch.labels {
                ep.labels = l;
            }
            if patch.ipv4.is_some() {
                ep.ipv4 = patch.ipv4;
            }
            if patch.ipv6.is_some() {
                ep.ipv6 = patch.ipv6;
            }
            Ok(())
        })
    }

    /// `PUT /v1/endpoint/{id}/labels`: all deletions must name existing labels (460 otherwise).
    pub fn modify_labels(
        &mut self,
        r: &EndpointRef,
        patch: LabelsPatch,
    ) -> Result<RevisionReply, AgentError> {
        self.edit_endpoint(r, |ep| {
            if ep.pod.is_some() {
                return Err(AgentError::invalid(
                    "labels of a pod endpoint come from its Pod; re-apply the Pod",
                ));
            }
            for d in &patch.delete {
                let pos = ep
                    .labels
                    .iter()
                    .position(|l| l == d)
                    .ok_or_else(|| AgentError::LabelNotFound(d.clone()))?;
                ep.labels.remove(pos);
            }
            for a in patch.add {
                if !ep.labels.contains(&a) {
                    ep.labels.push(a);
                }
            }
            Ok(())
        })
    }

    /// Applies `f` to a copy of the endpoint's spec and commits the result.
    fn edit_endpoint(
        &mut self,
        r: &EndpointRef,
        f: impl FnOnce(&mut EndpointSpec) -> Result<(), AgentError>,
    ) -> Result<RevisionReply, AgentError> {
        let id = self.resolve_ref(r)?;
        let mut spec = self.persisted_endpoint(id)?;
        f(&mut spec)?;
        self.commit_endpoint(id, Some(spec))
    }

    fn persisted_endpoint(&self, id: u16) -> Result<EndpointSpec, AgentError> {
        self.persisted
            .endpoints
            .get(&id)
            .cloned()
            .ok_or_else(|| AgentError::NotFound(format!("endpoint {id} not found")))
    }

    /// Commits one endpoint's new spec (`None`: removed), waiting for the datapath.
    fn commit_endpoint(
        &mut self,
        id: u16,
        to: Option<EndpointSpec>,
    ) -> Result<RevisionReply, AgentError> {
        let mut edit = Edit::default();
        edit.endpoints.insert(id, to.clone());
        let change = Change::Endpoint { id, to };
        self.commit(
            edit,
            vec![change],
            "endpoint",
            vec![format!("endpoint/{id}")],
            true,
        )
    }

    /// Deletes the endpoint; `false` in the reply's second field when datapath cleanup failed.
    pub fn delete_endpoint(
        &mut self,
        r: &EndpointRef,
    ) -> Result<(RevisionReply, bool), AgentError> {
        let id = self.resolve_ref(r)?;
        let spec = self.persisted_endpoint(id)?;
        let reply = self.commit_endpoint(id, None)?;
        // The datapath detached and unpinned it during the sync; an error there is reported.
        let clean = self.lagging.remove(&id).is_none();
        if !clean {
            tracing::error!(id, iface = %spec.iface, "endpoint deleted with datapath cleanup errors");
        }
        Ok((reply, clean))
    }

    /// The interface name is valid, (with a datapath) exists in the agent's namespace, and
    /// belongs to no endpoint other than `id` (409): two endpoints' programs on one interface
    /// would leave one of them unenforced.
    fn check_iface(&self, id: u16, iface: &str) -> Result<(), AgentError> {
        runtime_loader::layout::validate_name("interface name", iface, 15)
            .map_err(|e| AgentError::invalid(e.to_string()))?;
        if self.datapath.is_some() && !runtime_loader::attach::interface_exists(iface) {
            return Err(AgentError::invalid(format!(
                "interface {iface} does not exist on this node"
            )));
        }
        if let Some(other) = self
            .persisted
            .endpoints
            .values()
            .find(|e| e.iface == iface && e.id != id)
        {
            return Err(AgentError::Conflict(format!(
                "interface {iface} already belongs to endpoint {}",
                other.id
            )));
        }
        Ok(())
    }

    /// The policy repository as `GET /v1/policy` shows it now (without taking a snapshot, which
    /// would take what the writer's next one needs).
    #[cfg(test)]
    pub(crate) fn policy_reply(&self) -> Option<PolicyReply> {
        if self.persisted.sources.is_empty() {
            return None;
        }
        let world = self.world();
        let view = super::snapshot::PolicyView::new(
            self.persisted.source_docs(),
            self.persisted.deleted.clone(),
            world.live_rule_ids(),
            super::rule_table::RuleTable::of(None, &world),
        );
        Some(view.reply(self.persisted.revision))
    }

    pub fn put_policy(&mut self, req: PolicyPut) -> Result<RevisionReply, AgentError> {
        if req.sources.is_empty() {
            return Err(AgentError::invalid("no policy sources in the request"));
        }
        let mut edit = Edit::default();
        let mut paths = Vec::new();
        let mut changes = Vec::new();
        for s in req.sources {
            if s.path.is_empty() || s.path.contains('\0') {
                return Err(AgentError::InvalidPath(s.path));
            }
            paths.push(s.path.clone());
            let current = match edit.sources.get(&s.path) {
                Some(pending) => pending.as_ref(),
                None => self.persisted.sources.get(&s.path),
            };
            let unchanged =
                current == Some(&s.text) && !self.persisted.deleted.contains_key(&s.path);
            // Re-applying the same text changes nothing (a new revision is still recorded).
            if unchanged {
                continue;
            }
            // Parsed before the world is locked: a large source does not hold up reads.
            let parsed = super::world::parse_source(&s.path, &s.text, &[])?;
            let to = self.world_mut().prepare_source(&s.path, parsed);
            changes.push(Change::Source {
                path: s.path.clone(),
                to: Some(to),
            });
            if self.persisted.deleted.contains_key(&s.path) {
                edit.deleted.insert(s.path.clone(), None);
            }
            edit.sources.insert(s.path, Some(s.text));
        }
        self.commit(edit, changes, "put", paths, req.wait)
    }

    /// `DELETE /v1/policy`: everything, the sources at some paths, or exactly the rules that
    /// carry every one of some labels (seed §8), wherever they come from.
    pub fn delete_policy(&mut self, req: PolicyDelete) -> Result<RevisionReply, AgentError> {
        let mut edit = Edit::default();
        let mut changes = Vec::new();
        let removed: Vec<String> = if req.all {
            // Every policy rule goes (seed §2.3.8); Namespaces, Pods, CIDR groups, Services,
            // EndpointSlices and Nodes stay, as in Cilium, where they are not policy: a source
            // with inventory keeps it with all its rules deleted (an empty label list matches
            // every rule), one with only rules goes.
            let mut out = Vec::new();
            for (path, to) in self.world().without_labels(&[]) {
                if to.inventory.is_empty() {
                    edit.sources.insert(path.clone(), None);
                    if self.persisted.deleted.contains_key(&path) {
                        edit.deleted.insert(path.clone(), None);
                    }
                    changes.push(Change::Source {
                        path: path.clone(),
                        to: None,
                    });
                } else {
                    let mut deleted = self
                        .persisted
                        .deleted
                        .get(&path)
                        .cloned()
                        .unwrap_or_default();
                    deleted.push(Vec::new());
                    edit.deleted.insert(path.clone(), Some(deleted));
                    changes.push(Change::Source {
                        path: path.clone(),
                        to: Some(to),
                    });
                }
                out.push(path);
            }
            out
        } else if !req.paths.is_empty() {
            for p in &req.paths {
                if !self.persisted.sources.contains_key(p) {
                    return Err(AgentError::NotFound(format!(
                        "nothing was applied from {p}"
                    )));
                }
            }
            req.paths.clone()
        } else if !req.labels.is_empty() {
            let mut out = Vec::new();
            for (path, to) in self.world().without_labels(&req.labels) {
                let mut deleted = self
                    .persisted
                    .deleted
                    .get(&path)
                    .cloned()
                    .unwrap_or_default();
                deleted.push(req.labels.clone());
                edit.deleted.insert(path.clone(), Some(deleted));
                changes.push(Change::Source {
                    path: path.clone(),
                    to: Some(to),
                });
                out.push(path);
            }
            out
        } else {
            return Err(AgentError::invalid(
                "say what to delete: all, paths or labels",
            ));
        };
        if removed.is_empty() && !req.all {
            return Err(AgentError::NotFound("no policy matches".into()));
        }
        if !req.all && !req.paths.is_empty() {
            for p in &removed {
                edit.sources.insert(p.clone(), None);
                if self.persisted.deleted.contains_key(p) {
                    edit.deleted.insert(p.clone(), None);
                }
                changes.push(Change::Source {
                    path: p.clone(),
                    to: None,
                });
            }
        }
        self.commit(edit, changes, "delete", removed, req.wait)
    }

    /// Applies `changes` to the world, then (with `wait`) brings the datapath to it for the
    /// endpoints they touched before persisting `edit`: a change the datapath cannot take (a
    /// map that would overflow, a program the verifier rejects) is undone and nothing changes.
    /// Without `wait` the change is persisted and the reply sent first; [`Agent::sync_pending`]
    /// enforces it right after.
    fn commit(
        &mut self,
        mut edit: Edit,
        changes: Vec<Change>,
        action: &str,
        paths: Vec<String>,
        wait: bool,
    ) -> Result<RevisionReply, AgentError> {
        let world_span = tracing::debug_span!("world").entered();
        let rebuild = {
            let world = self.world();
            changes.iter().any(|c| world.changes_objects(c))
        };
        let (undo, touched) = if rebuild {
            self.swap_rebuilt(&edit)?
        } else {
            self.apply_changes(changes)?
        };
        drop(world_span);
        // The proxy's table for the new state, before anything is written: a rule it cannot
        // enforce refuses the change. A rebuilt world renumbered every rule: all endpoints.
        let l7 = {
            let _l7 = tracing::debug_span!("l7_prepare").entered();
            self.l7
                .prepare(&self.world(), (!rebuild).then_some(&touched))
        };
        let l7 = match l7 {
            Ok(p) => p,
            Err(e) => return Err(self.rollback(undo, e)),
        };
        let revision = self.persisted.revision + 1;
        if wait {
            let mut scope = touched.clone();
            scope.extend(self.pending.iter().copied());
            if let Err(e) = self.sync_datapath(Scope::Only(&scope), revision) {
                return Err(self.rollback(undo, e));
            }
            self.pending.clear();
            // A 200 means enforced: an endpoint the change touched that could not take it
            // refuses the change, and the others go back to the previous revision.
            if let Some(failed) = self.failed_among(&touched) {
                let err = self.rollback(undo, AgentError::Datapath(failed));
                let _ = self.sync_datapath(Scope::Only(&touched), self.persisted.revision);
                return Err(err);
            }
        } else if self.datapath.is_some() {
            self.pending.extend(touched.iter().copied());
        }
        if self.pending.is_empty() && (!wait || self.datapath.is_none()) {
            // Nothing left to write: every endpoint enforces this revision.
            self.synced = revision;
        }
        let inverse = self.persisted.apply(&mut edit, action, paths);
        let saved = {
            let _journal = tracing::debug_span!("journal").entered();
            self.store.save(&edit, &self.persisted)
        };
        if let Err(e) = saved {
            self.persisted.undo(&inverse);
            let err = self.rollback(undo, e.into());
            // The datapath may already enforce the change: bring it back.
            if wait {
                let _ = self.sync_datapath(Scope::Only(&touched), self.persisted.revision);
            }
            return Err(err);
        }
        if !(edit.sources.is_empty() && edit.deleted.is_empty()) {
            self.policy_changed = true;
        }
        super::kvstore::retain_in_use(&self.cfg, &self.world().engine.cluster);
        // The proxy applies the change with the datapath: now when it was enforced, else
        // when the writer enforces it (`sync_pending`).
        if let Some(p) = l7 {
            if wait || self.datapath.is_none() {
                self.l7.commit(p);
            } else {
                self.l7.stage(p);
            }
        }
        self.publish_local();
        let compact = self.world().needs_compaction();
        if compact {
            self.rebuild();
        }
        Ok(RevisionReply {
            revision,
            enforced: self.pending.is_empty(),
        })
    }

    /// The errors of the endpoints of `ids` whose last sync failed, if any.
    fn failed_among(&self, ids: &BTreeSet<u16>) -> Option<String> {
        let failed: Vec<String> = ids
            .iter()
            .filter_map(|id| {
                self.lagging
                    .get(id)
                    .map(|(_, e)| format!("endpoint {id}: {e}"))
            })
            .collect();
        (!failed.is_empty()).then(|| {
            format!(
                "{}; the change was refused and the previous policy stays enforced",
                failed.join("; ")
            )
        })
    }

    /// Rebuilds the whole world from the persisted state and brings every endpoint to it (after
    /// a failed undo, and to drop replaced rules from the policy set).
    fn rebuild(&mut self) {
        match World::build(&self.persisted, &self.cfg) {
            Ok(mut w) => {
                let mut world = self.world_mut();
                if let Err(e) = apply::carry_over(&world, &mut w) {
                    tracing::warn!(error = %e, "refreshing the rebuilt world");
                }
                *world = w;
                drop(world);
                self.policy_changed = true;
            }
            Err(e) => {
                tracing::error!(error = %e, "rebuilding the agent state failed");
                return;
            }
        }
        if let Err(e) = self.sync_datapath(Scope::All, self.persisted.revision) {
            tracing::error!(error = %e, "enforcing the rebuilt state failed");
        }
        self.refresh_l7();
    }

    /// Brings the datapath and the L7 proxy to world changes that make no new policy revision
    /// (other nodes' endpoints, learned `toFQDNs` addresses): the endpoints they touched and
    /// the pending ones. Should the datapath refuse them, `undo` is applied.
    pub(crate) fn enforce_unversioned(&mut self, undo: Vec<Change>) -> Result<(), AgentError> {
        let refreshed = self.world_mut().refresh();
        let mut scope = match refreshed {
            Ok(t) => t,
            Err(e) => return Err(self.rollback(undo, e)),
        };
        let l7 = self.l7.prepare(&self.world(), Some(&scope));
        let l7 = match l7 {
            Ok(p) => p,
            Err(e) => return Err(self.rollback(undo, e)),
        };
        scope.extend(self.pending.iter().copied());
        if let Err(e) = self.sync_datapath(Scope::Only(&scope), self.persisted.revision) {
            return Err(self.rollback(undo, e));
        }
        self.pending.clear();
        // Pending endpoints were enforced too: a table staged for them goes in use.
        match l7 {
            Some(p) => self.l7.commit(p),
            None => self.l7.commit_staged(),
        }
        Ok(())
    }

    /// Changes accepted without waiting are not enforced yet.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Enforces changes accepted with `wait: false` (run by the writer when no job is queued).
    pub fn sync_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let scope = std::mem::take(&mut self.pending);
        let synced = self.sync_datapath(Scope::Only(&scope), self.persisted.revision);
        // The proxy takes the latest accepted change either way, as the endpoints that did
        // take it do.
        self.l7.commit_staged();
        if let Err(e) = synced {
            tracing::error!(error = %e, "enforcing the latest revision failed; endpoints keep their previous policy");
            let live: Vec<u16> = {
                let world = self.world();
                scope
                    .iter()
                    .copied()
                    .filter(|id| world.endpoints.contains_key(id))
                    .collect()
            };
            for id in &live {
                let rev = self.lagging.get(id).map_or(self.synced, |l| l.0);
                self.lagging.insert(*id, (rev, e.to_string()));
            }
            self.synced = self.persisted.revision;
        }
    }

    /// Syncs `scope` (plus the endpoints whose last sync failed) to the datapath and records
    /// which revision each endpoint enforces.
    fn sync_datapath(&mut self, scope: Scope, revision: u64) -> Result<(), AgentError> {
        let _datapath = tracing::debug_span!("datapath").entered();
        let Some(dp) = self.datapath.as_mut() else {
            self.synced = revision;
            return Ok(());
        };
        let results = match scope {
            Scope::All => dp.sync(
                &self.world.read().unwrap_or_else(|e| e.into_inner()),
                Scope::All,
                revision,
            )?,
            Scope::Only(ids) => {
                let mut ids = ids.clone();
                ids.extend(self.lagging.keys().copied());
                dp.sync(
                    &self.world.read().unwrap_or_else(|e| e.into_inner()),
                    Scope::Only(&ids),
                    revision,
                )?
            }
        };
        let before = self.synced;
        for (id, res) in results {
            match res {
                Ok(()) => {
                    self.lagging.remove(&id);
                }
                Err(e) => {
                    let rev = self.lagging.get(&id).map_or(before, |l| l.0);
                    self.lagging.insert(id, (rev, e));
                }
            }
        }
        self.synced = revision;
        Ok(())
    }
}

#[path = "guard.rs"]
mod guard;

#[cfg(test)]
#[path = "state_tests.rs"]
pub(crate) mod tests;

#[cfg(test)]
#[path = "state_objects_tests.rs"]
mod objects_tests;

#[cfg(test)]
#[path = "state_refusal_tests.rs"]
mod refusal_tests;

#[path = "state_remote.rs"]
mod remote;

#[path = "state_apply.rs"]
mod apply;

#[path = "snapshot_build.rs"]
mod build;

/// A persisted state the world cannot be built from (say, two sources defining one Service,
/// stored by an agent that did not take Services into its cluster): says where it is stored.
fn persisted_invalid(cfg: &AgentConfig, e: AgentError) -> AgentError {
    let AgentError::Invalid {
        message,
        diagnostics,
    } = e
    else {
        return e;
    };
    let mut msg = format!(
        "{}: the persisted state is not valid: {message}",
        cfg.state_dir.join("state.json").display()
    );
    for d in diagnostics {
        msg += &format!("\n  {d}");
    }
    AgentError::Internal(msg)
}

/// Why `patch` may not be applied to `ep`: the first field it sets that the endpoint's owner
/// decides (a CNI endpoint's interface and addresses are the runtime's, a pod endpoint's labels
/// and addresses the Pod's).
fn unchangeable(ep: &EndpointSpec, patch: &EndpointPatch) -> Option<String> {
    let set = [
        ("iface", patch.iface.is_some()),
        ("labels", patch.labels.is_some()),
        ("ipv4", patch.ipv4.is_some()),
        ("ipv6", patch.ipv6.is_some()),
    ];
    let owner = |field: &str| match (&ep.container_id, &ep.pod) {
        (Some(c), _) if field != "labels" => Some(format!("comes from its container {c} (CNI)")),
        (_, Some(pod)) if field != "iface" => {
            Some(format!("come from its Pod {pod}; re-apply the Pod"))
        }
        _ => None,
    };
    set.iter()
        .filter(|(_, given)| *given)
        .find_map(|(field, _)| owner(field).map(|o| format!("{field} of endpoint {} {o}", ep.id)))
}
