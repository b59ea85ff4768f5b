//! The datapath's side of the program pool ([`crate::program_pool`]): a new endpoint claims a
//! kit of its configuration when one is ready, and every new endpoint's load asks the pool to
//! top its configuration up again.

use super::{Datapath, ProgramKey};
use crate::program_pool::{PoolKey, Recipe};
use runtime_loader::kit::ClaimError;
use runtime_loader::load;
use std::path::PathBuf;

impl Datapath {
    /// A kit of `key`'s configuration handed to new endpoint `id` (its maps pinned at `pins`),
    /// or `None`: none ready, or it could not be claimed (logged; the caller loads instead).
    pub(super) fn claim_kit(
        &mut self,
        id: u16,
        key: &ProgramKey,
        pins: &[(&'static str, PathBuf)],
    ) -> Option<load::Datapath> {
        let kit = self.pool.take(&pool_key(key))?;
        let _claim = tracing::debug_span!("claim_kit").entered();
        match kit.claim(&key.globals, &self.state_of(id), pins) {
            Ok(dp) => Some(dp),
            Err(e) => {
                if matches!(e, ClaimError::Stale { .. }) {
                    self.pool.clear();
                }
                tracing::warn!(endpoint = id, error = %e,
                    "programs verified ahead could not be used; loading the endpoint's own");
                None
            }
        }
    }

    /// Asks the pool to keep kits of `key`'s configuration (its template is loaded).
    pub(super) fn top_up(&self, key: &ProgramKey) {
        if self.pool.depth() == 0 {
            return;
        }
        let Some((template, sites)) = self.templates.get(&key.features) else {
            return;
        };
        self.pool.top_up(Recipe {
            key: pool_key(key),
            template: template.clone(),
            sites: sites.clone(),
        });
    }
}

fn pool_key(key: &ProgramKey) -> PoolKey {
    PoolKey {
        features: key.features,
        policy_capacity: key.policy_capacity,
    }
}
