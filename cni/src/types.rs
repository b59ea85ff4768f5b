//! The CNI spec's wire types (1.0.0, and 0.3.x/0.4.0 as accepted input): the network
//! configuration on stdin with its `prevResult`, the result passed on, and the error object.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Versions this plugin speaks; results are written in the configuration's version.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0"];

/// The network configuration a runtime passes on stdin (only the fields this plugin reads;
/// the rest is kept opaque).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    pub cni_version: String,
    /// The agent's API socket.
    #[serde(default)]
    pub api_socket: Option<String>,
    /// Seconds an ADD waits for the agent to enforce the endpoint's policy (default 60).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// Runtime arguments: `args.cni.labels` (CNI conventions).
    #[serde(default)]
    pub args: Option<Value>,
    /// The previous plugin's result (chained plugins).
    #[serde(default)]
    pub prev_result: Option<Value>,
}

/// The parts of a previous result this plugin needs: interfaces and addresses.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PrevResult {
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub ips: Vec<IpConfig>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default)]
    pub sandbox: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct IpConfig {
    /// `ADDRESS/PREFIX`.
    pub address: String,
    /// Index into `interfaces` of the interface the address is on.
    #[serde(default)]
    pub interface: Option<usize>,
}

/// The CNI error object (printed on stdout, exit status 1).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct CniError {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    pub code: u32,
    pub msg: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub details: String,
}

/// Well-known error codes of the spec, and this plugin's own (100 and up).
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENV: u32 = 4;
    pub const IO: u32 = 5;
    pub const DECODE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// The agent refused the endpoint (unknown pod, map overflow, verifier rejection, …).
    pub const AGENT_REFUSED: u32 = 100;
    /// CHECK found the endpoint not enforcing its current policy.
    pub const NOT_ENFORCED: u32 = 101;
}

/// Is `v` a version this plugin accepts?
pub fn supported(v: &str) -> bool {
    SUPPORTED_VERSIONS.contains(&v)
}

/// The `VERSION` command's answer.
pub fn version_info(cni_version: &str) -> Value {
    serde_json::json!({
        "cniVersion": cni_version,
        "supportedVersions": SUPPORTED_VERSIONS,
    })
}
