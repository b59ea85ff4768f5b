//! One module per subcommand; each exposes `Args` (clap) and `run(Args) -> miette::Result<ExitCode>`.

pub mod agent;
pub mod apply;
pub mod client_util;
pub mod compile;
pub mod connectivity;
pub mod endpoint;
pub mod endpoint_table;
pub mod endpoints;
pub mod lint;
pub mod monitor;
pub mod policy;
pub mod semload;
pub mod status;
pub mod test;
pub mod trace;
