//! One module per subcommand; each exposes `Args` (clap) and `run(Args) -> miette::Result<ExitCode>`.

pub mod agent;
pub mod agent_observe;
pub mod apply;
pub mod client_util;
pub mod compile;
pub mod connectivity;
pub mod ct_size;
pub mod diff;
pub mod endpoint;
pub mod endpoint_table;
pub mod endpoints;
pub mod lint;
pub mod monitor;
pub mod policy;
pub mod replay;
pub mod semload;
pub mod status;
pub mod test;
pub mod trace;
pub mod verdicts;

/// `--flow-cache-slots` of `compile` and `agent`: 0 (no flow cache) or a power of two up to
/// 65536 (the datapath indexes slots with a mask).
pub fn parse_flow_cache_slots(s: &str) -> Result<u32, String> {
    let n: u32 = s.parse().map_err(|e| format!("{e}"))?;
    if n > 65_536 || (n != 0 && !n.is_power_of_two()) {
        return Err(format!("{n} is not 0 or a power of two up to 65536"));
    }
    Ok(n)
}
