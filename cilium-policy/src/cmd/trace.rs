//! `cilium-policy trace`: explain why a flow is allowed or denied, rule by rule (seed §5.3).

use super::semload::{config, load_failed, InputArgs, TextOrJson as Output};
use compiler::trace::{render, trace_files, HttpRequest, PartySpec, Query, TraceFilesError};
use ir::{NumericIdentity, Protocol};
use miette::miette;
use std::net::IpAddr;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub input: InputArgs,
    /// Source endpoint: `namespace/pod` or `namespace/workload` from the inventory.
    #[arg(long)]
    pub src: Option<String>,
    /// Destination endpoint: `namespace/pod` or `namespace/workload`.
    #[arg(long)]
    pub dst: Option<String>,
    /// Source labels of a hypothetical endpoint (`id.curl`, `k8s:id=app2,k8s:io.kubernetes.pod.namespace=default`).
    #[arg(short = 's', long = "src-labels")]
    pub src_labels: Vec<String>,
    /// Destination labels of a hypothetical endpoint.
    #[arg(short = 'd', long = "dst-labels")]
    pub dst_labels: Vec<String>,
    /// Source security identity (e.g. 1 for the host, 2 for world).
    #[arg(long)]
    pub src_identity: Option<u32>,
    /// Destination security identity.
    #[arg(long)]
    pub dst_identity: Option<u32>,
    /// Source address (a peer outside the cluster, or a pod's address).
    #[arg(long)]
    pub src_ip: Option<IpAddr>,
    /// Destination address.
    #[arg(long)]
    pub dst_ip: Option<IpAddr>,
    /// The DNS name `--dst-ip` was resolved from: `toFQDNs` peers whose `matchName` /
    /// `matchPattern` matches it select the address, as the agent's learned addresses.
    #[arg(long, requires = "dst_ip")]
    pub dst_fqdn: Option<String>,
    /// Destination Service `namespace/name` (`name` alone: namespace `default`): traces to each
    /// of its backends, the pods its selector matches or the addresses of its EndpointSlices.
    #[arg(long)]
    pub dst_service: Option<String>,
    /// Destination port and protocol: `80`, `80/tcp`, `53/udp`, `9000/sctp` (TCP when omitted).
    #[arg(long)]
    pub dport: String,
    /// HTTP method of the request (evaluates L7 rules).
    #[arg(long)]
    pub http_method: Option<String>,
    /// HTTP path of the request.
    #[arg(long)]
    pub http_path: Option<String>,
    /// HTTP Host header of the request.
    #[arg(long)]
    pub http_host: Option<String>,
    /// HTTP header `Name: value` of the request (repeatable).
    #[arg(long)]
    pub http_header: Vec<String>,
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: Output,
}

/// `PORT[/PROTO]` of the flag `flag` (TCP when the protocol is omitted).
pub fn parse_port(flag: &str, s: &str) -> miette::Result<(u16, Protocol)> {
    let (port, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    let port: u16 = port
        .trim()
        .parse()
        .map_err(|_| miette!("{flag} `{s}`: `{port}` is not a port number (0-65535)"))?;
    let proto = Protocol::parse(proto.trim())
        .filter(|p| *p != Protocol::Any)
        .ok_or_else(|| {
            miette!("{flag} `{s}`: unknown protocol `{proto}` (tcp, udp, sctp, icmp, icmpv6)")
        })?;
    Ok((port, proto))
}

fn spec(
    which: &str,
    ep: &Option<String>,
    labels: &[String],
    id: Option<u32>,
    ip: Option<IpAddr>,
    service: Option<&String>,
) -> miette::Result<PartySpec> {
    let mut found = Vec::new();
    if let Some(s) = service {
        found.push(PartySpec::Service(s.clone()));
    }
    if let Some(e) = ep {
        found.push(PartySpec::Endpoint(e.clone()));
    }
    if !labels.is_empty() {
        found.push(PartySpec::Labels(compiler::labelsel::parse_labels(
            &labels.join(","),
        )?));
    }
    if let Some(i) = id {
        found.push(PartySpec::Identity(NumericIdentity(i)));
    }
    if let Some(a) = ip {
        found.push(PartySpec::Addr(a));
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(miette!("no {which} given: use --{which}, -{}, --{which}-identity or --{which}-ip{}", &which[..1], services(which))),
        _ => Err(miette!("give the {which} once: --{which}, -{}, --{which}-identity, --{which}-ip{} exclude each other", &which[..1], services(which))),
    }
}

/// A DNS name as `--dst-fqdn` takes it: labels of `[-a-zA-Z0-9_]`, dot-separated.
fn is_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The service flag of a side, for messages (only the destination has one).
fn services(which: &str) -> &'static str {
    if which == "dst" {
        " or --dst-service"
    } else {
        ""
    }
}

fn http(a: &Args) -> miette::Result<Option<HttpRequest>> {
    if a.http_method.is_none()
        && a.http_path.is_none()
        && a.http_host.is_none()
        && a.http_header.is_empty()
    {
        return Ok(None);
    }
    let headers = a
        .http_header
        .iter()
        .map(|h| {
            h.split_once(':')
                .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| miette!("--http-header `{h}`: expected `Name: value`"))
        })
        .collect::<miette::Result<_>>()?;
    Ok(Some(HttpRequest {
        method: a.http_method.clone().unwrap_or_else(|| "GET".into()),
        path: a.http_path.clone().unwrap_or_else(|| "/".into()),
        host: a.http_host.clone().unwrap_or_default(),
        headers,
    }))
}

pub fn run(a: Args) -> miette::Result<ExitCode> {
    let (port, proto) = parse_port("--dport", &a.dport)?;
    let src = spec("src", &a.src, &a.src_labels, a.src_identity, a.src_ip, None)?;
    let dst = spec(
        "dst",
        &a.dst,
        &a.dst_labels,
        a.dst_identity,
        a.dst_ip,
        a.dst_service.as_ref(),
    )?;
    let dst = match (dst, &a.dst_fqdn) {
        (_, Some(name)) if !is_dns_name(name) => {
            return Err(miette!(
                "--dst-fqdn `{name}`: not a DNS name (letters, digits, `-`, `_` and dots)"
            ))
        }
        (PartySpec::Addr(addr), Some(name)) => PartySpec::Resolved {
            name: name.clone(),
            addr,
        },
        (dst, _) => dst,
    };
    let to_service = a.dst_service.is_some();
    let query = Query {
        src,
        dst,
        protocol: proto,
        port,
        http: http(&a)?,
    };
    let (policy, traces) =
        trace_files(&a.input.files, config(&a.input)?, &query).map_err(|e| match e {
            TraceFilesError::Load(e) => load_failed(e),
            e => miette::Report::new(e),
        })?;
    match (a.output, to_service) {
        (Output::Text, _) => {
            let texts: Vec<String> = traces.iter().map(|t| render::text(&policy, t)).collect();
            print!("{}", texts.join("\n"));
            if to_service {
                let allowed = traces.iter().filter(|t| t.allowed).count();
                println!(
                    "\nService verdict: allowed to {allowed} of {} backend(s)",
                    traces.len()
                );
            }
        }
        (Output::Json, false) => println!(
            "{}",
            serde_json::to_string_pretty(&render::json(&policy, &traces[0])).unwrap_or_default()
        ),
        (Output::Json, true) => {
            let all: Vec<_> = traces.iter().map(|t| render::json(&policy, t)).collect();
            println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default())
        }
    }
    Ok(ExitCode::SUCCESS)
}
