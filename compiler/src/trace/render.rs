//! Trace output: the seed §5.3 text layout, and JSON with `verdict` and rule provenance.

use super::eval::{RuleMatch, Side, SideVerdict, Trace};
use super::l7::L7Verdict;
use ir::{Action, Peer, PeerSet, PolicySet, RuleId};
use serde_json::{json, Value};
use std::fmt::Write;

fn peers(policy: &PolicySet, id: RuleId) -> String {
    let r = policy.rule(id);
    let word = if r.action == Action::Deny {
        "Denies"
    } else {
        "Allows"
    };
    let from = if r.direction == ir::Direction::Ingress {
        "from"
    } else {
        "to"
    };
    let list: Vec<String> = match &r.peers {
        PeerSet::Any => vec!["any peer".into()],
        PeerSet::Some(p) if p.is_empty() => {
            return "Selects the endpoint only (enforcement, no peer)".into()
        }
        PeerSet::Some(p) => p
            .iter()
            .map(|p| match p {
                Peer::Endpoints(h) => format!("labels {}", policy.selectors[*h]),
                Peer::Cidr { set, by_address } => format!(
                    "CIDR {set}{}",
                    if *by_address { " (by address)" } else { "" }
                ),
                Peer::Entity(e) => format!("entity {e}"),
                Peer::CidrGroup { name, except } => {
                    let mut g = format!("CIDR group {name}");
                    for e in except {
                        write!(g, " except {e}").ok();
                    }
                    g
                }
                Peer::Fqdn(ir::DnsRule::MatchName(n)) => format!("FQDN matchName {n}"),
                Peer::Fqdn(ir::DnsRule::MatchPattern(p)) => format!("FQDN matchPattern {p}"),
                Peer::Nodes(h) => format!("nodes {}", policy.selectors[*h]),
                Peer::Service {
                    name,
                    namespace,
                    selector,
                } => {
                    let ns = namespace.as_deref().unwrap_or("*");
                    match (name, selector) {
                        (Some(n), _) => format!("service {ns}/{n}"),
                        (None, Some(h)) => {
                            format!("services in {ns} labelled {}", policy.selectors[*h])
                        }
                        (None, None) => format!("services in {ns}"),
                    }
                }
            })
            .collect(),
    };
    let mut s = format!("{word} {from} {}", list.join(", "));
    for q in &r.requires {
        write!(s, "; requires {}", policy.selectors[*q]).ok();
    }
    s
}

fn ports(policy: &PolicySet, id: RuleId) -> String {
    let r = policy.rule(id);
    if r.ports.is_empty() {
        return "all ports".into();
    }
    let list: Vec<String> = r
        .ports
        .iter()
        .map(|p| format!("{p}{}", if p.l7.is_some() { " +L7" } else { "" }))
        .collect();
    format!("port [{}]", list.join(", "))
}

fn verdict_word(v: SideVerdict) -> &'static str {
    match v {
        SideVerdict::NotManaged => "allowed (not a Cilium endpoint, no policy)",
        SideVerdict::NotEnforced => "allowed (no rule selects the endpoint: default allow)",
        SideVerdict::Allowed => "allowed",
        SideVerdict::DeniedByRule => "denied (deny rule)",
        SideVerdict::DeniedDefault => "denied (no rule allows it)",
        SideVerdict::AllowedNoDefaultDeny => {
            "allowed (no rule allows or denies it; enableDefaultDeny is false)"
        }
    }
}

fn write_side(out: &mut String, policy: &PolicySet, s: &Side, l4: bool) {
    let mut n = 0;
    for m in &s.rules {
        let ok = m.l3 && (!l4 || m.l4);
        n += ok as usize;
        let _ = writeln!(
            out,
            "* Rule {}: {}",
            policy.describe_rule(m.rule),
            if ok { "match" } else { "no match" }
        );
        let _ = writeln!(out, "    {}", peers(policy, m.rule));
        let _ = writeln!(
            out,
            "{}",
            if m.l3 {
                "+   Found all required labels"
            } else {
                "-   Peer does not match"
            }
        );
        if l4 {
            let _ = writeln!(
                out,
                "    {} {}: {}",
                if m.action == Action::Deny {
                    "Denies"
                } else {
                    "Allows"
                },
                ports(policy, m.rule),
                if m.l4 {
                    "port matches"
                } else {
                    "port does not match"
                }
            );
        }
    }
    let _ = writeln!(out, "{n} rules matched");
}

