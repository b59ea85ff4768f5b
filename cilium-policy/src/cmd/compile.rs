//! `cilium-policy compile` (not yet implemented).

use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> miette::Result<ExitCode> {
    Err(miette::miette!("`cilium-policy compile` is not implemented yet"))
}
