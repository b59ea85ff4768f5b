//! `cilium-policy connectivity`: every endpoint pair (and world) with the protocols and ports
//! (ICMP types for ICMP/ICMPv6) allowed between them, computed from the map state.

use super::semload::{load, InputArgs};
use compiler::policy::connectivity::{allowed_ranges, is_full, End, PortRange, PROTOCOLS};
use compiler::policy::PolicyEngine;
use ir::{NumericIdentity, Protocol};
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

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub input: InputArgs,
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: Output,
}

/// One allowed pair.
pub struct Conn {
    pub src: String,
    pub dst: String,
    pub ranges: Vec<PortRange>,
}

/// `TCP 80, UDP 53, SCTP 1000-2000, ICMP type 8, ICMPv6 *`, or `all` when every port and every
/// ICMP type of every protocol is open.
pub fn ports_text(ranges: &[PortRange]) -> String {
    let full = |p: &Protocol| ranges.iter().any(|r| r.protocol == *p && is_full(r));
    if PROTOCOLS.iter().all(full) {
        return "all".into();
    }
    let list: Vec<String> = ranges
        .iter()
        .map(|r| {
            let icmp = matches!(r.protocol, Protocol::Icmp | Protocol::IcmpV6);
            match (r.first, r.last) {
                _ if is_full(r) => format!("{} *", r.protocol),
                (a, b) if a == b && icmp => format!("{} type {a}", r.protocol),
                (a, b) if icmp => format!("{} types {a}-{b}", r.protocol),
                (a, b) if a == b => format!("{} {a}", r.protocol),
                (a, b) => format!("{} {a}-{b}", r.protocol),
            }
        })
        .collect();
    list.join(", ")
}

/// Every allowed connection between endpoints, from world to endpoints, and from endpoints to world.
pub fn connections(e: &PolicyEngine) -> Vec<Conn> {
    let world = End {
        policy: None,
        identity: NumericIdentity::WORLD,
        addr: None,
    };
    let ends: Vec<(String, End)> = e
        .cluster
        .endpoints()
        .map(|ep| {
            (
                ep.name.clone(),
                End {
                    policy: e.policy_of(&ep.name),
                    identity: ep.identity,
                    addr: ep.ips.first().copied(),
                },
            )
        })
        .collect();
    let mut out = Vec::new();
    let mut push = |src: &str, dst: &str, s: End, d: End| {
        let ranges = allowed_ranges(s, d);
        if !ranges.is_empty() {
            out.push(Conn {
                src: src.to_string(),
                dst: dst.to_string(),
                ranges,
            });
        }
    };
    for (sn, s) in &ends {
        for (dn, d) in &ends {
            if sn != dn {
                push(sn, dn, *s, *d);
            }
        }
        push(sn, "world", *s, world);
    }
    for (dn, d) in &ends {
        push("world", dn, world, *d);
    }
    out
}

fn render(conns: &[Conn], o: Output) -> String {
    let mut s = String::new();
    match o {
        Output::Text => {
            let mut last = "";
            for c in conns {
                if c.src != last {
                    let _ = writeln!(s, "{}", c.src);
                    last = &c.src;
                }
                let _ = writeln!(s, "  => {:<40} {}", c.dst, ports_text(&c.ranges));
            }
        }
        Output::Tsv => {
            let _ = writeln!(s, "src\tdst\tproto\tports");
            for c in conns {
                for r in &c.ranges {
                    let _ = writeln!(
                        s,
                        "{}\t{}\t{}\t{}-{}",
                        c.src,
                        c.dst,
                        r.protocol.name().to_lowercase(),
                        r.first,
                        r.last
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
                            json!({"protocol": r.protocol.name(), "unit": unit, "first": r.first, "last": r.last})
                        })
                        .collect();
                    json!({"src": c.src, "dst": c.dst, "ports": ports})
                })
                .collect();
            s = serde_json::to_string_pretty(&list).unwrap_or_default() + "\n";
        }
        Output::Md => {
            let _ = writeln!(s, "| source | destination | allowed |\n|---|---|---|");
            for c in conns {
                let _ = writeln!(s, "| {} | {} | {} |", c.src, c.dst, ports_text(&c.ranges));
            }
        }
        Output::Dot => {
            let _ = writeln!(s, "digraph connectivity {{");
            for c in conns {
                let _ = writeln!(
                    s,
                    "  {:?} -> {:?} [label={:?}];",
                    c.src,
                    c.dst,
                    ports_text(&c.ranges)
                );
            }
            let _ = writeln!(s, "}}");
        }
    }
    s
}

pub fn run(a: Args) -> miette::Result<ExitCode> {
    let engine = load(&a.input)?;
    print!("{}", render(&connections(&engine), a.output));
    Ok(ExitCode::SUCCESS)
}
