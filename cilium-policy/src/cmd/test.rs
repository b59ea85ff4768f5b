//! `cilium-policy test`: check expected verdicts (a TSV file of flows) against the policies;
//! exit 1 on any mismatch, listing each with the reason.

use super::semload::{load_cluster, InputArgs};
use compiler::trace::{render, resolve_party, trace, PartySpec};
use ir::{NumericIdentity, Protocol};
use miette::miette;
use serde_json::json;
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
    #[command(flatten)]
    pub input: InputArgs,
    /// TSV file with the header `src<TAB>dst<TAB>port<TAB>proto<TAB>verdict` (verdict `allow` or
    /// `deny`; src/dst are `namespace/pod`, an IP address, `identity:N`, `labels:k8s:a=b,...`,
    /// or `fqdn:NAME@IP`: the address NAME resolved to, as `trace --dst-fqdn NAME --dst-ip IP`).
    #[arg(long)]
    pub expect: PathBuf,
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: Output,
}

/// One expected flow.
struct Row {
    line: usize,
    src: String,
    dst: String,
    port: u16,
    proto: Protocol,
    expect: Outcome,
}

/// A flow's outcome: `allow`, `deny`, or `audit` (allowed only because the policy that would
/// deny it is in audit mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Allow,
    Deny,
    Audit,
}

impl Outcome {
    fn of(t: &compiler::trace::Trace) -> Outcome {
        let audited = !t.egress.audited_by.is_empty() || !t.ingress.audited_by.is_empty();
        match (t.allowed, audited) {
            (false, _) => Outcome::Deny,
            (true, true) => Outcome::Audit,
            (true, false) => Outcome::Allow,
        }
    }
    fn word(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::Audit => "audit",
        }
    }
}

fn party(s: &str) -> miette::Result<PartySpec> {
    if let Ok(a) = s.parse() {
        return Ok(PartySpec::Addr(a));
    }
    if let Some(n) = s.strip_prefix("identity:") {
        let n: u32 = n
            .parse()
            .map_err(|_| miette!("`{s}`: identity must be a number"))?;
        return Ok(PartySpec::Identity(NumericIdentity(n)));
    }
    if let Some(r) = s.strip_prefix("fqdn:") {
        let (name, addr) = r
            .split_once('@')
            .and_then(|(n, a)| Some((n, a.parse().ok()?)))
            .filter(|(n, _)| !n.is_empty())
            .ok_or_else(|| miette!("`{s}`: expected `fqdn:NAME@IP`"))?;
        return Ok(PartySpec::Resolved {
            name: name.to_string(),
            addr,
        });
    }
    if let Some(l) = s.strip_prefix("labels:") {
        return Ok(PartySpec::Labels(compiler::labelsel::parse_labels(l)?));
    }
    Ok(PartySpec::Endpoint(s.to_string()))
}

fn parse(path: &str, text: &str) -> miette::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut header = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim_end_matches('\r');
        if l.trim().is_empty() || l.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = l.split('\t').map(str::trim).collect();
        if !header {
            if f != ["src", "dst", "port", "proto", "verdict"] {
                return Err(miette!(
                    "{path}:{line}:1: expected the header `src\\tdst\\tport\\tproto\\tverdict`"
                ));
            }
            header = true;
            continue;
        }
        let [src, dst, port, proto, verdict] = f.as_slice() else {
            return Err(miette!(
                "{path}:{line}:1: expected 5 tab-separated fields, found {}",
                f.len()
            ));
        };
        let port: u16 = port
            .parse()
            .map_err(|_| miette!("{path}:{line}: field `port`: `{port}` is not a port number"))?;
        let proto = Protocol::parse(proto)
            .filter(|p| *p != Protocol::Any)
            .ok_or_else(|| {
                miette!(
                    "{path}:{line}: field `proto`: `{proto}` is not tcp, udp, sctp, icmp or icmpv6"
                )
            })?;
        let expect = match *verdict {
            "allow" => Outcome::Allow,
            "deny" => Outcome::Deny,
            "audit" => Outcome::Audit,
            v => {
                return Err(miette!(
                    "{path}:{line}: field `verdict`: `{v}` is not `allow`, `deny` or `audit`"
                ))
            }
        };
        rows.push(Row {
            line,
            src: src.to_string(),
            dst: dst.to_string(),
            port,
            proto,
            expect,
        });
    }
    if !header {
        return Err(miette!("{path}: empty expectation file (no header)"));
    }
    Ok(rows)
}

pub fn run(a: Args) -> miette::Result<ExitCode> {
    let path = a.expect.display().to_string();
    let text = std::fs::read_to_string(&a.expect).map_err(|e| miette!("{path}: {e}"))?;
    let rows = parse(&path, &text)?;
    let (policy, cluster) = load_cluster(&a.input)?;
    let mut results = Vec::new();
    for r in &rows {
        let at = |s: &str| -> miette::Result<_> {
            resolve_party(&cluster, &party(s)?).map_err(|e| miette!("{path}:{}: {e}", r.line))
        };
        let t = trace(
            &policy,
            &cluster,
            at(&r.src)?,
            at(&r.dst)?,
            r.proto,
            r.port,
            None,
        );
        results.push((r, Outcome::of(&t), render::reason(&policy, &t)));
    }
    let mismatch = |r: &Row, got: Outcome, why: &str| {
        format!(
            "{path}:{}: {} -> {} {}/{}: expected {}, got {}: {why}",
            r.line,
            r.src,
            r.dst,
            r.port,
            r.proto,
            r.expect.word(),
            got.word()
        )
    };
    let failed: Vec<_> = results
        .iter()
        .filter(|(r, got, _)| r.expect != *got)
        .collect();
    match a.output {
        Output::Tsv => {
            println!("src\tdst\tport\tproto\texpected\tactual");
            for (r, got, _) in &results {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    r.src,
                    r.dst,
                    r.port,
                    r.proto.name().to_lowercase(),
                    r.expect.word(),
                    got.word()
                );
            }
        }
        Output::Json => {
            let list: Vec<_> = results
                .iter()
                .map(|(r, got, why)| {
                    json!({"line": r.line, "src": r.src, "dst": r.dst, "port": r.port, "proto": r.proto.name().to_lowercase(),
                           "expected": r.expect.word(), "actual": got.word(), "ok": r.expect == *got, "reason": why})
                })
                .collect();
            let doc = json!({"passed": results.len() - failed.len(), "failed": failed.len(), "results": list});
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
        Output::Text => {
            for (r, got, why) in &failed {
                println!("{}", mismatch(r, *got, why));
            }
            println!(
                "{} flows, {} passed, {} failed",
                results.len(),
                results.len() - failed.len(),
                failed.len()
            );
        }
    }
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        if a.output != Output::Text {
            for (r, got, why) in &failed {
                eprintln!("{}", mismatch(r, *got, why));
            }
        }
        Ok(ExitCode::from(1))
    }
}
