//! The `cilium-policy` command line: one subcommand per module under `cmd/`.

use clap::{CommandFactory, Parser, Subcommand};
use std::process::ExitCode;

mod cmd;
mod server;

/// mimalloc: the offline commands build and drop large spanned trees (a third less CPU for
/// `trace` on a 10,000-pod inventory than glibc malloc, Documentation/policy-semantics.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turn Kubernetes NetworkPolicy, CiliumNetworkPolicy and Cilium JSON rules into an enforced BPF datapath.
///
/// Offline commands (lint, trace, test, connectivity, diff, replay, endpoints, compile) read policy files,
/// directories (*.yaml, *.yml, *.json, recursively) or `-` for stdin. Agent commands talk to a
/// running `cilium-policy agent` through --api-socket.
#[derive(Parser, Debug)]
#[command(name = "cilium-policy", version, propagate_version = true)]
pub struct Cli {
    /// Unix socket of a running agent (for status, apply, delete, policy, endpoint, monitor).
    #[arg(long, global = true, env = "CILIUM_POLICY_API_SOCKET")]
    pub api_socket: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check policy files for errors and mistakes (for CI pipelines).
    Lint(cmd::lint::Args),
    /// Generate per-endpoint BPF programs, headers and map images.
    Compile(cmd::compile::Args),
    /// Explain why a flow from one endpoint to another is allowed or denied, rule by rule.
    Trace(cmd::trace::Args),
    /// Check expected verdicts (a TSV file of flows) against the policies.
    Test(cmd::test::Args),
    /// List what can talk to what, on which ports.
    Connectivity(cmd::connectivity::Args),
    /// The connectivity difference between two policy sets over one inventory (exit 1 when any).
    Diff(cmd::diff::Args),
    /// Recorded flows (`monitor -o json`, flow export) whose verdict the given policies change.
    Replay(cmd::replay::Args),
    /// List endpoints with their identities, labels and enforcement.
    Endpoints(cmd::endpoints::Args),
    /// Run the resident agent: loads the datapath and keeps it in step with policies and endpoints.
    Agent(cmd::agent::Args),
    /// Health of the running agent.
    Status(cmd::status::Args),
    /// Apply Namespaces, Pods and policies (NetworkPolicy, CNP, CCNP, Cilium JSON) to the agent.
    Apply(cmd::apply::Args),
    /// Withdraw what these files applied.
    Delete(cmd::apply::Args),
    /// Import, show or delete policy rules (`cilium policy`).
    Policy(cmd::policy::Args),
    /// Add, list or delete endpoints.
    Endpoint(cmd::endpoint::Args),
    /// Print datapath drop and verdict events.
    Monitor(cmd::monitor::Args),
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Lint(a) => cmd::lint::run(a),
        Command::Compile(a) => cmd::compile::run(a),
        Command::Trace(a) => cmd::trace::run(a),
        Command::Test(a) => cmd::test::run(a),
        Command::Connectivity(a) => cmd::connectivity::run(a),
        Command::Diff(a) => cmd::diff::run(a),
        Command::Replay(a) => cmd::replay::run(a),
        Command::Endpoints(a) => cmd::endpoints::run(a),
        Command::Agent(a) => cmd::agent::run(a, cli.api_socket.clone()),
        Command::Status(a) => cmd::status::run(a, cli.api_socket.as_deref()),
        Command::Apply(a) => cmd::apply::apply(a, cli.api_socket.as_deref()),
        Command::Delete(a) => cmd::apply::delete(a, cli.api_socket.as_deref()),
        Command::Policy(a) => cmd::policy::run(a, cli.api_socket.as_deref()),
        Command::Endpoint(a) => cmd::endpoint::run(a, cli.api_socket.as_deref()),
        Command::Monitor(a) => cmd::monitor::run(a, cli.api_socket.as_deref()),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "cilium-policy",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::from(2)
        }
    }
}
