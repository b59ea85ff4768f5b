//! `cilium-policy connectivity`: every endpoint pair (and world) with the protocols and ports
//! (ICMP types for ICMP/ICMPv6) allowed between them, computed from the map state per map state
//! and peer class (`compiler::policy::reach`), per pod or with the endpoints of one identity (and
//! container ports) collapsed into one row.

use super::semload::{load, InputArgs};
use compiler::policy::connectivity::{is_full, End, PortRange, PROTOCOLS};
use compiler::policy::reach::{parties, reach, Grouping, Party};
use ir::Protocol;
use serde_json::json;
use std::fmt::Write;
use std::process::ExitCode;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Text,
    Tsv,
    Json,
    Md,
    Dot,
}

/// What one row stands for.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// One row per endpoint.
    Pod,
    /// Endpoints sharing an identity (and container ports, hence a map state) collapse into one
    /// row with their count.
    Identity,
    /// The endpoints of one workload (`namespace/Kind/name`: a Pod's controller from its
    /// ownerReferences, a Deployment's ReplicaSet taken as the Deployment; a workload
    /// manifest's template) collapse into one row with their count.
    Workload,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub input: InputArgs,
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: Output,
    #[arg(long, value_enum, default_value = "pod")]
    pub group: Group,
}

/// One allowed pair.
pub struct Conn<'a> {
    pub src: &'a Party,
    pub dst: &'a Party,
    pub ranges: &'a [PortRange],
}

/// `TCP 80, UDP 53, SCTP 1000-2000, ICMP type 8, ICMPv6 *`, or `all` when every port and every
/// ICMP type of every protocol is open; ranges open only in audit mode end with ` (audit)`.
pub fn ports_text(ranges: &[PortRange]) -> String {
    let full = |p: &Protocol| {
        ranges
            .iter()
            .any(|r| r.protocol == *p && is_full(r) && !r.audit)
    };
    if PROTOCOLS.iter().all(full) {
        return "all".into();
    }
    let list: Vec<String> = ranges
        .iter()
        .map(|r| {
            let icmp = matches!(r.protocol, Protocol::Icmp | Protocol::IcmpV6);
            let text = match (r.first, r.last) {
                _ if is_full(r) => format!("{} *", r.protocol),
                (a, b) if a == b && icmp => format!("{} type {a}", r.protocol),
                (a, b) if icmp => format!("{} types {a}-{b}", r.protocol),
                (a, b) if a == b => format!("{} {a}", r.protocol),
                (a, b) => format!("{} {a}-{b}", r.protocol),
            };
            if r.audit {
                text + " (audit)"
            } else {
                text
            }
        })
        .collect();
    list.join(", ")
}

fn render(conns: &[Conn], g: Group, o: Output) -> String {
    let mut s = String::new();
    match o {
        Output::Text => {
            let mut last = "";
            for c in conns {
                if c.src.name != last {
                    let _ = writeln!(s, "{}{}", c.src.name, count(g, c.src));
                    last = &c.src.name;
                }
                let dst = format!("{}{}", c.dst.name, count(g, c.dst));
                let _ = writeln!(s, "  => {dst:<40} {}", ports_text(c.ranges));
            }
        }
        Output::Tsv => {
            match g {
                Group::Pod => {
                    let _ = writeln!(s, "src\tdst\tproto\tports\tverdict");
                }
                Group::Identity | Group::Workload => {
                    let header = "src\tsrc_count\tdst\tdst_count\tproto\tports\tverdict";
                    let _ = writeln!(s, "{header}");
                }
            }
            for c in conns {
                let (src, dst) = match g {
                    Group::Pod => (c.src.name.clone(), c.dst.name.clone()),
                    Group::Identity | Group::Workload => (
                        format!("{}\t{}", c.src.name, c.src.count),
                        format!("{}\t{}", c.dst.name, c.dst.count),
                    ),
                };
                for r in c.ranges {
                    let _ = writeln!(
                        s,
                        "{}\t{}\t{}\t{}-{}\t{}",
                        src,
                        dst,
                        r.protocol.name().to_lowercase(),
                        r.first,
                        r.last,
                        if r.audit { "audit" } else { "allow" }
                    );
                }
            }
        }
        Output::Json => {
            let list: Vec<_> = conns
                .iter()
                .map(|c| {
                    let ports: Vec<_> = c
                        .ranges
                        .iter()
                        .map(|r| {
                            let unit = match r.protocol {
                                Protocol::Icmp | Protocol::IcmpV6 => "type",
                                _ => "port",
                            };
                            let mut v = json!({"protocol": r.protocol.name(), "unit": unit, "first": r.first, "last": r.last});
                            if r.audit {
                                v["audit"] = json!(true);
                            }
                            v
                        })
                        .collect();
                    let party = |p: &Party| match g {
                        Group::Pod => json!(p.name),
                        Group::Identity | Group::Workload => {
                            json!({"name": p.name, "identity": p.identity.0, "endpoints": p.count})
                        }
                    };
                    json!({"src": party(c.src), "dst": party(c.dst), "ports": ports})
                })
                .collect();
            s = serde_json::to_string_pretty(&list).unwrap_or_default() + "\n";
        }
        Output::Md => {
            let _ = writeln!(s, "| source | destination | allowed |\n|---|---|---|");
            for c in conns {
                let _ = writeln!(
                    s,
                    "| {}{} | {}{} | {} |",
                    c.src.name,
                    count(g, c.src),
                    c.dst.name,
                    count(g, c.dst),
                    ports_text(c.ranges)
                );
            }
        }
        Output::Dot => {
            let _ = writeln!(s, "digraph connectivity {{");
            for c in conns {
                let _ = writeln!(
                    s,
                    "  {:?} -> {:?} [label={:?}];",
                    c.src.name,
                    c.dst.name,
                    ports_text(c.ranges)
                );
            }
            let _ = writeln!(s, "}}");
        }
    }
    s
}

/// ` ×N` after a group's name.
fn count(g: Group, p: &Party) -> String {
    match g {
        Group::Identity | Group::Workload if p.count > 0 => format!(" ×{}", p.count),
        _ => String::new(),
    }
}

pub fn run(a: Args) -> miette::Result<ExitCode> {
    let engine = load(&a.input)?;
    let grouping = match a.group {
        Group::Pod => Grouping::Endpoint,
        Group::Identity => Grouping::MapState,
        Group::Workload => Grouping::Workload,
    };
    let parties = parties(&engine, grouping);
    let ends: Vec<End> = parties.iter().map(|(_, e)| *e).collect();
    let r = reach(&ends, |i| parties[i].0.count > 1);
    let conns: Vec<Conn> = r
        .pairs
        .iter()
        .map(|&(s, d, k)| Conn {
            src: &parties[s as usize].0,
            dst: &parties[d as usize].0,
            ranges: &r.ranges[k as usize],
        })
        .collect();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    std::io::Write::write_all(&mut out, render(&conns, a.group, a.output).as_bytes())
        .and_then(|_| std::io::Write::flush(&mut out))
        .map_err(|e| miette::miette!("writing the output: {e}"))?;
    Ok(ExitCode::SUCCESS)
}
