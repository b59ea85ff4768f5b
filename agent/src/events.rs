//! Datapath events only while someone listens: every endpoint's program emits drop and verdict
//! events (`ep_state.events_mask`) while at least one `monitor` client is connected, and none
//! otherwise, so a drop flood with nobody watching costs no ring-buffer write per packet.

use super::datapath::Datapath;
use super::error::AgentError;
use codegen::layout::{EpState, EVENTS_DROP, EVENTS_VERDICT};
use runtime_loader::RawMap;

/// Turns every endpoint's events on or off (and the mask new endpoints get). Every endpoint
/// is tried; the first failure is returned.
pub fn set_listening(dp: &mut Datapath, on: bool) -> Result<(), AgentError> {
    let mask = if on { EVENTS_DROP | EVENTS_VERDICT } else { 0 };
    dp.set_events_mask(mask);
    let mut first = Ok(());
    for id in dp.endpoint_ids() {
        let Ok(pin) = dp.layout().endpoint_map_path(id, codegen::maps::STATE.name) else {
            continue;
        };
        // An endpoint whose maps are not pinned (yet) gets the mask when its state is written.
        if pin.exists() {
            let r = set_mask(&pin, mask)
                .map_err(|e| AgentError::Datapath(format!("endpoint {id}: {e}")));
            first = first.and(r);
        }
    }
    tracing::debug!(on, "datapath events");
    first
}

/// Writes `mask` into the endpoint state pinned at `pin` (when it differs).
fn set_mask(pin: &std::path::Path, mask: u32) -> Result<(), runtime_loader::LoaderError> {
    let map = RawMap::open_pinned(pin)?;
    let key = 0u32.to_ne_bytes();
    let Some(mut st) = map.lookup(&key)?.and_then(|v| EpState::from_bytes(&v)) else {
        return Ok(());
    };
    if st.events_mask != mask {
        st.events_mask = mask;
        map.update(&key, st.as_bytes())?;
    }
    Ok(())
}
