//! Sizes of the node's connection-tracking maps derived from the node's memory, as Cilium's
//! `bpf-map-dynamic-size-ratio` does: a share of the memory (default 0.25 %) is spent on CT,
//! two thirds on TCP and one third on other protocols, each count the same for IPv4 and IPv6.
//! The maps are preallocated LRU hashes, so the kernel charges their full size when they are
//! created (Documentation/datapath.md, "Connection tracking").

use crate::layout::{Ct4EpKey, Ct6EpKey, CtValue};
use std::path::Path;

/// Cilium's default `bpf-map-dynamic-size-ratio`.
pub const DEFAULT_RATIO: f64 = 0.0025;
/// Fewest entries a derived size gets (Cilium's minimums for the global CT tables).
pub const MIN_TCP: u32 = 1 << 17;
pub const MIN_ANY: u32 = 1 << 16;
/// Most entries a derived size gets.
pub const MAX_ENTRIES: u32 = 1 << 24;

/// Kernel bytes of one preallocated LRU-hash element besides its key and value (`struct
/// htab_elem` with its LRU node, 48 bytes on 64-bit) plus one bucket (16 bytes).
const ELEM_OVERHEAD: usize = 48 + 16;

const fn round8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

/// Approximate kernel bytes of one entry index: one IPv4 and one IPv6 element.
pub const fn bytes_per_entry() -> usize {
    let v = round8(CtValue::LAYOUT.size);
    (ELEM_OVERHEAD + round8(Ct4EpKey::LAYOUT.size) + v)
        + (ELEM_OVERHEAD + round8(Ct6EpKey::LAYOUT.size) + v)
}

#[derive(Debug, thiserror::Error)]
pub enum CtSizeError {
    #[error("the ratio {0} is not in (0, 1]")]
    Ratio(f64),
    #[error("{path}: {message}")]
    Meminfo { path: String, message: String },
}

/// (TCP entries, non-TCP entries) for a node with `memory` bytes at `ratio`: multiples of 1024
/// between the minimums and [`MAX_ENTRIES`].
pub fn from_memory(memory: u64, ratio: f64) -> Result<(u32, u32), CtSizeError> {
    if !(ratio > 0.0 && ratio <= 1.0) {
        return Err(CtSizeError::Ratio(ratio));
    }
    let budget = memory as f64 * ratio;
    let per = bytes_per_entry() as f64;
    let entries = |share: f64, min: u32| {
        let n = (budget * share / per) as u64;
        let n = n.clamp(u64::from(min), u64::from(MAX_ENTRIES)) as u32;
        (n / 1024 * 1024).max(min)
    };
    Ok((entries(2.0 / 3.0, MIN_TCP), entries(1.0 / 3.0, MIN_ANY)))
}

/// The node's memory (`MemTotal` of `/proc/meminfo`), in bytes.
pub fn node_memory() -> Result<u64, CtSizeError> {
    meminfo_total(Path::new("/proc/meminfo"))
}

fn meminfo_total(path: &Path) -> Result<u64, CtSizeError> {
    let err = |message: String| CtSizeError::Meminfo {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    parse_mem_total(&text).ok_or_else(|| err("no `MemTotal: N kB` line".into()))
}

fn parse_mem_total(text: &str) -> Option<u64> {
    let line = text.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    let kb = line.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()?;
    kb.checked_mul(1024)
}

/// The sizes for this node at `ratio`, unless given explicitly.
pub fn for_node(tcp: Option<u32>, any: Option<u32>, ratio: f64) -> Result<(u32, u32), CtSizeError> {
    if let (Some(t), Some(a)) = (tcp, any) {
        return Ok((t, a));
    }
    let (t, a) = from_memory(node_memory()?, ratio)?;
    Ok((tcp.unwrap_or(t), any.unwrap_or(a)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn a_24_gib_node_spends_a_quarter_percent() {
        let (tcp, any) = from_memory(24 * GIB, DEFAULT_RATIO).unwrap();
        assert_eq!((tcp % 1024, any % 1024), (0, 0));
        let bytes = (tcp as u64 + any as u64) * bytes_per_entry() as u64;
        let budget = (24 * GIB) as f64 * DEFAULT_RATIO;
        assert!(
            bytes as f64 <= budget && bytes as f64 > budget * 0.98,
            "{bytes}"
        );
        assert!(
            tcp >= 2 * any - 1024 && tcp <= 2 * any + 1024,
            "{tcp} {any}"
        );
    }

    #[test]
    fn small_and_huge_nodes_are_clamped() {
        assert_eq!(from_memory(GIB, DEFAULT_RATIO).unwrap(), (MIN_TCP, MIN_ANY));
        assert_eq!(
            from_memory(1 << 50, 0.5).unwrap(),
            (MAX_ENTRIES, MAX_ENTRIES)
        );
    }

    #[test]
    fn a_bad_ratio_is_refused() {
        for r in [0.0, -1.0, 1.5, f64::NAN] {
            assert!(matches!(from_memory(GIB, r), Err(CtSizeError::Ratio(_))));
        }
    }

    #[test]
    fn meminfo_is_read() {
        let text = "MemTotal:       24563824 kB\nMemFree: 1 kB\n";
        assert_eq!(parse_mem_total(text), Some(24_563_824 * 1024));
        assert_eq!(parse_mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(parse_mem_total("MemTotal: lots\n"), None);
    }
}
