//! One module per subcommand; each exposes `Args` (clap) and `run(Args) -> miette::Result<ExitCode>`.

pub mod agent;
pub mod compile;
pub mod connectivity;
pub mod endpoints;
pub mod lint;
pub mod semload;
pub mod test;
pub mod trace;
