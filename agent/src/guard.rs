//! The periodic datapath check (`--datapath-check-interval`): between jobs, the writer asks
//! the kernel whether each endpoint's interface runs exactly the programs this agent attached
//! for it with nothing else on either hook (`Datapath::check_running`: what CNI CHECK asks,
//! but the pins), and whether the node's L7 redirect is attached. What was changed behind the
//! agent's back (a tc filter deleted or put in front, a program swapped into it, a tcx link
//! detached or its pin lost with bpffs) is repaired at once: those endpoints are loaded and
//! attached anew at the revision they enforce, and the sync detaches foreign programs
//! (`datapath_verify.rs`). Without the check such a change lasted until the endpoint's next
//! change. Map pins are left to the verification before each write: a pin removed changes
//! what the next write would reach, not what runs. Cost: per endpoint, hook and interval, one
//! rtnetlink filter dump (over one socket per turn) and a tcx query (tc mode) or a link pin
//! opened and a tcx query (tcx mode), on the writer thread, [`SLICE`] endpoints per turn;
//! nothing on the packet path.

use super::Agent;
use crate::datapath::Scope;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Endpoints checked per turn: the endpoints are swept once per interval, this many at a time
/// (about 1.3 ms of the writer's time with tc filters), so that a write waits for one turn at
/// most rather than for a whole sweep (42 ms at 1,000 endpoints; Documentation/performance.md,
/// "The periodic datapath check").
pub const SLICE: usize = 32;

impl Agent {
    /// When the writer must run [`Agent::guard_datapath`] next (`None`: never).
    pub fn check_deadline(&self) -> Option<Instant> {
        self.next_check
    }

    /// Checks the attachment of the next [`SLICE`] endpoints (in id order, from where the last
    /// turn stopped) and repairs the ones that do not hold; returns how many were repaired (or
    /// tried: a failed repair is logged, the endpoint is reported lagging, and the next sweep
    /// tries again). The next turn is due so that every endpoint is checked once per interval.
    pub fn guard_datapath(&mut self) -> usize {
        let Some(interval) = self.cfg.datapath_check_interval else {
            self.next_check = None;
            return 0;
        };
        let Some(dp) = self.datapath.as_ref() else {
            self.next_check = None;
            return 0;
        };
        let all = dp.attached_endpoints();
        let turn = turn(&all, self.check_cursor);
        self.check_cursor = turn.last().map_or(0, |id| id.wrapping_add(1));
        self.next_check = Some(Instant::now() + turn_period(interval, all.len()));
        let mut broken = BTreeSet::new();
        let mut lister = runtime_loader::tcfilter::Lister::default();
        for id in turn {
            if let Err(e) = dp.check_running(id, &mut lister) {
                tracing::warn!(endpoint = id, error = %e,
                    "the endpoint's datapath was changed behind the agent's back; repairing");
                broken.insert(id);
            }
        }
        let redirect_lost = !dp.node_redirect_attached();
        if broken.is_empty() && !redirect_lost {
            return 0;
        }
        // Loaded and attached anew, whatever was wrong: a detached link or a deleted filter
        // is not something the sync's own verification (pins) notices.
        if let Some(dp) = self.datapath.as_mut() {
            for id in &broken {
                dp.forget_endpoint(*id);
            }
        }
        // The sync's verification reinstalls a lost redirect even for no endpoint.
        let revision = self.persisted.revision;
        match self.sync_datapath(Scope::Only(&broken), revision) {
            Ok(()) if broken.iter().all(|id| !self.lagging.contains_key(id)) => {
                tracing::info!(endpoints = ?broken, "the datapath check repaired the endpoints")
            }
            Ok(()) => tracing::error!(endpoints = ?broken,
                "the datapath check could not repair every endpoint; retrying at the next check"),
            Err(e) => tracing::error!(error = %e,
                "the datapath check's repair failed; retrying at the next check"),
        }
        broken.len()
    }
}

/// The endpoints of one turn: up to [`SLICE`] of `all` (sorted) from `cursor` on, wrapping
/// around to the first ones.
fn turn(all: &[u16], cursor: u16) -> Vec<u16> {
    let start = all.partition_point(|id| *id < cursor);
    all[start..]
        .iter()
        .chain(&all[..start])
        .take(SLICE)
        .copied()
        .collect()
}

/// The time between turns for `n` endpoints: a sweep of all of them takes `interval`.
fn turn_period(interval: Duration, n: usize) -> Duration {
    let turns = n.div_ceil(SLICE).max(1);
    interval / u32::try_from(turns).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_sweep_every_endpoint_once_per_interval() {
        let all: Vec<u16> = (1..=70).collect();
        let mut cursor = 0;
        let mut seen = Vec::new();
        for _ in 0..3 {
            let t = turn(&all, cursor);
            cursor = t.last().map_or(0, |id| id.wrapping_add(1));
            seen.extend(t);
        }
        // 32 + 32 + the last 6 and, wrapping around, the first 26.
        assert_eq!(seen[..70], all[..]);
        assert_eq!(seen[70..], all[..26]);
        assert_eq!(turn(&all, cursor)[..3], [27, 28, 29]);
        assert_eq!(
            turn(&all, 71)[..2],
            [1, 2],
            "past the last id: from the first"
        );
        assert!(turn(&[], 5).is_empty());
        let s = Duration::from_secs(1);
        assert_eq!(turn_period(s, 70), s / 3);
        assert_eq!(turn_period(s, 10), s);
        assert_eq!(turn_period(s, 0), s);
    }
}
