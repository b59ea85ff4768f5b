//! ADD, DEL, CHECK and VERSION: one invocation from its environment and configuration to the
//! result or error object the runtime reads.

use crate::args::{conf_labels, parse_cni_args, pod_of};
use crate::host::{container_addrs, driver, host_veth};
use crate::types::{code, supported, version_info, CniError, NetConf, PrevResult};
use api::client::{Client, ClientError};
use api::model::{DatapathCheck, EndpointSpec, EndpointStatus, Healthz, RevisionReply};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// Where the agent listens when the configuration names no `apiSocket`.
pub const DEFAULT_SOCKET: &str = "/run/cilium-policy.sock";

/// What the runtime put in the environment (CNI spec, "Parameters").
#[derive(Clone, Debug, Default)]
pub struct Invocation {
    pub command: String,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub args: String,
}

impl Invocation {
    /// Reads the `CNI_*` variables.
    pub fn from_env() -> Invocation {
        let var = |k: &str| std::env::var(k).unwrap_or_default();
        Invocation {
            command: var("CNI_COMMAND"),
            container_id: var("CNI_CONTAINERID"),
            netns: var("CNI_NETNS"),
            ifname: var("CNI_IFNAME"),
            args: var("CNI_ARGS"),
        }
    }
}

/// One invocation's context: the configuration's version (errors are written in it).
struct Cx {
    version: String,
}

impl Cx {
    fn err(&self, code: u32, msg: impl Into<String>, details: impl Into<String>) -> CniError {
        CniError {
            cni_version: self.version.clone(),
            code,
            msg: msg.into(),
            details: details.into(),
        }
    }

    fn agent_err(&self, what: &str, e: ClientError) -> CniError {
        let code = match &e {
            ClientError::Connect { .. } | ClientError::Timeout(_) => code::TRY_AGAIN_LATER,
            ClientError::Api { .. } => code::AGENT_REFUSED,
            _ => code::IO,
        };
        self.err(code, format!("{what}: {e}"), "")
    }
}

/// Runs the plugin; `stdin` is the network configuration.
pub fn run(inv: &Invocation, stdin: &[u8]) -> Result<Value, CniError> {
    let early = Cx {
        version: "1.0.0".into(),
    };
    if inv.command == "VERSION" {
        // The configuration may be absent or minimal here.
        let v = serde_json::from_slice::<Value>(stdin)
            .ok()
            .and_then(|c| c.get("cniVersion")?.as_str().map(str::to_string))
            .unwrap_or_else(|| "1.0.0".into());
        return Ok(version_info(&v));
    }
    let conf: NetConf = serde_json::from_slice(stdin).map_err(|e| {
        early.err(
            code::DECODE,
            "cannot decode the network configuration",
            e.to_string(),
        )
    })?;
    let cx = Cx {
        version: conf.cni_version.clone(),
    };
    if !supported(&conf.cni_version) {
        return Err(cx.err(
            code::INCOMPATIBLE_VERSION,
            format!("CNI version {} is not supported", conf.cni_version),
            format!("supported: {}", crate::types::SUPPORTED_VERSIONS.join(", ")),
        ));
    }
    if inv.container_id.is_empty()
        || !inv
            .container_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(cx.err(
            code::INVALID_ENV,
            "CNI_CONTAINERID is missing or not [A-Za-z0-9_.-]",
            "",
        ));
    }
    let socket = PathBuf::from(conf.api_socket.as_deref().unwrap_or(DEFAULT_SOCKET));
    let limit = Duration::from_secs(conf.timeout_seconds.unwrap_or(60).clamp(1, 600));
    let client = Client::new(&socket)
        .map_err(|e| cx.agent_err("starting the agent client", e))?
        .with_timeout(limit);
    if inv.command != "DEL" && (inv.netns.is_empty() || inv.ifname.is_empty()) {
        return Err(cx.err(
            code::INVALID_ENV,
            format!("{} needs CNI_NETNS and CNI_IFNAME", inv.command),
            "",
        ));
    }
    let path = format!("/v1/endpoint/container-id:{}", inv.container_id);
    match inv.command.as_str() {
        "ADD" => add(&cx, inv, &conf, &client, &path),
        "DEL" => del(&cx, &client, &path),
        "CHECK" => check(&cx, &conf, &client, &path),
        other => Err(cx.err(
            code::INVALID_ENV,
            format!("CNI_COMMAND `{other}` is not ADD, DEL, CHECK or VERSION"),
            "",
        )),
    }
}

fn prev(cx: &Cx, conf: &NetConf) -> Result<(Value, PrevResult), CniError> {
    let raw = conf.prev_result.clone().ok_or_else(|| {
        cx.err(
            code::INVALID_CONFIG,
            "no prevResult: cilium-policy-cni is a chained plugin; list it after ptp or bridge",
            "",
        )
    })?;
    let parsed = serde_json::from_value(raw.clone())
        .map_err(|e| cx.err(code::DECODE, "cannot decode prevResult", e.to_string()))?;
    Ok((raw, parsed))
}

