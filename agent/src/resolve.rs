//! `GET /v1/policy/resolve?from=A&to=B&port=N&protocol=tcp`: the verdict the live state gives a
//! flow from endpoint A to endpoint B, looked up in both endpoints' map state the way the
//! datapath does (A's egress, then B's ingress). Endpoints are local ids or cluster names
//! (`namespace/pod`, `endpoint-ID`); a peer that is no endpoint can be given as an address.
//! Local endpoints and addresses are answered from the snapshot; a cluster endpoint no local
//! endpoint stands for (an applied Pod on no local interface) has its map state only in the
//! world's policy engine, which the snapshot does not copy (it would cost every write the whole
//! cluster): such a query reads the world, waiting for a write's in-memory part.

use super::error::AgentError;
use super::snapshot::Snapshot;
use super::world::World;
use compiler::policy::{lookup, Lookup};
use ir::{Direction, EndpointPolicy, NumericIdentity, RuleId};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

/// One side of the flow: a cluster endpoint (with its map state when it is local) or an address.
struct Side {
    name: String,
    identity: NumericIdentity,
    addr: Option<IpAddr>,
    policy: Option<Arc<EndpointPolicy>>,
}

/// The side `s` names in `snap`; `None` for a cluster endpoint that is not local.
fn snapshot_side(snap: &Snapshot, s: &str) -> Result<Option<Side>, AgentError> {
    if let Ok(addr) = s.parse::<IpAddr>() {
        return Ok(Some(Side {
            name: s.into(),
            identity: snap.identity_of_addr(addr),
            addr: Some(addr),
            policy: None,
        }));
    }
    let view = match s.parse::<u16>() {
        Ok(id) => Some(
            snap.endpoints
                .get(&id)
                .ok_or_else(|| AgentError::NotFound(format!("endpoint {id} not found")))?,
        ),
        Err(_) => snap.endpoints.values().find(|v| v.name == s),
    };
    Ok(view.map(|v| Side {
        name: v.name.clone(),
        identity: NumericIdentity(v.status.identity),
        addr: v.addr,
        policy: v.policy.clone(),
    }))
}

fn world_side(world: &World, s: &str) -> Result<Side, AgentError> {
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
        policy: world.engine.endpoint_policy(&name).map(Arc::new),
    })
}

fn describe(location: &dyn Fn(RuleId) -> String, l: &Lookup) -> serde_json::Value {
    let rules = |ids: &[ir::RuleId]| ids.iter().map(|r| location(*r)).collect::<Vec<_>>();
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

fn param<'a>(q: &'a BTreeMap<String, String>, k: &str) -> Result<&'a String, AgentError> {
    q.get(k)
        .ok_or_else(|| AgentError::invalid(format!("missing query parameter {k}")))
}

/// The query answered from `snap`, or from `world` when it names a cluster endpoint that is not
/// local (see the module's documentation).
pub fn resolve(
    snap: &Snapshot,
    world: &RwLock<World>,
    q: &BTreeMap<String, String>,
) -> Result<serde_json::Value, AgentError> {
    let from = snapshot_side(snap, param(q, "from")?)?;
    let to = match from {
        Some(_) => snapshot_side(snap, param(q, "to")?)?,
        None => None,
    };
    match (from, to) {
        (Some(from), Some(to)) => answer(q, from, to, &|r| snap.rules.location(r)),
        _ => resolve_in_world(&world.read().unwrap_or_else(|e| e.into_inner()), q),
    }
}

/// The query answered from the world alone.
pub fn resolve_in_world(
    world: &World,
    q: &BTreeMap<String, String>,
) -> Result<serde_json::Value, AgentError> {
    let from = world_side(world, param(q, "from")?)?;
    let to = world_side(world, param(q, "to")?)?;
    answer(q, from, to, &|r| world.engine.policy.location(r))
}

fn answer(
    q: &BTreeMap<String, String>,
    from: Side,
    to: Side,
    location: &dyn Fn(RuleId) -> String,
) -> Result<serde_json::Value, AgentError> {
    let port: u16 = param(q, "port")?
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
        "egress": egress.as_ref().map(|l| describe(location, l)),
        "ingress": ingress.as_ref().map(|l| describe(location, l)),
        "verdict": if allowed { "allowed" } else { "denied" },
    }))
}
