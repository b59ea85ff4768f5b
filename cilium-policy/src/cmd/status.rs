//! `cilium-policy status`: the agent's health (seed §2.2.5).

use agent::model::Healthz;
use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print the agent's reply as JSON.
    #[arg(short = 'o', long = "output", value_parser = ["json"])]
    pub output: Option<String>,
}

pub fn run(args: Args, api_socket: Option<&Path>) -> miette::Result<ExitCode> {
    let h: Healthz = super::client_util::client(api_socket)?.get("/v1/healthz")?;
    if args.output.is_some() {
        println!(
            "{}",
            serde_json::to_string_pretty(&h).map_err(|e| miette::miette!("{e}"))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Agent:          {}",
        if h.status == "ok" { "Ok" } else { &h.status }
    );
    println!("Datapath:       {}", h.datapath);
    println!("Policy:         revision {}", h.policy_revision);
    println!("Endpoints:      {}", h.endpoints);
    println!("Identities:     {}", h.identities);
    Ok(ExitCode::SUCCESS)
}
