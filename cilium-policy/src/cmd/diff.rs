//! `cilium-policy diff`: the connectivity difference between two policy sets over the same
//! inventory; exit 0 when nothing differs, 1 when something does, 2 on error (like diff(1)).

use super::semload::{config, load_failed, InputArgs};
use super::trace::parse_port;
use super::verdicts::{reason, verdict_json};
use compiler::diff::{diff, Diff, DiffError, DiffInput};
use ir::Protocol;
use serde_json::json;
use std::fmt::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Text,
    Tsv,
    Json,
    Md,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The inventory and the policies both sides share (`-f`), as for `connectivity`.
    #[command(flatten)]
    pub input: InputArgs,
    /// The old side's policy files or directories (policies only).
    #[arg(long, required = true, num_args = 1..)]
    pub old: Vec<PathBuf>,
    /// The new side's policy files or directories (policies only).
    #[arg(long, required = true, num_args = 1..)]
    pub new: Vec<PathBuf>,
    /// Ports compared besides those the rules name: `80,81/udp,9000/sctp` (TCP when omitted).
    #[arg(long)]
    pub ports: Option<String>,
    /// An address outside the cluster compared with every endpoint both ways (repeatable).
    #[arg(long)]
    pub peer: Vec<IpAddr>,
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: Output,
}

/// `80,81/udp,9000/sctp`.
pub fn parse_ports(s: &str) -> miette::Result<Vec<(Protocol, u16)>> {
    s.split(',')
        .map(|p| parse_port("--ports", p.trim()).map(|(port, proto)| (proto, port)))
        .collect()
}

fn proto(p: Protocol) -> String {
    p.name().to_lowercase()
}

fn render(d: &Diff, o: Output) -> String {
    let mut s = String::new();
    let p = &d.policy;
    match o {
        Output::Text => {
            for c in &d.changes {
                let _ = writeln!(
                    s,
                    "{} -> {} {}/{}: {} -> {}\n  old: {}\n  new: {}",
                    c.src,
                    c.dst,
                    c.port,
                    proto(c.protocol),
                    c.old.outcome().word(),
                    c.new.outcome().word(),
                    reason(p, &c.old),
                    reason(p, &c.new)
                );
            }
            let count = |f: fn(bool, bool) -> bool| {
                d.changes
                    .iter()
                    .filter(|c| f(c.old.allowed(), c.new.allowed()))
                    .count()
            };
            let denied = count(|old, new| old && !new);
            let allowed = count(|old, new| !old && new);
            let audit = d.changes.len() - denied - allowed;
            let _ = write!(
                s,
                "{} flows differ: {denied} allowed before and denied now, {allowed} denied before and allowed now",
                d.changes.len(),
            );
            if audit > 0 {
                let _ = write!(s, ", {audit} changed between allowed and audited");
            }
            s.push('\n');
        }
        Output::Tsv => {
            let _ = writeln!(s, "src\tdst\tport\tproto\told\tnew");
            for c in &d.changes {
                let _ = writeln!(
                    s,
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    c.src,
                    c.dst,
                    c.port,
                    proto(c.protocol),
                    c.old.outcome().word(),
                    c.new.outcome().word()
                );
            }
        }
        Output::Json => {
            let list: Vec<_> = d
                .changes
                .iter()
                .map(|c| {
                    json!({"src": c.src, "dst": c.dst, "port": c.port, "proto": proto(c.protocol),
                           "old": verdict_json(p, &c.old), "new": verdict_json(p, &c.new)})
                })
                .collect();
            s = serde_json::to_string_pretty(&json!({ "changes": list })).unwrap_or_default()
                + "\n";
        }
        Output::Md => {
            let _ = writeln!(
                s,
                "| source | destination | port | old | new | decided by (new) |\n|---|---|---|---|---|---|"
            );
            for c in &d.changes {
                let _ = writeln!(
                    s,
                    "| {} | {} | {}/{} | {} | {} | {} |",
                    c.src,
                    c.dst,
                    c.port,
                    proto(c.protocol),
                    c.old.outcome().word(),
                    c.new.outcome().word(),
                    reason(p, &c.new).replace('|', "\\|")
                );
            }
        }
    }
    s
}

pub fn run(a: Args) -> miette::Result<ExitCode> {
    let input = DiffInput {
        common: a.input.files.clone(),
        old: a.old,
        new: a.new,
        config: config(&a.input)?,
        ports: match &a.ports {
            Some(p) => parse_ports(p)?,
            None => Vec::new(),
        },
        peers: a.peer,
    };
    let d = diff(&input).map_err(|e| match e {
        DiffError::Load(e) => load_failed(e),
        e => miette::Report::new(e),
    })?;
    print!("{}", render(&d, a.output));
    Ok(if d.changes.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
