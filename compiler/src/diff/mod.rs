//! The connectivity difference between two policy sets over one inventory (`cilium-policy
//! diff`): the common files plus the old files are resolved once into a [`PolicyEngine`]; the new
//! files' rules are appended, rules equal on both sides are kept, and only the differing ones are
//! swapped (deactivated / activated), so only the groups their subjects select are recomputed.
//! Flows are then compared on those groups only (`flows.rs`), on the map state as the datapath
//! looks it up.

mod flows;
mod swap;

pub use flows::{named_ports, rule_ports, Change, Outcome, SideDecision, Verdict};

use crate::cluster::{ClusterConfig, LoadError};
use crate::diag::Diagnostic;
use crate::front::FrontOutput;
use crate::policy::{GroupKey, PolicyEngine};
use ir::{EndpointPolicy, FileId, PolicySet, Protocol, RuleId};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;

/// What to compare.
#[derive(Clone, Debug, Default)]
pub struct DiffInput {
    /// Inventory and the policies both sides share.
    pub common: Vec<PathBuf>,
    pub old: Vec<PathBuf>,
    pub new: Vec<PathBuf>,
    pub config: ClusterConfig,
    /// Ports compared besides those the rules name.
    pub ports: Vec<(Protocol, u16)>,
    /// Addresses outside the cluster compared both ways with every endpoint.
    pub peers: Vec<IpAddr>,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum DiffError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Load(#[from] LoadError),
    /// `--old`/`--new` may hold policies only: both sides share one inventory.
    #[error("{side} files define {what}; the inventory (Namespaces, Pods, workloads, endpoints, CiliumCIDRGroups, Services, EndpointSlices) belongs in the common files (-f), which both sides share")]
    #[diagnostic(code(cilium_policy::diff_inventory))]
    InventoryInSide { side: &'static str, what: String },
    #[error("--peer {addr} is the address of endpoint {endpoint}, which is compared with every other endpoint already; --peer is for addresses outside the cluster")]
    #[diagnostic(code(cilium_policy::diff_peer))]
    PeerIsEndpoint { addr: IpAddr, endpoint: String },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
}

/// The result: every flow whose verdict differs, and the policy set that names their rules.
pub struct Diff {
    /// Common, old and new rules together (new rules' ids follow the old ones).
    pub policy: PolicySet,
    pub changes: Vec<Change>,
}

/// Reads `paths` and refuses them if any has an error (as `cluster::load` does).
fn front(paths: &[PathBuf]) -> Result<FrontOutput, LoadError> {
    let out = crate::front::load(paths)?;
    let mut errors: Vec<Diagnostic> = out
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .cloned()
        .collect();
    if !errors.is_empty() {
        crate::diag::sort(&mut errors);
        return Err(LoadError::Invalid(errors));
    }
    Ok(out)
}

fn policies_only(side: &'static str, out: &FrontOutput) -> Result<(), DiffError> {
    let inv = &out.inventory;
    if inv.is_empty() {
        return Ok(());
    }
    let mut names: Vec<String> = inv.namespaces.iter().map(|n| n.name.clone()).collect();
    names.extend(inv.endpoints.iter().map(|e| e.name.clone()));
    names.extend(inv.cidr_groups.iter().map(|g| g.name.clone()));
    names.extend(
        inv.services
            .iter()
            .map(|s| format!("{}/{}", s.namespace, s.name)),
    );
    names.extend(
        inv.endpoint_slices
            .iter()
            .map(|s| format!("{}/{}", s.namespace, s.name)),
    );
    let more = names.len().saturating_sub(3);
    names.truncate(3);
    let mut what = names.join(", ");
    if more > 0 {
        what += &format!(" and {more} more");
    }
    Err(DiffError::InventoryInSide { side, what })
}

/// Appends every rule of `other` (with its own files) to `into`; returns the new rules' ids.
fn append(into: &mut PolicySet, mut other: PolicySet) -> Vec<RuleId> {
    let base = into.files.len() as u32;
    into.files.append(&mut other.files);
    for r in &mut other.rules {
        r.provenance.file = FileId(r.provenance.file.0 + base);
    }
    let first = into.rules.len() as u32;
    into.absorb(other);
    (first..into.rules.len() as u32).map(RuleId).collect()
}

/// Compares the verdicts of common + old with those of common + new.
pub fn diff(input: &DiffInput) -> Result<Diff, DiffError> {
    let common = front(&input.common)?;
    let old = front(&input.old)?;
    policies_only("--old", &old)?;
    let new = front(&input.new)?;
    policies_only("--new", &new)?;
    let mut policy = common.policy;
    let old_ids = append(&mut policy, old.policy);
    let cluster = crate::cluster::Cluster::build(&common.inventory, &policy, input.config.clone())?;
    for addr in &input.peers {
        if let Some(ep) = cluster.endpoints().find(|e| e.ips.contains(addr)) {
            return Err(DiffError::PeerIsEndpoint {
                addr: *addr,
                endpoint: ep.name.clone(),
            });
        }
    }
    let mut engine = PolicyEngine::new(policy, cluster);
    let new_ids = append(&mut engine.policy, new.policy);
    let before: Vec<_> = input
        .peers
        .iter()
        .map(|a| engine.cluster.identity_of_addr(*a))
        .collect();
    let plan = swap::plan(&engine.policy, &old_ids, &new_ids);
    let (old_states, changed) = swap::apply(&mut engine, &plan)?;
    let after: Vec<_> = input
        .peers
        .iter()
        .map(|a| engine.cluster.identity_of_addr(*a))
        .collect();
    let mut ports = rule_ports(&engine.policy, &engine.cluster);
    ports.extend(input.ports.iter().copied());
    ports.sort();
    ports.dedup();
    let sides = flows::Sides {
        engine: &engine,
        old: &old_states,
        changed: &changed,
        ports: &ports,
        renamed: &plan.kept,
    };
    let mut changes = sides.endpoint_changes();
    for (i, addr) in input.peers.iter().enumerate() {
        changes.extend(sides.peer_changes(*addr, before[i], after[i]));
    }
    changes.sort_by(|a, b| {
        (&a.src, &a.dst, a.protocol, a.port).cmp(&(&b.src, &b.dst, b.protocol, b.port))
    });
    Ok(Diff {
        policy: engine.policy,
        changes,
    })
}

/// The map states of the groups a swap changed, as they were before it.
type OldStates = HashMap<GroupKey, EndpointPolicy>;
