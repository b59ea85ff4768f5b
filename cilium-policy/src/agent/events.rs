//! Datapath events only while someone listens: every endpoint's program emits drop and verdict
//! events (`ep_state.events_mask`) while at least one `monitor` client is connected, and none
//! otherwise, so a drop flood with nobody watching costs no ring-buffer write per packet.

use super::datapath::Datapath;
use super::error::ApiError;
use codegen::layout::{EpState, EVENTS_DROP, EVENTS_VERDICT};
use runtime_loader::RawMap;

/// Turns every endpoint's events on or off (and the mask new endpoints get).
pub fn set_listening(dp: &mut Datapath, on: bool) -> Result<(), ApiError> {
    let mask = if on { EVENTS_DROP | EVENTS_VERDICT } else { 0 };
    dp.set_events_mask(mask);
    for id in dp.endpoint_ids() {
        let Ok(pin) = dp.layout().endpoint_map_path(id, "cp_state") else {
            continue;
        };
        if !pin.exists() {
            continue;
        }
        let map = RawMap::open_pinned(&pin).map_err(|e| ApiError::internal(e.to_string()))?;
        let key = 0u32.to_ne_bytes();
        let Some(mut st) = map
            .lookup(&key)
            .ok()
            .flatten()
            .and_then(|v| EpState::from_bytes(&v))
        else {
            continue;
        };
        if st.events_mask != mask {
            st.events_mask = mask;
            map.update(&key, st.as_bytes())
                .map_err(|e| ApiError::internal(e.to_string()))?;
        }
    }
    tracing::debug!(on, "datapath events");
    Ok(())
}
