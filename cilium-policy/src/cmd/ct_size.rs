//! The node connection-tracking size flags of `compile` and `agent` (Cilium's names): explicit
//! entry counts, else a share of the node's memory (`codegen::ctsize`).

/// Sizes of the node's connection-tracking maps.
#[derive(clap::Args, Debug)]
pub struct CtSizeArgs {
    /// Entries of the node's TCP connection-tracking maps (IPv4 and IPv6 each; preallocated,
    /// shared by every endpoint). Default: derived from the node's memory.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1024..=16_777_216))]
    pub bpf_ct_global_tcp_max: Option<u32>,
    /// Entries of the node's non-TCP connection-tracking maps (UDP, SCTP, ICMP echo). Default:
    /// derived from the node's memory.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1024..=16_777_216))]
    pub bpf_ct_global_any_max: Option<u32>,
    /// Share of the node's memory (MemTotal) the derived connection-tracking sizes spend:
    /// two thirds on TCP, one third on the rest (0 < ratio <= 1).
    #[arg(long, default_value_t = codegen::ctsize::DEFAULT_RATIO)]
    pub bpf_map_dynamic_size_ratio: f64,
}

impl CtSizeArgs {
    /// (TCP entries, non-TCP entries).
    pub fn resolve(&self) -> miette::Result<(u32, u32)> {
        codegen::ctsize::for_node(
            self.bpf_ct_global_tcp_max,
            self.bpf_ct_global_any_max,
            self.bpf_map_dynamic_size_ratio,
        )
        .map_err(|e| miette::miette!("--bpf-map-dynamic-size-ratio: {e}"))
    }
}
