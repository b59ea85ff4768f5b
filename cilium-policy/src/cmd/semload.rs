//! Shared input handling of the offline semantics commands (trace, test, connectivity,
//! endpoints): read the files, stop on errors, build the cluster and the policy engine.

use compiler::cluster::{Cluster, ClusterConfig};
use compiler::identity::LabelFilter;
use compiler::policy::PolicyEngine;
use miette::miette;
use std::path::PathBuf;

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
}

/// Loads the inputs and computes every endpoint's map state.
pub fn load(a: &InputArgs) -> miette::Result<PolicyEngine> {
    let (policy, cluster) = load_cluster(a)?;
    Ok(PolicyEngine::new(policy, cluster))
}

/// Loads the inputs and builds the cluster (identities, ipcache) without computing map states
/// (what `trace` and `test` need). Errors in the input are printed and stop the command (exit 2).
pub fn load_cluster(a: &InputArgs) -> miette::Result<(ir::PolicySet, Cluster)> {
    let out = compiler::front::load(&a.files).map_err(|e| miette!("{e}"))?;
    let mut diags: Vec<_> = out
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .cloned()
        .collect();
    if !diags.is_empty() {
        compiler::diag::sort(&mut diags);
        for d in &diags {
            eprintln!("{d}");
        }
        return Err(miette!(
            "{} error(s) in the input; run `cilium-policy lint` for details",
            diags.len()
        ));
    }
    let config = ClusterConfig {
        label_filter: LabelFilter::with_prefixes(&a.label_prefixes)?,
        ..Default::default()
    };
    let cluster = Cluster::build(&out.inventory, &out.policy, config)?;
    Ok((out.policy, cluster))
}