/// The host side of the container's veth named by the previous result.
fn container_veth(cx: &Cx, prev: &PrevResult) -> Result<String, CniError> {
    host_veth(prev, |n| driver(n).as_deref() == Some("veth"))
        .map_err(|m| cx.err(code::INVALID_CONFIG, m, ""))
}

fn add(
    cx: &Cx,
    inv: &Invocation,
    conf: &NetConf,
    client: &Client,
    path: &str,
) -> Result<Value, CniError> {
    let (mut raw, prev) = prev(cx, conf)?;
    let iface = container_veth(cx, &prev)?;
    let (ipv4, ipv6) = container_addrs(&prev).map_err(|m| cx.err(code::INVALID_CONFIG, m, ""))?;
    let labels =
        conf_labels(conf.args.as_ref()).map_err(|m| cx.err(code::INVALID_CONFIG, m, ""))?;
    let args = parse_cni_args(&inv.args).map_err(|m| cx.err(code::INVALID_ENV, m, ""))?;
    let pod = if labels.is_empty() {
        pod_of(&args)
    } else {
        None
    };
    if labels.is_empty() && pod.is_none() {
        return Err(cx.err(
            code::INVALID_CONFIG,
            "the endpoint has no identity: pass K8S_POD_NAME (and K8S_POD_NAMESPACE) in CNI_ARGS or set args.cni.labels",
            "",
        ));
    }
    let spec = EndpointSpec {
        id: 0,
        iface,
        labels,
        ipv4,
        ipv6,
        pod,
        container_id: Some(inv.container_id.clone()),
    };
    let reply: RevisionReply = client
        .put(path, &spec)
        .map_err(|e| cx.agent_err("the agent did not create the endpoint", e))?;
    if !reply.enforced {
        // Fail closed: the runtime must not start a container whose policy is not in force.
        return Err(cx.err(
            code::NOT_ENFORCED,
            format!(
                "the agent accepted the endpoint but does not enforce revision {} yet",
                reply.revision
            ),
            "",
        ));
    }
    // Chained: the previous result is passed on, in this configuration's version.
    if let Some(o) = raw.as_object_mut() {
        o.insert("cniVersion".into(), Value::String(conf.cni_version.clone()));
    }
    Ok(raw)
}

fn del(cx: &Cx, client: &Client, path: &str) -> Result<Value, CniError> {
    match client.delete::<Value>(path) {
        Ok(_) => Ok(Value::Null),
        // Already gone, or the agent is gone (its pins stay until it restarts and reconciles).
        Err(ClientError::Api { status, .. }) if status.as_u16() == 404 => Ok(Value::Null),
        Err(ClientError::Connect { .. }) => Ok(Value::Null),
        Err(e) => Err(cx.agent_err("the agent did not delete the endpoint", e)),
    }
}

fn check(cx: &Cx, conf: &NetConf, client: &Client, path: &str) -> Result<Value, CniError> {
    let (_, prev) = prev(cx, conf)?;
    let iface = container_veth(cx, &prev)?;
    let ep: EndpointStatus = client.get(path).map_err(|e| match e {
        ClientError::Api { status, .. } if status.as_u16() == 404 => cx.err(
            code::UNKNOWN_CONTAINER,
            "the agent has no endpoint for this container",
            "",
        ),
        e => cx.agent_err("reading the endpoint", e),
    })?;
    let health: Healthz = client
        .get("/v1/healthz")
        .map_err(|e| cx.agent_err("reading the agent's health", e))?;
    let problem = if ep.iface != iface {
        Some(format!(
            "endpoint {} is on {}, the container's veth is {iface}",
            ep.id, ep.iface
        ))
    } else if ep.state != "ready" {
        Some(format!(
            "endpoint {} is {}: {}",
            ep.id,
            ep.state,
            ep.error.unwrap_or_default()
        ))
    } else if ep.policy_revision != health.policy_revision {
        Some(format!(
            "endpoint {} enforces revision {}, the agent is at {}",
            ep.id, ep.policy_revision, health.policy_revision
        ))
    } else {
        // The kernel, asked by the agent: its programs on the veth, using its maps, alone.
        let dp: DatapathCheck = client
            .get(&format!("{path}/datapath"))
            .map_err(|e| cx.agent_err("checking the endpoint's datapath", e))?;
        (!dp.attached).then(|| {
            let why = dp.problem.unwrap_or_else(|| "not attached".into());
            format!("endpoint {}: {why}", dp.id)
        })
    };
    match problem {
        Some(p) => Err(cx.err(code::NOT_ENFORCED, p, "")),
        None => Ok(Value::Null),
    }
}
