//! The agent's configuration (command-line flags).

use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub state_dir: PathBuf,
    pub api_socket: PathBuf,
    pub policy_dir: Option<PathBuf>,
    pub bpf_root: PathBuf,
    /// Name of this node: the pin directory under `<bpf-root>/cilium-policy/`.
    pub node: String,
    pub debug: bool,
    /// Load and attach programs (false: API and policy computation only, e.g. without root).
    pub datapath: bool,
    /// How endpoint programs are attached (`--attach-mode`; Documentation/agent.md).
    pub attach_mode: runtime_loader::AttachMode,
    /// Also serve the API on a loopback TCP address, to clients presenting a token.
    pub tcp: Option<TcpApi>,
    /// Entries of the node's TCP connection-tracking maps (LRU hashes, preallocated).
    pub ct_tcp_max: u32,
    /// Entries of the node's non-TCP connection-tracking maps.
    pub ct_any_max: u32,
    /// Flow-cache slots per CPU and family in each endpoint's program (0: no flow cache).
    pub flow_cache_slots: u32,
    /// Remember denied new connections in the flow cache (compiled out anyway when the kernel
    /// lacks BPF atomics with fetch, Linux < 5.12).
    pub deny_cache: bool,
    /// Cluster identities shared with other nodes (`--kvstore`); local numbering when `None`.
    pub kvstore: Option<std::sync::Arc<dyn compiler::identity::SharedIdentities>>,
    /// Write every datapath flow to a file (`--flow-export`).
    pub flow_export: Option<crate::flows::export::ExportConfig>,
    /// Serve `GET /metrics` on this loopback address too (`--metrics-listen`).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Every endpoint's policy in audit mode (`--policy-audit-mode`, Cilium's flag).
    pub policy_audit_mode: bool,
    /// The cluster-wide ipcache shared through the kvstore (`--kvstore`).
    pub ipcache_sync: Option<std::sync::Arc<crate::kvstore::sync::IpcacheSync>>,
    /// Programs verified ahead per endpoint configuration (`--spare-programs`; 0: none).
    pub spare_programs: usize,
    /// Learned `toFQDNs` addresses (`--tofqdns-min-ttl`, `--tofqdns-max-ips`).
    pub fqdn: crate::fqdn::FqdnConfig,
    /// How often the writer checks that every endpoint's interface runs exactly its programs
    /// on its pins, and repairs what was changed behind its back (`--datapath-check-interval`;
    /// `None`: only at the endpoint's next change).
    pub datapath_check_interval: Option<std::time::Duration>,
}

impl AgentConfig {
    /// The cluster configuration the agent's world is built with.
    pub fn cluster_config(&self) -> compiler::cluster::ClusterConfig {
        compiler::cluster::ClusterConfig {
            shared_identities: self.kvstore.clone(),
            audit_all: self.policy_audit_mode,
            local_node: self.node.clone(),
            ..Default::default()
        }
    }
}

/// `--listen-tcp ADDR --api-token-file PATH`.
#[derive(Clone, Debug)]
pub struct TcpApi {
    pub addr: std::net::SocketAddr,
    /// Holds the token every TCP request must present (`Authorization: Bearer`).
    pub token_file: PathBuf,
}
