//! `trace` from files, start to finish: load the inputs, resolve both ends, evaluate. This is what
//! the CLI runs (and what the cold-start benchmark times).

use super::{resolve_parties, resolve_party, trace, HttpRequest, PartyError, PartySpec, Trace};
use crate::cluster::{load, ClusterConfig, LoadError};
use ir::{PolicySet, Protocol};
use std::path::PathBuf;

/// The flow to trace.
#[derive(Clone, Debug)]
pub struct Query {
    pub src: PartySpec,
    pub dst: PartySpec,
    pub protocol: Protocol,
    pub port: u16,
    pub http: Option<HttpRequest>,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum TraceFilesError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Party(#[from] PartyError),
}

/// Loads `paths` with `config` and traces `q`; returns the policy (for rendering) and the
/// traces: one, or one per backend when the destination is a Service.
pub fn trace_files(
    paths: &[PathBuf],
    config: ClusterConfig,
    q: &Query,
) -> Result<(PolicySet, Vec<Trace>), TraceFilesError> {
    let (policy, cluster) = load(paths, config)?;
    let src = resolve_party(&cluster, &q.src)?;
    let traces = resolve_parties(&cluster, &q.dst)?
        .into_iter()
        .map(|dst| {
            let (proto, port, http) = (q.protocol, q.port, q.http.as_ref());
            trace(&policy, &cluster, src.clone(), dst, proto, port, http)
        })
        .collect();
    Ok((policy, traces))
}
