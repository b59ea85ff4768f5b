//! The node's ipcache generation (`cp_node`, `node_state.ipcache_gen`): incremented after every
//! write to the ipcache maps, so that the datapath's remembered default denies
//! (Documentation/datapath.md, "Flow cache") are not used across a change of a peer's identity.

use codegen::layout::NodeState;
use runtime_loader::RawMap;
use std::path::Path;

/// Increments the generation in the `cp_node` map pinned at `pin`. Nothing to do when it is not
/// pinned: no program that reads it is loaded (the first endpoint's load creates it).
pub fn bump(pin: &Path) -> Result<(), String> {
    if !pin.exists() {
        return Ok(());
    }
    let map = RawMap::open_pinned(pin).map_err(|e| e.to_string())?;
    let key = 0u32.to_ne_bytes();
    let mut node = map
        .lookup(&key)
        .map_err(|e| e.to_string())?
        .and_then(|v| NodeState::from_bytes(&v))
        .unwrap_or_default();
    node.ipcache_gen = node.ipcache_gen.wrapping_add(1);
    map.update(&key, node.as_bytes()).map_err(|e| e.to_string())
}
