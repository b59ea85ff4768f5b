//! Shared plumbing of the agent client subcommands: finding the socket, reading policy files.

use agent::client::Client;
use agent::model::SourceDoc;
use std::path::{Path, PathBuf};

/// The client for `--api-socket`, or a clear error when it is missing.
pub fn client(api_socket: Option<&Path>) -> miette::Result<Client> {
    let socket = api_socket.ok_or_else(|| {
        miette::miette!(
            help = "pass --api-socket PATH or set CILIUM_POLICY_API_SOCKET",
            "no agent socket given"
        )
    })?;
    Ok(Client::new(socket)?)
}

/// Reads policy and inventory files (files, directories, `-`) into sources keyed by their
/// absolute path, so that re-applying a file replaces what it applied before.
pub fn read_sources(paths: &[PathBuf]) -> miette::Result<Vec<SourceDoc>> {
    let sources = compiler::front::read_policy_inputs(paths).map_err(|e| miette::miette!("{e}"))?;
    sources
        .into_iter()
        .map(|s| {
            let path = source_key(&s.path);
            let text =
                String::from_utf8(s.text).map_err(|_| miette::miette!("{path}: not UTF-8"))?;
            Ok(SourceDoc { path, text })
        })
        .collect()
}

/// The key a path is stored under: absolute and normalized when the file exists, as given otherwise.
pub fn source_key(path: &str) -> String {
    std::fs::canonicalize(path)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.to_string())
}
