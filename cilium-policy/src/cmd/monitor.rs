//! `cilium-policy monitor [--type drop|verdict]`: datapath events, one per line (seed §6.2).

use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only events of this type.
    #[arg(long = "type", value_parser = ["drop", "verdict"])]
    pub kind: Option<String>,
}

pub fn run(args: Args, api_socket: Option<&Path>) -> miette::Result<ExitCode> {
    let client = super::client_util::client(api_socket)?;
    let path = match &args.kind {
        Some(k) => format!("/v1/monitor?type={k}"),
        None => "/v1/monitor".to_string(),
    };
    println!("Listening for events; press Ctrl-C to quit");
    client.stream_lines(&path, |line| println!("{line}"))?;
    Ok(ExitCode::SUCCESS)
}
