//! The offline commands' world from files: read and parse the inputs, refuse them if any has an
//! error, and build the cluster (identities, ipcache). Shared by `trace`, `test`, `connectivity`,
//! `endpoints` and the `trace` cold-start benchmark.

use super::{Cluster, ClusterConfig, ClusterError};
use crate::diag::Diagnostic;
use crate::front::InputError;
use ir::PolicySet;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LoadError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Input(#[from] InputError),
    /// The input has errors (sorted by file and position); nothing was loaded.
    #[error("{} error(s) in the input; run `cilium-policy lint` for details", .0.len())]
    #[diagnostic(code(cilium_policy::invalid_input))]
    Invalid(Vec<Diagnostic>),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Cluster(#[from] ClusterError),
}

/// Reads `paths`, parses every file, and builds the cluster with `config`.
pub fn load(paths: &[PathBuf], config: ClusterConfig) -> Result<(PolicySet, Cluster), LoadError> {
    let out = crate::front::load(paths)?;
    let mut errors: Vec<Diagnostic> = out
        .diagnostics
        .into_iter()
        .filter(Diagnostic::is_error)
        .collect();
    if !errors.is_empty() {
        crate::diag::sort(&mut errors);
        return Err(LoadError::Invalid(errors));
    }
    let cluster = Cluster::build(&out.inventory, &out.policy, config)?;
    Ok((out.policy, cluster))
}
