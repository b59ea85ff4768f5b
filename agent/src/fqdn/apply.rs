//! Learned addresses into the world and the datapath: a learn or an expiry changes the
//! cache, the world sets the changed addresses' FQDN selectors (`Cluster::set_fqdn` through
//! the engine: only the entries of their old and new identities move), and the writer brings
//! the endpoints that changed and the ipcache to the datapath without a new policy revision,
//! as for other nodes' endpoints. A policy change that changes the set of FQDN selectors
//! re-labels every learned address.

use super::persist::FqdnFile;
use super::{selectors_of, FqdnConfig, FqdnCounters, Learnt, RETRY};
use crate::error::AgentError;
use crate::state::Agent;
use crate::world::World;
use l7proxy::dns::learn::Learned;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

impl World {
    /// Gives each of `addrs` the FQDN selectors of the policy that match its learned names
    /// (none: it is forgotten). An address that cannot get an identity (identities exhausted)
    /// is left as it was, with a log line: not allowed if it is new (fail closed).
    pub(crate) fn sync_fqdn(&mut self, addrs: impl IntoIterator<Item = IpAddr>) {
        let selectors = self.engine.fqdn_selectors();
        for addr in addrs {
            let want = selectors_of(self.fqdn.names(addr), &selectors);
            match self.engine.set_fqdn(addr, &want) {
                Ok(deltas) => self.note(deltas),
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "a learned toFQDNs address was not applied")
                }
            }
        }
        self.fqdn_selectors = selectors;
    }

    /// After a policy change (and once built): every learned address again, when the FQDN
    /// selectors changed; `fqdn_selectors` is then the policy's (the DNS proxy's hook skips
    /// the writer while it is empty).
    pub(crate) fn relabel_fqdn(&mut self) {
        if self.engine.fqdn_selectors() == self.fqdn_selectors {
            return;
        }
        let all: Vec<IpAddr> = self.fqdn.addresses().collect();
        self.sync_fqdn(all);
    }

    /// At start: what `file` kept from before, each entry for the time it has left (the
    /// `--tofqdns-min-ttl` was applied when it was learned); entries the policy's selectors
    /// no longer match are left out, and the endpoints' policies follow. A file that cannot be
    /// read is logged: nothing is restored.
    pub(crate) fn restore_fqdn(
        &mut self,
        file: &FqdnFile,
        cfg: &FqdnConfig,
    ) -> Result<(), AgentError> {
        let learned = match file.load(SystemTime::now()) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "toFQDNs: the learned addresses of the previous agent are not restored; clients must resolve again");
                return Ok(());
            }
        };
        let selectors = self.engine.fqdn_selectors();
        let cfg = FqdnConfig {
            min_ttl: Duration::ZERO,
            ..cfg.clone()
        };
        let learnt = self.fqdn.learn(Instant::now(), &learned, &selectors, &cfg);
        self.sync_fqdn(learnt.changed.iter().copied());
        self.refresh()?;
        if !learned.is_empty() {
            tracing::info!(
                addresses = self.fqdn.len(),
                path = %file.path().display(),
                "toFQDNs: learned addresses restored"
            );
        }
        Ok(())
    }

    /// The learned addresses of `old`, applied to the rebuilt world `self`.
    pub(crate) fn carry_fqdn(&mut self, old: &World) {
        self.fqdn = old.fqdn.clone();
        let all: Vec<IpAddr> = self.fqdn.addresses().collect();
        self.sync_fqdn(all);
    }
}

impl Agent {
    /// Learns the addresses of an allowed DNS answer and returns once the datapath allows
    /// those a selector matches. Addresses refused because the cache is full are logged.
    pub fn learn_fqdn(&mut self, learned: &[Learned]) -> Result<Learnt, AgentError> {
        let learnt = {
            let mut world = self.world_mut();
            let selectors = world.engine.fqdn_selectors();
            let now = Instant::now();
            let learnt = world.fqdn.learn(now, learned, &selectors, &self.cfg.fqdn);
            world.sync_fqdn(learnt.changed.iter().copied());
            learnt
        };
        if learnt.refused > 0 {
            tracing::warn!(
                refused = learnt.refused,
                max = self.cfg.fqdn.max_addresses,
                "toFQDNs: the learned-address cache is full; new addresses stay denied"
            );
        }
        let now = Instant::now();
        if !learnt.changed.is_empty() || learnt.extended > 0 {
            self.fqdn_file.changed(now);
        }
        if !learnt.changed.is_empty() {
            self.enforce_unversioned(Vec::new())?;
        }
        self.save_fqdn(now);
        Ok(learnt)
    }

    /// Writes the learned addresses to the state directory if a write is due (a failure is
    /// logged and tried again).
    fn save_fqdn(&mut self, now: Instant) {
        let shared = self.shared_world();
        let world = shared.read().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = self.fqdn_file.save_if_due(now, &world.fqdn) {
            tracing::warn!(error = %e, "toFQDNs: writing the learned addresses failed; retrying");
        }
    }

    /// When the writer must run [`Agent::expire_fqdn`] next: an expiry, a retried datapath
    /// write, or a held-back write of the cache's file.
    pub fn fqdn_deadline(&self) -> Option<Instant> {
        let world = self.world();
        [
            world.fqdn.next_deadline(),
            world.fqdn_retry,
            self.fqdn_file.due(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Forgets the entries expired by now and brings the datapath to it; a failed write is
    /// tried again after [`RETRY`] (the address must not stay allowed); writes the cache's file
    /// when due. Returns how many addresses changed.
    pub fn expire_fqdn(&mut self, counters: &FqdnCounters) -> usize {
        let now = Instant::now();
        let (changed, retry) = {
            let mut world = self.world_mut();
            let retry = world.fqdn_retry.take().is_some();
            let changed = world.fqdn.expire(now);
            world.sync_fqdn(changed.iter().copied());
            let gone = changed
                .iter()
                .filter(|a| world.fqdn.names(**a).next().is_none());
            super::bump(&counters.expired, gone.count());
            (changed.len(), retry)
        };
        if changed > 0 {
            self.fqdn_file.changed(now);
        }
        // Woken only for the file: the datapath has nothing to change.
        if changed > 0 || retry {
            if let Err(e) = self.enforce_unversioned(Vec::new()) {
                tracing::error!(error = %e, "toFQDNs: removing expired addresses from the datapath failed; retrying");
                self.world_mut().fqdn_retry = Some(now + RETRY);
            }
        }
        self.save_fqdn(now);
        changed
    }
}
