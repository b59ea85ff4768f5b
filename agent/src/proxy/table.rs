//! The proxy's table per change. A change that leaves some endpoint with a proxy redirect (or
//! removes the last one, or comes while the proxies still serve connections redirected
//! before) builds the `l7proxy` table of the new state before it is acknowledged; a refused
//! build (an HTTP pattern too large to compile) refuses the whole change as invalid input
//! naming the rules' file:line:column, and nothing changes. The built table and the addresses
//! are swapped in once the datapath enforces the change. Changes that concern no redirect,
//! before or after, while no proxied connection is open, build nothing.

use super::{Addresses, L7Shared};
use crate::error::AgentError;
use crate::world::World;
use ir::MapVerdict;
use l7proxy::table::TableError;
use l7proxy::{Limits, PolicyTable};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The writer's side: owned by the agent.
pub struct L7 {
    shared: L7Shared,
    limits: Limits,
    /// Local endpoints whose map state has a proxy redirect, as of the table in use.
    redirecting: BTreeSet<u16>,
    /// The table of the latest change accepted without waiting, put in use when the writer
    /// enforces it.
    staged: Option<Prepared>,
}

/// A table built for a change, swapped in by [`L7::commit`] once the change is enforced.
pub struct Prepared {
    table: PolicyTable,
    addresses: Addresses,
    redirecting: BTreeSet<u16>,
}

fn has_redirect(policy: &ir::EndpointPolicy) -> bool {
    let redirect = |v: &MapVerdict| matches!(v, MapVerdict::Redirect { .. });
    policy.entries.values().any(|e| redirect(&e.verdict))
        || policy.addr_entries.values().any(|e| redirect(&e.verdict))
}

impl L7 {
    pub fn new(limits: Limits) -> L7 {
        L7 {
            shared: L7Shared::default(),
            limits,
            redirecting: BTreeSet::new(),
            staged: None,
        }
    }

    /// What the proxy runtime reads.
    pub fn shared(&self) -> L7Shared {
        self.shared.clone()
    }

    /// Whether some endpoint's enforced map state redirects to the proxy.
    pub fn active(&self) -> bool {
        !self.redirecting.is_empty()
    }

    /// The table for `world` after a change that touched `touched` (`None`: every endpoint),
    /// or `None` when neither the new state nor the one in use has a redirect.
    pub fn prepare(
        &self,
        world: &World,
        touched: Option<&BTreeSet<u16>>,
    ) -> Result<Option<Prepared>, AgentError> {
        let latest = self
            .staged
            .as_ref()
            .map_or(&self.redirecting, |p| &p.redirecting);
        let mut redirecting = latest.clone();
        match touched {
            Some(ids) => {
                for id in ids {
                    redirecting.remove(id);
                }
            }
            None => redirecting.clear(),
        }
        let candidates: Box<dyn Iterator<Item = &u16>> = match touched {
            Some(ids) => Box::new(ids.iter()),
            None => Box::new(world.policies.keys()),
        };
        for id in candidates {
            if world.policies.get(id).is_some_and(|p| has_redirect(p)) {
                redirecting.insert(*id);
            }
        }
        // Connections redirected before the last redirect went stay in the proxy until they
        // end: they are judged by the current state, so the table follows it meanwhile.
        let lingering = self.shared.proxied.load(Ordering::Relaxed) > 0;
        if redirecting.is_empty() && latest.is_empty() && !lingering {
            return Ok(None);
        }
        let endpoints: Vec<(u16, &str)> = world
            .policies
            .keys()
            .filter_map(|id| Some((*id, world.endpoints.get(id)?.name.as_str())))
            .collect();
        let table = PolicyTable::build(&world.engine, &endpoints, &self.limits).map_err(refused)?;
        Ok(Some(Prepared {
            table,
            addresses: Addresses::of(world),
            redirecting,
        }))
    }

    /// Keeps `p` until [`L7::commit_staged`] (a change accepted without waiting).
    pub fn stage(&mut self, p: Prepared) {
        self.staged = Some(p);
    }

    /// Puts the staged table in use, if any.
    pub fn commit_staged(&mut self) {
        if let Some(p) = self.staged.take() {
            self.commit(p);
        }
    }

    /// Puts a prepared table in use (it includes any staged one): open connections apply it
    /// from their next request.
    pub fn commit(&mut self, p: Prepared) {
        self.staged = None;
        self.shared.table.store(p.table);
        self.shared.addresses.store(Arc::new(p.addresses));
        self.redirecting = p.redirecting;
    }
}

/// A table build that failed: refused patterns are the input's fault (file:line:column of each
/// rule); anything else is the agent's.
fn refused(e: TableError) -> AgentError {
    match e {
        TableError::Refused(list) => AgentError::Invalid {
            message: format!(
                "{} HTTP pattern(s) cannot be enforced by the L7 proxy; nothing was changed",
                list.len()
            ),
            diagnostics: list.iter().map(ToString::to_string).collect(),
        },
        other => AgentError::Internal(format!("building the L7 proxy table: {other}")),
    }
}
