//! Programs verified before their endpoint exists. Verifying an endpoint's two programs is
//! most of what creating it costs (Documentation/performance.md, "CNI ADD"), and nothing the
//! verifier checks depends on the endpoint: its identity and addresses are globals of a data
//! section the verifier takes as unknown ([`GLOBALS_SECTION`]). So an object can be loaded
//! ahead for no endpoint yet — a [`Kit`]: both programs verified, the node's maps those
//! pinned at the time, the endpoint's own maps new, empty and unpinned, the globals zero and
//! open — and later handed to one endpoint by [`Kit::claim`], which writes its globals and
//! freezes them, writes its state, and pins its maps where the endpoint's belong. Nothing of a
//! kit is attached before it is claimed, so its zero globals never see a packet.

use crate::load::{Datapath, LoadError, LoadOptions, Loader, Purpose, Verify};
use crate::rawmap::RawMap;
use codegen::layout::EpState;
use codegen::template::{Globals, PatchSites, GLOBALS_SECTION};
use std::path::PathBuf;

/// A loaded, verified datapath for no endpoint yet (see the module doc).
pub struct Kit {
    dp: Datapath,
    sites: PatchSites,
    /// The node's maps the programs use: (name, pin, the pinned map's id when loaded).
    shared: Vec<(String, PathBuf, u32)>,
}

/// Why a kit cannot be claimed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("the node's map {map} was replaced since the kit was loaded")]
    Stale { map: String },
    #[error("the kit has no {0} map")]
    NoGlobals(&'static str),
    #[error(transparent)]
    Load(#[from] LoadError),
}

impl<'a> Loader<'a> {
    /// Loads `object` (a template: zero globals at `sites`) as a [`Kit`], its programs
    /// verified one after the other on this thread. `shared_pins` are the node's maps, adopted
    /// from their pins as they are (refused if one is missing or of another shape, see
    /// [`crate::pins::check_adoptable`]); `max_entries` sizes the endpoint maps as [`LoadOptions::max_entries`].
    pub fn prepare(
        &mut self,
        object: &[u8],
        sites: &PatchSites,
        shared_pins: Vec<(&'a str, PathBuf)>,
        max_entries: Vec<(&'a str, u32)>,
    ) -> Result<Kit, LoadError> {
        let opts = LoadOptions {
            map_pins: shared_pins,
            max_entries,
            verify: Verify::OneThread,
            ..LoadOptions::default()
        };
        let dp = self.load_for(object, &opts, Purpose::Ahead)?;
        let mut shared = Vec::with_capacity(opts.map_pins.len());
        for (name, path) in &opts.map_pins {
            // Maps compiled out of this configuration are not loaded.
            let Ok(map) = dp.map(name) else {
                continue;
            };
            let id = map.id().map_err(|source| LoadError::Map {
                map: name.to_string(),
                source,
            })?;
            shared.push((name.to_string(), path.clone(), id));
        }
        Ok(Kit {
            dp,
            sites: sites.clone(),
            shared,
        })
    }
}

impl Kit {
    /// Whether every node map the kit's programs use is still the one pinned.
    pub fn current(&self) -> Result<(), ClaimError> {
        for (name, path, id) in &self.shared {
            let pinned = RawMap::open_pinned(path).and_then(|m| m.id());
            if pinned.ok() != Some(*id) {
                return Err(ClaimError::Stale { map: name.clone() });
            }
        }
        Ok(())
    }

    /// Hands the kit to one endpoint: writes `globals` and freezes them, writes `state` (a new
    /// nonce when its `ep_nonce` is 0: the kit's maps are new), and pins each endpoint map
    /// named in `pins` at its path (those the object does not have are skipped). On an error every pin it made is removed again.
    pub fn claim(
        self,
        globals: &Globals,
        state: &EpState,
        pins: &[(&str, PathBuf)],
    ) -> Result<Datapath, ClaimError> {
        self.current()?;
        let Kit { mut dp, sites, .. } = self;
        let map_err = |map: &str, source| LoadError::Map {
            map: map.to_string(),
            source,
        };
        {
            let data = dp
                .maps
                .get(GLOBALS_SECTION)
                .ok_or(ClaimError::NoGlobals(GLOBALS_SECTION))?;
            let key = 0u32.to_ne_bytes();
            let mut value = data
                .lookup(&key)
                .map_err(|e| map_err(GLOBALS_SECTION, e))?
                .ok_or(ClaimError::NoGlobals(GLOBALS_SECTION))?;
            if !sites.write_section(&mut value, globals) {
                return Err(ClaimError::NoGlobals(GLOBALS_SECTION));
            }
            data.update(&key, &value)
                .map_err(|e| map_err(GLOBALS_SECTION, e))?;
        }
        dp.freeze_globals()?;
        dp.set_state(state)?;
        let mut pinned: Vec<PathBuf> = Vec::new();
        for (name, path) in pins {
            // Maps compiled out of this configuration have no pin, as with a load.
            let Some(map) = dp.maps.get_mut(*name) else {
                continue;
            };
            if let Err(e) = map.pin(path) {
                for p in &pinned {
                    let _ = std::fs::remove_file(p);
                }
                return Err(map_err(name, e).into());
            }
            pinned.push(path.clone());
        }
        Ok(dp)
    }
}