/// The seed §5.3 text layout, ending with `Verdict: allowed|denied`.
pub fn text(policy: &PolicySet, t: &Trace) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Tracing From: [{}] => To: [{}] Ports: [{}/{}]",
        party(&t.src),
        party(&t.dst),
        t.port,
        t.protocol
    );
    let _ = writeln!(o);
    let _ = writeln!(o, "Resolving ingress policy for [{}]", t.dst.display);
    write_side(&mut o, policy, &t.ingress, false);
    let _ = writeln!(o, "L3 verdict: {}", verdict_word(t.l3));
    for (name, s, who) in [
        ("egress", &t.egress, &t.src),
        ("ingress", &t.ingress, &t.dst),
    ] {
        let _ = writeln!(o);
        let _ = writeln!(o, "Resolving {name} port policy for [{}]", who.display);
        write_side(&mut o, policy, s, true);
        if s.by_localhost {
            let _ = writeln!(
                o,
                "    Allowed: traffic from the local host to its endpoints is always allowed"
            );
        }
        let _ = writeln!(o, "L4 {name} verdict: {}", verdict_word(s.verdict));
        if !s.audited_by.is_empty() {
            let _ = writeln!(
                o,
                "    Audit: would be denied by {}",
                audited(policy, &s.audited_by)
            );
        }
        match &s.l7 {
            L7Verdict::NotRedirected => {}
            L7Verdict::Redirected => {
                let _ = writeln!(o, "L7 {name}: redirected to the proxy (pass --http-method/--http-path to evaluate a request)");
            }
            L7Verdict::Allowed => {
                let _ = writeln!(o, "L7 {name} verdict: allowed");
            }
            L7Verdict::Denied => {
                let _ = writeln!(
                    o,
                    "L7 {name} verdict: denied (the proxy answers 403 Forbidden)"
                );
            }
        }
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "Verdict: {}", overall(policy, t));
    o
}

/// `allowed`, `denied`, or `allowed (audit: would be denied by …)`.
pub fn overall(policy: &PolicySet, t: &Trace) -> String {
    if !t.allowed {
        return "denied".into();
    }
    let by: Vec<RuleId> = [&t.egress, &t.ingress]
        .iter()
        .flat_map(|s| s.audited_by.iter().copied())
        .collect();
    if by.is_empty() {
        "allowed".into()
    } else {
        format!(
            "allowed (audit: would be denied by {})",
            audited(policy, &by)
        )
    }
}

/// The audit-mode rules, described.
fn audited(policy: &PolicySet, rules: &[RuleId]) -> String {
    rules
        .iter()
        .map(|r| policy.describe_rule(*r))
        .collect::<Vec<_>>()
        .join("; ")
}

fn party(p: &super::Party) -> String {
    if p.info.labels.is_empty() {
        p.display.clone()
    } else {
        format!("{}", p.info.labels)
    }
}

fn side_json(policy: &PolicySet, s: &Side) -> Value {
    let rules: Vec<Value> = s
        .rules
        .iter()
        .map(|m: &RuleMatch| rule_json(policy, m))
        .collect();
    json!({
        "verdict": if s.verdict.allowed() && s.l7 != L7Verdict::Denied { "allowed" } else { "denied" },
        "reason": format!("{:?}", s.verdict),
        "enforced": !matches!(s.verdict, SideVerdict::NotEnforced | SideVerdict::NotManaged),
        "allowed_by_localhost": s.by_localhost,
        "audited_by": s.audited_by.iter().map(|r| {
            let p = &policy.rule(*r).provenance;
            json!({"id": r.0, "kind": p.kind.name(), "namespace": p.namespace, "name": p.name,
                   "location": policy.location(*r)})
        }).collect::<Vec<_>>(),
        "l7": format!("{:?}", s.l7),
        "rules": rules,
    })
}

