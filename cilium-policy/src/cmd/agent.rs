//! `cilium-policy agent`: run the resident agent in the foreground (logs with tracing).

use agent::config::{AgentConfig, TcpApi};
use std::path::PathBuf;
use std::process::ExitCode;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::{reload, EnvFilter};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where the agent keeps policies, endpoints and compiled objects across restarts.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// Unix socket of the REST API (created with mode 0660).
    #[arg(long)]
    pub api_socket: Option<PathBuf>,
    /// Watch this directory and apply its policy files when they change.
    #[arg(long)]
    pub policy_dir: Option<PathBuf>,
    /// Root of the BPF filesystem (mounted there when it is not one).
    #[arg(long, default_value = "/sys/fs/bpf")]
    pub bpf_root: PathBuf,
    /// Node name: pins live under BPF_ROOT/cilium-policy/NODE.
    #[arg(long, default_value = "node0")]
    pub node: String,
    /// Debug logging (also switchable at run time: PATCH /v1/config {"debug": true}).
    #[arg(long)]
    pub debug: bool,
    /// Serve the API without loading programs (policy computation only; no root needed).
    #[arg(long)]
    pub no_datapath: bool,
    /// Also serve the API on this loopback TCP address (e.g. 127.0.0.1:9234), to clients
    /// presenting the token of --api-token-file.
    #[arg(long, value_parser = parse_loopback, requires = "api_token_file")]
    pub listen_tcp: Option<std::net::SocketAddr>,
    /// File holding the token TCP clients must send (`Authorization: Bearer TOKEN`); owned
    /// by root or the agent's user, mode 0600.
    #[arg(long, requires = "listen_tcp")]
    pub api_token_file: Option<PathBuf>,
    /// How endpoint programs are attached to their interfaces: `tc`, a `cls_bpf` filter on a
    /// clsact qdisc (attached without waiting; the agent removes any other filter or tcx
    /// program it finds there), or `tcx`, BPF links (Linux 6.6+), where every new
    /// attachment waits for an RCU grace period while holding the kernel's RTNL lock
    /// (10–13 ms each, two per endpoint, one at a time node-wide).
    #[arg(long, value_enum, default_value = "tc")]
    pub attach_mode: AttachModeArg,
    #[command(flatten)]
    pub ct: super::ct_size::CtSizeArgs,
    /// Flow-cache slots per CPU and address family in front of connection tracking, in every
    /// endpoint's program (a power of two up to 65536; 0 compiles the flow cache out).
    #[arg(long, default_value_t = codegen::MapSizes::default().flow_cache,
          value_parser = super::parse_flow_cache_slots)]
    pub flow_cache_slots: u32,
    /// Do not remember denied new connections in the flow cache (its deny slots). Without
    /// this flag they are on where the kernel supports them (BPF atomics with fetch, 5.12+).
    #[arg(long)]
    pub no_deny_cache: bool,
    /// Programs verified ahead for endpoints yet to come, per endpoint configuration (the last
    /// four configurations new endpoints were created with): a new endpoint that finds one
    /// skips the verifier, most of what creating it costs. Verified in the background at a
    /// lower priority, one program at a time; 0 verifies every endpoint when it is created.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=16))]
    pub spare_programs: u64,
    #[command(flatten)]
    pub kvstore: KvstoreArgs,
    #[command(flatten)]
    pub observe: super::agent_observe::ObserveArgs,
    /// Every endpoint's policy in audit mode (Cilium's flag): what policy would deny passes and
    /// is reported with verdict AUDIT.
    #[arg(long)]
    pub policy_audit_mode: bool,
    /// Addresses learned from DNS answers for `toFQDNs` stay allowed at least this many
    /// seconds, whatever the record's TTL (Cilium's flag; its default of 3600 s is meant for
    /// production, where clients cache answers longer than their TTL).
    #[arg(long, default_value_t = agent::fqdn::DEFAULT_MIN_TTL,
          value_parser = clap::value_parser!(u64).range(0..=86400))]
    pub tofqdns_min_ttl: u64,
    /// Addresses learned for `toFQDNs` on this node at most; past that new ones are refused
    /// (their traffic stays denied), logged and counted in `/metrics`.
    #[arg(long, default_value_t = agent::fqdn::DEFAULT_MAX_ADDRESSES,
          value_parser = parse_max_ips)]
    pub tofqdns_max_ips: usize,
    /// Every this many seconds (decimals allowed) the agent checks that each endpoint's
    /// interface runs exactly its programs, on its pins, and repairs at once what was changed
    /// behind its back (a filter deleted or put in front in tc mode, a link detached, a pin
    /// removed, bpffs unmounted); 0 checks only when the endpoint next changes.
    #[arg(long, default_value_t = 2.0, value_parser = parse_check_interval)]
    pub datapath_check_interval: f64,
}

/// `--datapath-check-interval`: 0 (off) or 0.05 to 3600 seconds.
fn parse_check_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v == 0.0 || (0.05..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "`{s}` is not 0 or a number of seconds from 0.05 to 3600"
        )),
    }
}

/// `--tofqdns-max-ips`: 1 to 65,536.
fn parse_max_ips(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=65_536).contains(&n) => Ok(n),
        _ => Err(format!("`{s}` is not a number from 1 to 65536")),
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvstoreKind {
    /// etcd v3, over gRPC.
    Etcd,
}

