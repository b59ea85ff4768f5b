//! The agent's observability flags: flow export and the Prometheus listener.

use agent::flows::export::ExportConfig;
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct ObserveArgs {
    /// Write every datapath flow to this file as JSON lines (`{"flow": ..., "node_name": ...,
    /// "time": ...}`, as Hubble's exporter). Events are on while it is set.
    #[arg(long)]
    pub flow_export: Option<PathBuf>,
    /// Rotate the flow export file when it reaches this size (MiB).
    #[arg(long, default_value_t = 10, requires = "flow_export",
          value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub flow_export_max_size_mb: u64,
    /// Rotated flow export files kept (`FILE.1` is the newest).
    #[arg(long, default_value_t = 5, requires = "flow_export",
          value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub flow_export_max_backups: u32,
    /// Also serve `GET /metrics` (Prometheus text format) on this loopback address, without
    /// authentication (metrics carry no policy content).
    #[arg(long, value_parser = super::agent::parse_loopback)]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl ObserveArgs {
    pub fn export(&self) -> Option<ExportConfig> {
        self.flow_export.clone().map(|path| ExportConfig {
            path,
            max_bytes: self.flow_export_max_size_mb << 20,
            max_backups: self.flow_export_max_backups,
        })
    }
}