fn rule_json(policy: &PolicySet, m: &RuleMatch) -> Value {
    let r = policy.rule(m.rule);
    let p = &r.provenance;
    json!({
        "id": m.rule.0,
        "kind": p.kind.name(),
        "namespace": p.namespace,
        "name": p.name,
        "direction": r.direction.name(),
        "index": p.rule_index,
        "location": policy.location(m.rule),
        "action": if m.action == Action::Deny { "deny" } else { "allow" },
        "l3_match": m.l3,
        "l4_match": m.l4,
        "matched": m.l3 && m.l4,
    })
}

/// JSON: `verdict` (`allowed`/`denied`), both parties, both sides with their rules.
pub fn json(policy: &PolicySet, t: &Trace) -> Value {
    let party = |p: &super::Party| {
        json!({
            "name": p.display,
            "endpoint": p.endpoint,
            "identity": p.info.id.0,
            "labels": p.info.labels.iter().map(|l| l.to_string()).collect::<Vec<_>>(),
            "address": p.addr.map(|a| a.to_string()),
        })
    };
    json!({
        "verdict": if t.allowed { "allowed" } else { "denied" },
        "audit": t.egress.audited_by.len() + t.ingress.audited_by.len() > 0,
        "src": party(&t.src),
        "dst": party(&t.dst),
        "protocol": t.protocol.name(),
        "port": t.port,
        "l3_verdict": if t.l3.allowed() { "allowed" } else { "denied" },
        "egress": side_json(policy, &t.egress),
        "ingress": side_json(policy, &t.ingress),
    })
}

/// One line saying why the flow got its verdict (for `test` mismatches).
pub fn reason(policy: &PolicySet, t: &Trace) -> String {
    let mut parts = Vec::new();
    for (name, s, who) in [
        ("egress", &t.egress, &t.src),
        ("ingress", &t.ingress, &t.dst),
    ] {
        let matched: Vec<String> = s
            .rules
            .iter()
            .filter(|m| m.l3 && m.l4)
            .map(|m| policy.describe_rule(m.rule))
            .collect();
        let what = match s.verdict {
            SideVerdict::NotManaged => continue,
            SideVerdict::NotEnforced => format!("{name} of {} not enforced", who.display),
            SideVerdict::Allowed if s.l7 == L7Verdict::Denied => {
                format!(
                    "{name} of {}: L7 rules deny the request ({})",
                    who.display,
                    matched.join("; ")
                )
            }
            SideVerdict::Allowed if s.by_localhost => {
                format!("{name} of {}: host always allowed", who.display)
            }
            SideVerdict::Allowed => format!(
                "{name} of {} allowed by {}",
                who.display,
                matched.join("; ")
            ),
            SideVerdict::DeniedByRule => format!(
                "{name} of {} denied by {}",
                who.display,
                s.rules
                    .iter()
                    .filter(|m| m.l3 && m.l4 && m.action == Action::Deny)
                    .map(|m| policy.describe_rule(m.rule))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            SideVerdict::DeniedDefault => {
                format!(
                    "{name} of {} enforced by {} rule(s), none allows it",
                    who.display,
                    s.rules.len()
                )
            }
            SideVerdict::AllowedNoDefaultDeny => format!(
                "{name} of {}: {} rule(s) without default deny, none denies it",
                who.display,
                s.rules.len()
            ),
        };
        if s.audited_by.is_empty() {
            parts.push(what);
        } else {
            parts.push(format!(
                "{what} (audit: would be denied by {})",
                audited(policy, &s.audited_by)
            ));
        }
    }
    parts.join("; ")
}
