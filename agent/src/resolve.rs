//! `GET /v1/policy/resolve?from=A&to=B&port=N&protocol=tcp`: the verdict the live state gives a
//! flow from endpoint A to endpoint B, looked up in both endpoints' map state the way the
//! datapath does (A's egress, then B's ingress). Endpoints are local ids or cluster names
//! (`namespace/pod`, `endpoint-ID`); a peer that is no endpoint can be given as an address.

use super::error::AgentError;
use super::world::World;
use compiler::policy::{lookup, Lookup};
use ir::{Direction, NumericIdentity};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// One side of the flow: a cluster endpoint (with its map state when it is local) or an address.
struct Side {
    name: String,
    identity: NumericIdentity,
    addr: Option<IpAddr>,
    policy: Option<ir::EndpointPolicy>,
}

fn side(world: &World, s: &str) -> Result<Side, AgentError> {
    let cluster = &world.engine.cluster;
    if let Ok(addr) = s.parse::<IpAddr>() {
        return Ok(Side {
            name: s.into(),
            identity: cluster.identity_of_addr(addr),
            addr: Some(addr),
            policy: None,
        });
    }
    let name = match s.parse::<u16>() {
        Ok(id) => world
            .endpoints
            .get(&id)
            .map(|e| e.name.clone())
            .ok_or_else(|| AgentError::NotFound(format!("endpoint {id} not found")))?,
        Err(_) => s.to_string(),
    };
    let ep = cluster
        .endpoint(&name)
        .ok_or_else(|| AgentError::NotFound(format!("endpoint {name} not found")))?;
    Ok(Side {
        name: name.clone(),
        identity: ep.identity,
        addr: ep.ips.first().copied(),
        policy: world.engine.endpoint_policy(&name),
    })
}

fn describe(world: &World, l: &Lookup) -> serde_json::Value {
    let rules = |ids: &[ir::RuleId]| {
        ids.iter()
            .map(|r| world.engine.policy.location(*r))
            .collect::<Vec<_>>()
    };
    match l {
        Lookup::NotEnforced => {
            json!({"allowed": true, "why": "no rule selects the endpoint in this direction"})
        }
        Lookup::Entry {
            verdict, rules: r, ..
        }
        | Lookup::Address { verdict, rules: r } => {
            json!({"allowed": l.allowed(), "verdict": format!("{verdict:?}"), "rules": rules(r)})
        }
        Lookup::NoEntry => json!({"allowed": false, "why": "enforced and no rule allows it"}),
    }
}

pub fn resolve(
    world: &World,
    q: &BTreeMap<String, String>,
) -> Result<serde_json::Value, AgentError> {
    let get = |k: &str| {
        q.get(k)
            .ok_or_else(|| AgentError::invalid(format!("missing query parameter {k}")))
    };
    let from = side(world, get("from")?)?;
    let to = side(world, get("to")?)?;
    let port: u16 = get("port")?
        .parse()
        .map_err(|_| AgentError::invalid("port must be 0-65535"))?;
    let proto = q.get("protocol").map_or("tcp", String::as_str);
    let protocol = ir::Protocol::parse(proto)
        .filter(|p| *p != ir::Protocol::Any)
        .ok_or_else(|| AgentError::invalid(format!("unknown protocol {proto}")))?
        .number();
    let egress = from
        .policy
        .as_ref()
        .map(|p| lookup(p, Direction::Egress, to.identity, to.addr, protocol, port));
    let ingress = to.policy.as_ref().map(|p| {
        lookup(
            p,
            Direction::Ingress,
            from.identity,
            from.addr,
            protocol,
            port,
        )
    });
    let allowed =
        egress.as_ref().is_none_or(Lookup::allowed) && ingress.as_ref().is_none_or(Lookup::allowed);
    Ok(json!({
        "from": {"name": from.name, "identity": from.identity.0},
        "to": {"name": to.name, "identity": to.identity.0},
        "protocol": proto, "port": port,
        "egress": egress.as_ref().map(|l| describe(world, l)),
        "ingress": ingress.as_ref().map(|l| describe(world, l)),
        "verdict": if allowed { "allowed" } else { "denied" },
    }))
}
