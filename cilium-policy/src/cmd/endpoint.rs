//! `cilium-policy endpoint add | list | delete` (seed §2.3.7 `cilium endpoint list`).

use super::endpoint_table::{render, Row};
use agent::model::{EndpointSpec, EndpointStatus, RevisionReply};
use hyper::Method;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(clap::Subcommand, Debug)]
pub enum Sub {
    /// Add an endpoint: a Pod applied before (`--pod`), or one given by labels and addresses.
    Add {
        /// Endpoint id (1-65535); the lowest free id when omitted.
        #[arg(long)]
        id: Option<u16>,
        /// `NAMESPACE/NAME` of an applied Pod: labels and addresses come from it.
        #[arg(long, conflicts_with_all = ["labels", "ipv4", "ipv6"])]
        pod: Option<String>,
        /// Comma-separated `[source:]key=value` labels (source `container` when absent).
        #[arg(long, value_delimiter = ',')]
        labels: Vec<String>,
        #[arg(long)]
        ipv4: Option<Ipv4Addr>,
        #[arg(long)]
        ipv6: Option<Ipv6Addr>,
        /// Host-side interface of the endpoint's veth pair.
        #[arg(long)]
        iface: String,
    },
    /// List endpoints with enforcement, identity, labels, addresses and status.
    List {
        #[arg(short = 'o', long = "output", value_parser = ["json"])]
        output: Option<String>,
    },
    /// Delete an endpoint (its programs are detached, its maps unpinned).
    Delete { id: String },
}

pub fn run(args: Args, api_socket: Option<&Path>) -> miette::Result<ExitCode> {
    let client = super::client_util::client(api_socket)?;
    match args.command {
        Sub::Add {
            id,
            pod,
            labels,
            ipv4,
            ipv6,
            iface,
        } => {
            if pod.is_none() && labels.is_empty() {
                return Err(miette::miette!("give --pod NAMESPACE/NAME or --labels"));
            }
            let id = match id {
                Some(0) => return Err(miette::miette!("endpoint id 0 is reserved")),
                Some(id) => id,
                None => {
                    let eps: Vec<EndpointStatus> = client.get("/v1/endpoint")?;
                    (1..=u16::MAX)
                        .find(|i| eps.iter().all(|e| e.id != *i))
                        .ok_or_else(|| miette::miette!("no free endpoint id"))?
                }
            };
            let spec = EndpointSpec {
                id,
                iface,
                labels,
                ipv4,
                ipv6,
                pod,
                container_id: None,
            };
            let r: RevisionReply =
                client.call(Method::PUT, &format!("/v1/endpoint/{id}"), Some(&spec))?;
            println!("Endpoint {id} created (revision {})", r.revision);
        }
        Sub::List { output } => {
            let eps: Vec<EndpointStatus> = client.get("/v1/endpoint")?;
            if output.is_some() {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&eps).map_err(|e| miette::miette!("{e}"))?
                );
            } else {
                print!("{}", render_list(&eps));
            }
        }
        Sub::Delete { id } => {
            let r: RevisionReply =
                client.call(Method::DELETE, &format!("/v1/endpoint/{id}"), None::<&()>)?;
            println!("Endpoint {id} deleted (revision {})", r.revision);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The seed's `cilium endpoint list` table for the agent's endpoints.
pub fn render_list(eps: &[EndpointStatus]) -> String {
    let rows: Vec<Row> = eps
        .iter()
        .map(|e| Row {
            endpoint: e.id.to_string(),
            ingress_enforced: e.ingress_enforced,
            egress_enforced: e.egress_enforced,
            identity: e.identity,
            labels: e.labels.clone(),
            ipv6: e.ipv6.map(|a| a.to_string()).unwrap_or_default(),
            ipv4: e.ipv4.map(|a| a.to_string()).unwrap_or_default(),
            status: e.state.clone(),
            detail: e
                .container_id
                .as_ref()
                .map(|c| format!("container:{}", c.chars().take(12).collect::<String>())),
        })
        .collect();
    render(&rows)
}
