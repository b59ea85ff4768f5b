//! `cilium-policy test` (not yet implemented).

use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> miette::Result<ExitCode> {
    Err(miette::miette!("`cilium-policy test` is not implemented yet"))
}
