//! `cilium-policy endpoints`: the seed's `cilium endpoint list` view (endpoint, ingress/egress
//! enforcement, identity, labels one per line, IPv6, IPv4, status).

use super::endpoint_table::{render, Row};
use super::semload::{load, InputArgs, TextOrJson as Output};
use serde_json::json;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub input: InputArgs,
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: Output,
}

pub fn run(a: Args) -> miette::Result<ExitCode> {
    let engine = load(&a.input)?;
    let mut rows = Vec::new();
    for ep in engine.cluster.endpoints() {
        let pol = engine.policy_of(&ep.name);
        let (ing, eg) = pol.map_or((false, false), |p| (p.ingress_enforced, p.egress_enforced));
        let relevant = engine
            .cluster
            .identity(ep.identity)
            .map(|i| i.labels.clone())
            .unwrap_or_default();
        let v6: Vec<String> = ep
            .ips
            .iter()
            .filter(|i| i.is_ipv6())
            .map(|i| i.to_string())
            .collect();
        let v4: Vec<String> = ep
            .ips
            .iter()
            .filter(|i| i.is_ipv4())
            .map(|i| i.to_string())
            .collect();
        rows.push((ep, ing, eg, relevant, v6, v4));
    }
    match a.output {
        Output::Json => {
            let list: Vec<_> = rows
                .iter()
                .map(|(ep, ing, eg, labels, v6, v4)| {
                    json!({"endpoint": ep.name, "ingress_enforcement": ing, "egress_enforcement": eg,
                           "identity": ep.identity.0, "labels": labels.iter().map(|l| l.to_string()).collect::<Vec<_>>(),
                           "ipv6": v6, "ipv4": v4, "status": "ready"})
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&list).unwrap_or_default()
            );
        }
        Output::Text => {
            let table: Vec<Row> = rows
                .iter()
                .map(|(ep, ing, eg, labels, v6, v4)| Row {
                    endpoint: ep.name.clone(),
                    ingress_enforced: *ing,
                    egress_enforced: *eg,
                    identity: ep.identity.0,
                    labels: labels.iter().map(|l| l.to_string()).collect(),
                    ipv6: v6.join(","),
                    ipv4: v4.join(","),
                    status: "ready".into(),
                    detail: None,
                })
                .collect();
            print!("{}", render(&table));
        }
    }
    Ok(ExitCode::SUCCESS)
}
