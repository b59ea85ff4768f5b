//! `world-all-ports`: an allow rule that opens every port to or from the internet (entity
//! `world`/`all`, `0.0.0.0/0`, `::/0`, or every peer).

use super::{cover, Context, LintRule};
use crate::declare_code;
use crate::diag::{Code, Diagnostic};
use ir::{Action, Direction, Entity, Peer, PeerSet};

declare_code!(
    CODE,
    "CP2004",
    "world-all-ports",
    Warning,
    "An allow rule admits traffic to or from outside the cluster on every port and protocol: \
     its peers include the entity `world` (or `world-ipv4`, `world-ipv6`, `all`), the CIDR \
     `0.0.0.0/0` or `::/0` without exceptions, or every peer (an empty NetworkPolicy rule `{}`), \
     and it has no port restriction. This is rarely intended outside an explicit allow-all \
     policy; add `toPorts`/`ports` for the services that need it, or narrow the peers."
);

pub struct WorldAllPorts;

impl LintRule for WorldAllPorts {
    fn code(&self) -> &'static Code {
        &CODE
    }

    fn check(&self, cx: &Context<'_>, out: &mut Vec<Diagnostic>) {
        for rule in &cx.policy.rules {
            if rule.action != Action::Allow
                || !(rule.ports.is_empty() || rule.ports.iter().any(cover::every_port))
            {
                continue;
            }
            let world = match &rule.peers {
                PeerSet::Any => Some("every peer, including the internet,".to_string()),
                PeerSet::Some(peers) => peers.iter().find_map(world_peer),
            };
            let Some(world) = world else { continue };
            let dir = match rule.direction {
                Direction::Ingress => "from",
                Direction::Egress => "to",
            };
            let message = format!("this rule allows traffic {dir} {world} on every port");
            let help = "restrict the rule to the ports that need to be reachable (toPorts / ports), or narrow its peers";
            out.push(cx.at_rule(&CODE, rule, message).with_help(help));
        }
    }
}

fn world_peer(p: &Peer) -> Option<String> {
    match p {
        Peer::Entity(e @ (Entity::World | Entity::WorldIpv4 | Entity::WorldIpv6 | Entity::All)) => {
            Some(format!("entity `{e}`"))
        }
        Peer::Cidr { set, .. } if set.cidr.prefix_len() == 0 && set.except.is_empty() => {
            Some(format!("`{}`", set.cidr))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::testutil::*;
    use ir::{Entity, PortSpec, Protocol};

    #[test]
    fn world_on_every_port() {
        let mut b = Builder::new();
        let web = b.sel(&[("app", "web")]);
        b.rule(web).entity(Entity::World).push(); // 0: reported
        b.rule(web).egress().cidr("0.0.0.0/0", &[]).push(); // 1: reported
        b.rule(web)
            .cidr("::/0", &[])
            .port(Protocol::Any, PortSpec::All)
            .push(); // 2: reported
        b.rule(web).push(); // 3: every peer, every port: reported
        b.rule(web).entity(Entity::World).tcp(443).push(); // port-restricted
        b.rule(web).cidr("0.0.0.0/0", &["10.0.0.0/8"]).push(); // excepts
        b.rule(web).deny().entity(Entity::World).push(); // deny
        b.rule(web).entity(Entity::Cluster).push(); // not world
        b.rule(web).tcp(80).push(); // L4-only rule
        let got = b.codes_at(&super::WorldAllPorts);
        assert_eq!(
            got,
            vec![("CP2004", 0), ("CP2004", 1), ("CP2004", 2), ("CP2004", 3)]
        );
    }
}
