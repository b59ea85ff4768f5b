//! `cilium-policy replay`: recorded flows (`monitor -o json` lines or the flow export) whose
//! verdict the given policies would change, with the deciding rules; exit codes as `diff`.

use super::semload::{load, InputArgs};
use super::verdicts::{reason, verdict_json};
use compiler::flow::{read_flows, replay, FlowVerdict, Replay, TrafficDirection};
use serde_json::json;
use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Text,
    Tsv,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The inventory and the policies to replay the flows on.
    #[command(flatten)]
    pub input: InputArgs,
    /// Flows, one JSON object per line: Hubble-style flows (`monitor -o json`) or the flow
    /// export's `{"flow": {...}, "node_name": ..., "time": ...}`.
    #[arg(long)]
    pub flows: PathBuf,
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: Output,
}

fn recorded(v: FlowVerdict) -> &'static str {
    match v {
        FlowVerdict::Forwarded => "FORWARDED",
        FlowVerdict::Dropped => "DROPPED",
        FlowVerdict::Audit => "AUDIT",
        FlowVerdict::Redirected => "REDIRECTED",
    }
}

fn replayed(passes: bool) -> &'static str {
    if passes {
        "FORWARDED"
    } else {
        "DROPPED"
    }
}

fn direction(d: TrafficDirection) -> &'static str {
    match d {
        TrafficDirection::Ingress => "INGRESS",
        TrafficDirection::Egress => "EGRESS",
        TrafficDirection::TrafficDirectionUnknown => "UNKNOWN",
    }
}

fn render(policy: &ir::PolicySet, path: &str, r: &Replay, o: Output) -> String {
    let mut s = String::new();
    match o {
        Output::Text => {
            for c in &r.changed {
                let _ = writeln!(
                    s,
                    "{path}:{}: {} -> {} {}/{} {}: {} -> {}\n  now: {}",
                    c.line,
                    c.src,
                    c.dst,
                    c.port,
                    c.protocol.name().to_lowercase(),
                    direction(c.flow.traffic_direction),
                    recorded(c.flow.verdict),
                    replayed(c.new_passes),
                    reason(policy, &c.new)
                );
            }
            let _ = writeln!(
                s,
                "{} of {} flows would change",
                r.changed.len(),
                r.compared
            );
        }
        Output::Tsv => {
            let _ = writeln!(s, "line\tsrc\tdst\tport\tproto\tdirection\told\tnew");
            for c in &r.changed {
                let _ = writeln!(
                    s,
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    c.line,
                    c.src,
                    c.dst,
                    c.port,
                    c.protocol.name().to_lowercase(),
                    direction(c.flow.traffic_direction),
                    recorded(c.flow.verdict),
                    replayed(c.new_passes)
                );
            }
        }
        Output::Json => {
            let list: Vec<_> = r
                .changed
                .iter()
                .map(|c| {
                    json!({"line": c.line, "src": c.src, "dst": c.dst, "port": c.port,
                           "proto": c.protocol.name().to_lowercase(),
                           "traffic_direction": direction(c.flow.traffic_direction),
                           "old": {"verdict": recorded(c.flow.verdict),
                                   "ingress_allowed_by": c.flow.ingress_allowed_by,
                                   "ingress_denied_by": c.flow.ingress_denied_by,
                                   "egress_allowed_by": c.flow.egress_allowed_by,
                                   "egress_denied_by": c.flow.egress_denied_by},
                           "new": verdict_json(policy, &c.new)})
                })
                .collect();
            let doc = json!({"compared": r.compared, "changes": list});
            s = serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
        }
    }
    s
}

fn skipped_note(path: &str, r: &Replay) {
    let k = &r.skipped;
    if k.l7 > 0 {
        eprintln!(
            "{path}: skipped {} L7 requests (replay judges connections, not requests)",
            k.l7
        );
    }
    if k.no_l4 > 0 {
        eprintln!(
            "{path}: skipped {} flows of protocols without ports or ICMP type",
            k.no_l4
        );
    }
    if k.replies + k.not_policy > 0 {
        eprintln!(
            "{path}: skipped {} replies and {} drops for reasons other than policy",
            k.replies, k.not_policy
        );
    }
    if let Some((line, name)) = k.unknown.first() {
        eprintln!(
            "{path}: skipped {} flows whose endpoint is not in the inventory (first {path}:{line}: {name})",
            k.unknown.len()
        );
    }
}

pub fn run(a: Args) -> miette::Result<ExitCode> {
    let flows = read_flows(&a.flows)?;
    let engine = load(&a.input)?;
    let r = replay(&engine, &flows);
    let path = a.flows.display().to_string();
    print!("{}", render(&engine.policy, &path, &r, a.output));
    skipped_note(&path, &r);
    Ok(if r.changed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
