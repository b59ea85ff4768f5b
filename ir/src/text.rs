//! The IR's text form (`cilium-policy compile --emit ir`), used in snapshot tests.

use crate::l4::PortSpec;
use crate::rule::{Action, Peer, PeerSet, PolicySet, Rule, RuleId};
use std::fmt::{self, Write};

/// Renders the whole policy set, one rule per paragraph, selectors by value.
pub fn render(set: &PolicySet) -> String {
    let mut out = String::new();
    for rule in &set.rules {
        write_rule(&mut out, set, rule).expect("writing to a String cannot fail");
    }
    out
}

/// The text of one rule of `set`, as [`render`] writes it (render's output is the rules' texts
/// in order).
pub fn render_rule(set: &PolicySet, id: RuleId) -> String {
    let mut out = String::new();
    write_rule(&mut out, set, set.rule(id)).expect("writing to a String cannot fail");
    out
}

fn write_rule(out: &mut String, set: &PolicySet, r: &Rule) -> fmt::Result {
    let p = &r.provenance;
    writeln!(out, "rule {}", set.describe_rule(r.id))?;
    writeln!(out, "  subject {}", set.selectors[r.subject])?;
    let action = match r.action {
        Action::Allow => "allow",
        Action::Deny => "deny",
    };
    match &r.peers {
        PeerSet::Any => writeln!(out, "  {action} from-or-to any")?,
        PeerSet::Some(peers) if peers.is_empty() => {
            writeln!(out, "  {action} none (enforce only)")?
        }
        PeerSet::Some(peers) => {
            for peer in peers {
                write!(out, "  {action} ")?;
                match peer {
                    Peer::Endpoints(s) => writeln!(out, "endpoints {}", set.selectors[*s])?,
                    Peer::Cidr { set: c, by_address } => writeln!(
                        out,
                        "cidr {c}{}",
                        if *by_address { " (by address)" } else { "" }
                    )?,
                    Peer::Entity(e) => writeln!(out, "entity {e}")?,
                    Peer::CidrGroup { name, except } => {
                        write!(out, "cidr-group {name}")?;
                        for e in except {
                            write!(out, " except {e}")?;
                        }
                        writeln!(out)?
                    }
                    Peer::Fqdn(d) => writeln!(out, "fqdn {d:?}")?,
                    Peer::Nodes(s) => writeln!(out, "nodes {}", set.selectors[*s])?,
                    Peer::Service {
                        name,
                        namespace,
                        selector,
                    } => {
                        write!(out, "service")?;
                        if let Some(n) = name {
                            write!(out, " {}/{n}", namespace.as_deref().unwrap_or(""))?;
                        }
                        if let Some(s) = selector {
                            write!(out, " {}", set.selectors[*s])?;
                        }
                        writeln!(out)?
                    }
                }
            }
        }
    }
    for q in &r.requires {
        writeln!(out, "  requires {}", set.selectors[*q])?;
    }
    if r.ports.is_empty() {
        writeln!(out, "  ports *")?;
    }
    for port in &r.ports {
        write!(out, "  port {}", port.protocol)?;
        if !matches!(port.port, PortSpec::All) {
            write!(out, " {}", port.port)?;
        }
        if let Some(l7) = &port.l7 {
            write!(out, " l7 {l7}")?;
        }
        writeln!(out)?;
    }
    if !p.labels.is_empty() {
        writeln!(out, "  labels {}", p.labels)?;
    }
    Ok(())
}
