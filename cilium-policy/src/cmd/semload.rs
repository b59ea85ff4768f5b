//! Shared input handling of the offline semantics commands (trace, test, connectivity,
//! endpoints): read the files, stop on errors, build the cluster and the policy engine.

use compiler::cluster::{Cluster, ClusterConfig, LoadError};
use compiler::identity::LabelFilter;
use compiler::policy::PolicyEngine;
use std::path::PathBuf;

/// `-o text|json` of `trace` and `endpoints`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextOrJson {
    Text,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct InputArgs {
    /// Policy and inventory files or directories (`*.yaml`, `*.yml`, `*.json`, recursively; `-` for stdin).
    #[arg(short = 'f', long = "file", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Identity-relevant label prefixes added to Cilium's defaults, as the agent's `--labels`
    /// (`[source:]regex`, `!` to exclude; e.g. `id.` keeps only `id.*` labels besides the
    /// namespace and reserved ones).
    #[arg(long = "labels", value_delimiter = ',')]
    pub label_prefixes: Vec<String>,
    /// Every policy in audit mode, as the agent's `--policy-audit-mode`: what would be denied
    /// passes and is reported as audited.
    #[arg(long)]
    pub policy_audit_mode: bool,
    /// The local node, as the agent's `--node`: pods without `spec.nodeName` run there, and a
    /// `Node`'s addresses are `host` on itself and its node identity on other nodes.
    #[arg(long = "node", default_value = compiler::cluster::DEFAULT_NODE)]
    pub node: String,
}

/// Loads the inputs and computes every endpoint's map state.
pub fn load(a: &InputArgs) -> miette::Result<PolicyEngine> {
    let (policy, cluster) = load_cluster(a)?;
    Ok(PolicyEngine::new(policy, cluster))
}

/// The cluster configuration the flags ask for.
pub fn config(a: &InputArgs) -> miette::Result<ClusterConfig> {
    Ok(ClusterConfig {
        label_filter: LabelFilter::with_prefixes(&a.label_prefixes)?,
        audit_all: a.policy_audit_mode,
        local_node: a.node.clone(),
        ..Default::default()
    })
}

/// Turns a load failure into the command's error; errors in the input are printed first (exit 2).
pub fn load_failed(e: LoadError) -> miette::Report {
    if let LoadError::Invalid(diags) = &e {
        for d in diags {
            eprintln!("{d}");
        }
    }
    miette::Report::new(e)
}

/// Loads the inputs and builds the cluster (identities, ipcache) without computing map states
/// (what `test` needs). Errors in the input are printed and stop the command (exit 2).
pub fn load_cluster(a: &InputArgs) -> miette::Result<(ir::PolicySet, Cluster)> {
    compiler::cluster::load(&a.files, config(a)?).map_err(load_failed)
}
