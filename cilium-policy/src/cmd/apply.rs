//! `cilium-policy apply -f FILE...` and `delete -f FILE...`: send Namespaces, Pods and policies
//! (NetworkPolicy, CNP, CCNP, Cilium JSON) to the agent, or withdraw what those files applied.

use agent::model::{PolicyDelete, PolicyPut, RevisionReply};
use hyper::Method;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files or directories (*.yaml, *.yml, *.json, recursively), or `-` for stdin.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Return once the agent accepted the change, without waiting for enforcement.
    #[arg(long)]
    pub no_wait: bool,
}

pub fn apply(args: Args, api_socket: Option<&Path>) -> miette::Result<ExitCode> {
    let client = super::client_util::client(api_socket)?;
    let sources = super::client_util::read_sources(&args.files)?;
    let reply: RevisionReply = client.call(
        Method::PUT,
        "/v1/policy",
        Some(&PolicyPut {
            sources,
            wait: !args.no_wait,
        }),
    )?;
    print_revision(&reply);
    Ok(ExitCode::SUCCESS)
}

pub fn delete(args: Args, api_socket: Option<&Path>) -> miette::Result<ExitCode> {
    let client = super::client_util::client(api_socket)?;
    let paths = args
        .files
        .iter()
        .map(|p| super::client_util::source_key(&p.to_string_lossy()))
        .collect();
    let req = PolicyDelete {
        paths,
        wait: !args.no_wait,
        ..PolicyDelete::default()
    };
    let reply: RevisionReply = client.call(Method::DELETE, "/v1/policy", Some(&req))?;
    print_revision(&reply);
    Ok(ExitCode::SUCCESS)
}

/// `Revision: N` as `cilium policy import` prints it (seed §2.3.8).
pub fn print_revision(r: &RevisionReply) {
    println!("Revision: {}", r.revision);
}