/// The agent's kvstore flags.
#[derive(clap::Args, Debug, Clone)]
pub struct KvstoreArgs {
    /// Share cluster identities with the other nodes' agents through this store.
    #[arg(long, value_enum, requires = "kvstore_endpoint")]
    pub kvstore: Option<KvstoreKind>,
    /// The store's client URL (`http://HOST:PORT` or `https://HOST:PORT`), e.g.
    /// `http://127.0.0.1:2379`.
    #[arg(long, requires = "kvstore")]
    pub kvstore_endpoint: Option<String>,
    /// PEM file of the CA that signed the store's server certificate (`https://` endpoints).
    #[arg(long, requires = "kvstore")]
    pub kvstore_ca: Option<PathBuf>,
    /// PEM client certificate presented to the store (its `--client-cert-auth`).
    #[arg(long, requires_all = ["kvstore", "kvstore_key"])]
    pub kvstore_cert: Option<PathBuf>,
    /// PEM private key of --kvstore-cert.
    #[arg(long, requires_all = ["kvstore", "kvstore_cert"])]
    pub kvstore_key: Option<PathBuf>,
    /// Seconds the node's claims outlive its agent: the TTL of the lease they are kept under.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(i64).range(2..=86400),
          requires = "kvstore")]
    pub kvstore_lease_ttl: i64,
    /// Key prefix under which identities live (`PREFIX/id/N`, `PREFIX/value/LABELS`).
    #[arg(long, default_value = agent::kvstore::identities::DEFAULT_PREFIX, requires = "kvstore")]
    pub kvstore_prefix: String,
    /// Key prefix under which each node publishes its endpoints (`PREFIX/NODE/ID`) and
    /// watches the others'.
    #[arg(long, default_value = agent::kvstore::ipcache::DEFAULT_PREFIX, requires = "kvstore")]
    pub kvstore_ipcache_prefix: String,
}

pub(super) fn parse_loopback(s: &str) -> Result<std::net::SocketAddr, String> {
    let a: std::net::SocketAddr = s.parse().map_err(|e| format!("{e}"))?;
    if a.ip().is_loopback() {
        Ok(a)
    } else {
        Err("only loopback addresses are allowed".into())
    }
}

pub fn run(args: Args, global_socket: Option<PathBuf>) -> miette::Result<ExitCode> {
    let level = |debug: bool| EnvFilter::new(if debug { "debug" } else { "info" });
    let (filter, handle) = reload::Layer::new(level(args.debug));
    use tracing_subscriber::prelude::*;
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // The change path's phases are debug spans: with --debug, each one's time on
                // close (Documentation/performance.md, "CNI ADD").
                .with_span_events(FmtSpan::CLOSE),
        )
        .init();
    let api_socket = args
        .api_socket
        .or(global_socket)
        .ok_or_else(|| miette::miette!("--api-socket PATH is required"))?;
    let kv = &args.kvstore;
    let kvstore = match (kv.kvstore, &kv.kvstore_endpoint) {
        (Some(KvstoreKind::Etcd), Some(url)) => Some(agent::kvstore::open_etcd(
            &agent::kvstore::EtcdConfig {
                endpoint: url.clone(),
                ca: kv.kvstore_ca.clone(),
                cert: kv.kvstore_cert.clone(),
                key: kv.kvstore_key.clone(),
                prefix: kv.kvstore_prefix.clone(),
                ipcache_prefix: kv.kvstore_ipcache_prefix.clone(),
                node: args.node.clone(),
                lease_ttl: kv.kvstore_lease_ttl,
            },
            &args.state_dir,
        )?),
        _ => None,
    };
    let (ct_tcp_max, ct_any_max) = args.ct.resolve()?;
    let cfg = AgentConfig {
        state_dir: args.state_dir,
        api_socket,
        policy_dir: args.policy_dir,
        bpf_root: args.bpf_root,
        node: args.node,
        debug: args.debug,
        datapath: !args.no_datapath,
        attach_mode: match args.attach_mode {
            AttachModeArg::Tc => runtime_loader::AttachMode::Netlink,
            AttachModeArg::Tcx => runtime_loader::AttachMode::Tcx,
        },
        tcp: args
            .listen_tcp
            .zip(args.api_token_file)
            .map(|(addr, token_file)| TcpApi { addr, token_file }),
        ct_tcp_max,
        ct_any_max,
        flow_cache_slots: args.flow_cache_slots,
        deny_cache: !args.no_deny_cache,
        spare_programs: args.spare_programs as usize,
        kvstore: kvstore.as_ref().map(|k| k.identities.clone()),
        ipcache_sync: kvstore.map(|k| k.ipcache),
        flow_export: args.observe.export(),
        metrics_listen: args.observe.metrics_listen,
        policy_audit_mode: args.policy_audit_mode,
        fqdn: agent::fqdn::FqdnConfig {
            min_ttl: std::time::Duration::from_secs(args.tofqdns_min_ttl),
            max_addresses: args.tofqdns_max_ips,
        },
        datapath_check_interval: (args.datapath_check_interval > 0.0)
            .then(|| std::time::Duration::from_secs_f64(args.datapath_check_interval)),
    };
    let set_debug = Box::new(move |d: bool| {
        let _ = handle.modify(|f| *f = level(d));
    });
    crate::server::run(cfg, set_debug)?;
    Ok(ExitCode::SUCCESS)
}

/// `--attach-mode`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum AttachModeArg {
    Tc,
    Tcx,
}
