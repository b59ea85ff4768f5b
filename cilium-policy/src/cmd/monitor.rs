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
    // Printed once the agent answered: it subscribed this client (and turned the endpoints'
    // events on) before replying, so every event from now on is shown.
    let listening = || println!("Listening for events; press Ctrl-C to quit");
    client.stream_lines(&path, listening, |line| println!("{line}"))?;
    Ok(ExitCode::SUCCESS)
}
