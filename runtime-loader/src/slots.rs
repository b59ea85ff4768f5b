//! Maps of maps (the node's CT per family, `codegen::maps::CT4`/`CT6`): the loader writes each
//! table into its slot once the object's maps exist, and the pin check reads back what a pinned
//! outer map holds.
//!
//! The tables are maps of the object like any other (created at their own sizes, pinned under
//! the node, checked and replaced by [`crate::pins`]); the programs never name them, they look
//! up the outer map's slot. A pinned outer map is reused as long as the tables in its slots
//! have the object's inner shape (type, key and value size, flags: what the kernel compares
//! when a map is written into a slot); their sizes are their own pins' business. Writing a
//! slot is atomic: a program running on the pinned outer map sees the old table or the new one.

use crate::error::{LoaderError, Result};
use crate::rawmap::RawMap;
use codegen::maps::{inner_maps, MapDef};
use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

/// The facts of a map a slot may hold: the kernel's inner-map comparison (not the size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InnerShape {
    /// `BPF_MAP_TYPE_*`.
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub flags: u32,
}

impl InnerShape {
    /// The shape the map table gives the maps `outer`'s slots hold, `None` for other maps.
    pub fn of_table(outer: &MapDef) -> Option<InnerShape> {
        inner_maps(outer).first().map(|t| InnerShape {
            map_type: t.map_type.id(),
            key_size: t.key.size() as u32,
            value_size: t.value.size() as u32,
            flags: t.flags(),
        })
    }

    fn of_info(info: &aya::maps::MapInfo) -> std::result::Result<InnerShape, String> {
        Ok(InnerShape {
            map_type: info.map_type().map_err(|e| e.to_string())? as u32,
            key_size: info.key_size(),
            value_size: info.value_size(),
            flags: info.map_flags(),
        })
    }
}

/// Writes every map of maps' tables of `maps` (the loaded object's, by name) into their slots.
/// A table missing from `maps` while its outer map is there is an error (the object and the
/// table disagree). A slot that already holds its table is left alone: the kernel waits for an
/// RCU grace period after every write to a map of maps (about 10 ms here), and the node's
/// shared outer maps already hold their tables for every endpoint after the first. All or
/// nothing: when a write fails, the slots written before it get back what they held (a pinned
/// outer map is in use by running programs).
pub fn fill(maps: &BTreeMap<String, RawMap>) -> Result<()> {
    let mut writes = Vec::new();
    for (name, outer) in maps {
        let Some(def) = codegen::maps::by_name(name) else {
            continue;
        };
        let tables = inner_maps(def);
        if tables.is_empty() {
            continue;
        }
        let held = slot_ids(outer)?;
        for (slot, table) in tables.iter().enumerate() {
            let inner = maps.get(table.name).ok_or_else(|| LoaderError::Map {
                path: outer.path().to_path_buf(),
                message: format!("slot {slot}: table {} is not in the object", table.name),
            })?;
            let id = inner.map_data().info().map(|i| i.id()).ok();
            let before = held.get(slot).copied().flatten();
            if id.is_none() || before != id {
                writes.push((outer, slot as u32, inner, before));
            }
        }
    }
    for (n, (outer, slot, inner, _)) in writes.iter().enumerate() {
        let fd = inner.map_data().fd().as_fd().as_raw_fd() as u32;
        if let Err(e) = outer.update(&slot.to_ne_bytes(), &fd.to_ne_bytes()) {
            for (outer, slot, _, before) in writes[..n].iter().rev() {
                restore(outer, *slot, *before);
            }
            return Err(LoaderError::Map {
                path: outer.path().to_path_buf(),
                message: format!("writing a table into slot {slot}: {e}"),
            });
        }
    }
    Ok(())
}

/// Puts back what slot `slot` of `outer` held (`None`: empty), as far as the kernel lets it.
fn restore(outer: &RawMap, slot: u32, before: Option<u32>) {
    let key = slot.to_ne_bytes();
    let Some(id) = before else {
        let _ = outer.delete(&key);
        return;
    };
    if let Ok(data) = aya::maps::MapData::from_id(id) {
        let fd = data.fd().as_fd().as_raw_fd() as u32;
        let _ = outer.update(&key, &fd.to_ne_bytes());
    }
}

/// The kernel ids of the maps `outer` holds, slot by slot (`None`: an empty slot).
fn slot_ids(outer: &RawMap) -> Result<Vec<Option<u32>>> {
    (0..outer.max_entries())
        .map(|slot| {
            let Some(v) = outer.lookup(&slot.to_ne_bytes())? else {
                return Ok(None);
            };
            let id =
                v.get(..4)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| LoaderError::Map {
                        path: outer.path().to_path_buf(),
                        message: format!("slot {slot}: a {}-byte map id", v.len()),
                    })?;
            Ok(Some(u32::from_ne_bytes(id)))
        })
        .collect()
}

/// The kernel ids of the tables in the filled slots of the map of maps with id `id` (what
/// the agent's integrity check compares with the tables' pins).
pub fn table_ids(id: u32) -> Result<Vec<u32>> {
    let path = std::path::PathBuf::from(format!("map id {id}"));
    let data = aya::maps::MapData::from_id(id).map_err(|e| LoaderError::Map {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let outer = RawMap::from_map_data(data, &path)?;
    Ok(slot_ids(&outer)?.into_iter().flatten().collect())
}

/// What differs between the tables the map of maps pinned at `path` holds (in its first
/// `slots` slots) and `want`, or `None` when every non-empty slot matches.
pub fn pinned_mismatch(path: &Path, slots: u32, want: &InnerShape) -> Result<Option<String>> {
    let outer = RawMap::open_pinned(path)?;
    for (slot, id) in slot_ids(&outer)?
        .into_iter()
        .enumerate()
        .take(slots as usize)
    {
        let Some(id) = id else {
            continue;
        };
        let info = aya::maps::MapInfo::from_id(id).map_err(|e| LoaderError::Map {
            path: path.to_path_buf(),
            message: format!("slot {slot}: map {id}: {e}"),
        })?;
        let got = InnerShape::of_info(&info).map_err(|message| LoaderError::Map {
            path: path.to_path_buf(),
            message,
        })?;
        if got != *want {
            return Ok(Some(format!(
                "slot {slot} holds a map of type {} key {} value {} flags {} (want {} {} {} {})",
                got.map_type,
                got.key_size,
                got.value_size,
                got.flags,
                want.map_type,
                want.key_size,
                want.value_size,
                want.flags
            )));
        }
    }
    Ok(None)
}
