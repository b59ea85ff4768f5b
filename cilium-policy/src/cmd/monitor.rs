//! `cilium-policy monitor [--type drop|policy-verdict|l7|all] [-o text|json] [--from-pod P]
//! [--to-pod P] [--verdict V]`: datapath events, one per line — the seed's §6.2 lines followed
//! by the policy behind each verdict, or flows as JSON with Hubble's field names.

use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only events of this type.
    #[arg(long = "type", default_value = "all",
          value_parser = ["drop", "policy-verdict", "verdict", "l7", "all"])]
    pub kind: String,
    /// `text` (seed §6 lines) or `json` (one Hubble-style flow a line).
    #[arg(short = 'o', long = "output", default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
    /// Only flows from this pod (`[NAMESPACE/]NAME-PREFIX`, namespace `default` if omitted).
    #[arg(long)]
    pub from_pod: Option<String>,
    /// Only flows to this pod (`[NAMESPACE/]NAME-PREFIX`).
    #[arg(long)]
    pub to_pod: Option<String>,
    /// Only flows with this verdict.
    #[arg(long, value_parser = ["FORWARDED", "DROPPED", "AUDIT", "REDIRECTED"],
          ignore_case = true)]
    pub verdict: Option<String>,
}

/// `%`-escapes what a query value may not carry as is.
fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

pub fn run(args: Args, api_socket: Option<&Path>) -> miette::Result<ExitCode> {
    let client = super::client_util::client(api_socket)?;
    let mut query = vec![
        format!("type={}", args.kind),
        format!("output={}", args.output),
    ];
    for (k, v) in [
        ("from_pod", &args.from_pod),
        ("to_pod", &args.to_pod),
        ("verdict", &args.verdict),
    ] {
        if let Some(v) = v {
            query.push(format!("{k}={}", escape(v)));
        }
    }
    let path = format!("/v1/monitor?{}", query.join("&"));
    // Printed once the agent answered: it subscribed this client (and turned the endpoints'
    // events on) before replying, so every event from now on is shown. On stderr for JSON, so
    // that stdout is only flows.
    let json = args.output == "json";
    let listening = || {
        if json {
            eprintln!("Listening for events; press Ctrl-C to quit");
        } else {
            println!("Listening for events; press Ctrl-C to quit");
        }
    };
    client.stream_lines(&path, listening, |line| println!("{line}"))?;
    Ok(ExitCode::SUCCESS)
}
