//! `cilium-policy-cni`: a CNI plugin (spec 1.0.0; 0.3.x and 0.4.0 accepted) chained after a
//! plugin that creates a veth (ptp, bridge). ADD creates the container's endpoint in the agent
//! and returns only once its policy is enforced; DEL removes it; CHECK verifies it.
//! See Documentation/cni.md.

mod args;
mod host;
mod plugin;
mod types;

use std::io::{Read, Write};

/// The largest network configuration read from stdin.
const MAX_STDIN: u64 = 1 << 20;

fn main() {
    let inv = plugin::Invocation::from_env();
    let mut stdin = Vec::new();
    let read = std::io::stdin().take(MAX_STDIN + 1).read_to_end(&mut stdin);
    let outcome = match read {
        Err(e) => Err(types::CniError {
            cni_version: "1.0.0".into(),
            code: types::code::IO,
            msg: "cannot read the network configuration from stdin".into(),
            details: e.to_string(),
        }),
        Ok(n) if n as u64 > MAX_STDIN => Err(types::CniError {
            cni_version: "1.0.0".into(),
            code: types::code::INVALID_CONFIG,
            msg: format!("the network configuration is larger than {MAX_STDIN} bytes"),
            details: String::new(),
        }),
        Ok(_) => plugin::run(&inv, &stdin),
    };
    let mut out = std::io::stdout().lock();
    let status = match outcome {
        Ok(serde_json::Value::Null) => 0,
        Ok(v) => {
            let _ = writeln!(out, "{v}");
            0
        }
        Err(e) => {
            let _ = writeln!(out, "{}", serde_json::to_string(&e).unwrap_or_default());
            1
        }
    };
    let _ = out.flush();
    std::process::exit(status);
}
