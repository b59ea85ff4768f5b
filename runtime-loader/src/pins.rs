//! Retires pinned maps that no longer match the object about to be loaded.
//!
//! aya reuses a map pinned at a requested path without comparing it with the object's
//! definition. A map pinned by an older build or another configuration (other key or value
//! size, map type, flags or size — e.g. after an upgrade, or new `--bpf-ct-global-*-max`
//! sizes) would be handed to the new program: the verifier rejects the program, or worse, the
//! program reads entries in the wrong layout. Before a load, every requested pin that exists is compared with
//! the object's definition of that map (with the loader's `max_entries` overrides, e.g. an
//! endpoint's policy map sized from its entries); a pin that differs is set aside (renamed to
//! `<name>_retiring` beside it), so the load creates and pins a new, empty map, and the caller
//! refills it (the agent diffs against what a map holds when it has not written it yet). Once
//! the load succeeded the set-aside pins are unlinked ([`Retired::commit`]); when it fails
//! (the verifier, an allocation) the new pins are removed and the old ones put back
//! ([`Retired::restore`]), so a failed load leaves the pins as they were. Programs still
//! attached keep using the old map until they are replaced; nothing they enforce changes in
//! between.
//!
//! Maps the table no longer has ([`codegen::maps::RETIRED`], e.g. the per-endpoint CT maps of
//! builds before the node-wide CT) are unlinked from every directory a requested pin of the
//! same scope lives in.

use codegen::maps::{MapDef, MapType, Pin};
use codegen::MapSizes;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A pin removed because the map behind it did not match the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetiredPin {
    pub map: String,
    pub path: PathBuf,
    /// What differed, e.g. `value size 24 (want 32)`.
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PinCheckError {
    #[error("parsing the object's map definitions: {0}")]
    Object(#[from] aya_obj::ParseError),
    #[error("{}: reading the pinned map: {message}", path.display())]
    Inspect { path: PathBuf, message: String },
    #[error("{}: removing the incompatible pin: {source}", path.display())]
    Unlink {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: setting the incompatible pin aside: {source}", path.display())]
    SetAside {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {reason}; a load ahead only adopts the node's maps as they are", path.display())]
    NotAdoptable { path: PathBuf, reason: String },
}

/// Pins [`retire_incompatible`] retired: those of maps the table no longer has are unlinked,
/// those of another shape set aside until the load that replaces them succeeds or fails.
#[derive(Debug, Default)]
#[must_use = "commit after a successful load, restore after a failed one"]
pub struct Retired {
    pins: Vec<RetiredPin>,
    /// (set-aside path, original path) of each pin set aside.
    aside: Vec<(PathBuf, PathBuf)>,
}

impl Retired {
    /// The load succeeded: unlinks the set-aside pins; returns every retired pin.
    pub fn commit(self) -> Result<Vec<RetiredPin>, PinCheckError> {
        for (aside, _) in &self.aside {
            std::fs::remove_file(aside).map_err(|source| PinCheckError::Unlink {
                path: aside.clone(),
                source,
            })?;
        }
        Ok(self.pins)
    }

    /// The load failed: removes what it pinned in the set-aside pins' places and puts them
    /// back. Best effort: a failure is logged (the caller reports the load's error).
    pub fn restore(self) {
        for (aside, path) in &self.aside {
            let res = match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => std::fs::rename(aside, path),
            };
            if let Err(e) = res {
                tracing::error!(pin = %path.display(), aside = %aside.display(), error = %e,
                    "putting back a pinned map after a failed load failed");
            }
        }
    }
}

/// Where a pin of another shape waits while the load that replaces it runs (bpffs refuses
/// names with a dot).
fn aside_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push("_retiring");
    path.with_file_name(name)
}

/// The facts of a map definition that must agree for a pinned map to be reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// `BPF_MAP_TYPE_*`.
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
}

const RINGBUF: u32 = MapType::Ringbuf.id();

impl Shape {
    /// The shape the map table gives `map` in objects built with `sizes`.
    pub fn of(map: &MapDef, sizes: &MapSizes) -> Shape {
        Shape {
            map_type: map.map_type.id(),
            key_size: map.key.size() as u32,
            value_size: map.value.size() as u32,
            max_entries: map.max_entries.of(sizes),
            flags: map.flags(),
        }
    }

    /// What differs from `want`, or `None` when a map of this shape can be reused. A ring
    /// buffer's size is rounded by the loader to a page multiple, so only its type is compared.
    fn mismatch(&self, want: &Shape) -> Option<String> {
        let fields = [
            ("map type", self.map_type, want.map_type),
            ("key size", self.key_size, want.key_size),
            ("value size", self.value_size, want.value_size),
            ("max entries", self.max_entries, want.max_entries),
            ("flags", self.flags, want.flags),
        ];
        let diffs: Vec<String> = fields
            .iter()
            .filter(|(name, _, _)| want.map_type != RINGBUF || *name == "map type")
            .filter(|(_, got, want)| got != want)
            .map(|(name, got, want)| format!("{name} {got} (want {want})"))
            .collect();
        (!diffs.is_empty()).then(|| diffs.join(", "))
    }
}

fn pinned_shape(path: &Path) -> Result<Shape, PinCheckError> {
    let inspect = |message: String| PinCheckError::Inspect {
        path: path.to_path_buf(),
        message,
    };
    let info = aya::maps::MapInfo::from_pin(path).map_err(|e| inspect(e.to_string()))?;
    let map_type = info.map_type().map_err(|e| inspect(e.to_string()))? as u32;
    Ok(Shape {
        map_type,
        key_size: info.key_size(),
        value_size: info.value_size(),
        max_entries: info.max_entries(),
        flags: info.map_flags(),
    })
}

/// What differs between the map pinned at `path` and `want`.
fn pinned_mismatch(path: &Path, want: &Shape) -> Result<Option<String>, PinCheckError> {
    Ok(pinned_shape(path)?.mismatch(want))
}

/// The maps an object defines, by name, as the loader will create them (before a ring
/// buffer's size is rounded to pages).
pub fn object_maps(object: &[u8]) -> Result<BTreeMap<String, Shape>, PinCheckError> {
    let obj = aya_obj::Object::parse(object)?;
    Ok(obj
        .maps
        .iter()
        .map(|(name, def)| {
            let shape = Shape {
                map_type: def.map_type(),
                key_size: def.key_size(),
                value_size: def.value_size(),
                max_entries: def.max_entries(),
                flags: def.map_flags(),
            };
            (name.clone(), shape)
        })
        .collect())
}

/// Checks that every pin in `pins` of a map `object` defines exists and holds a map of the
/// object's shape: a load for an endpoint yet to come ([`crate::kit`]) adopts the node's maps
/// as they are, and leaves creating, setting aside or replacing one to the loads of real
/// endpoints.
pub fn check_adoptable(object: &[u8], pins: &[(&str, PathBuf)]) -> Result<(), PinCheckError> {
    let defs = object_maps(object)?;
    for (name, path) in pins {
        let Some(want) = defs.get(*name) else {
            continue;
        };
        let reason = if path.exists() {
            pinned_mismatch(path, want)?
        } else {
            Some("not pinned".to_string())
        };
        if let Some(reason) = reason {
            return Err(PinCheckError::NotAdoptable {
                path: path.clone(),
                reason,
            });
        }
    }
    Ok(())
}

/// Sets aside every pin in `pins` (map name → path) whose map does not match `object`'s
/// definition of that map (with `max_entries` overriding the object's sizes, as the loader
/// creates the maps), and unlinks the pins of retired maps beside pins of their scope; returns
/// what was retired. Paths that do not exist, and pins of maps the object does not have, are
/// left alone.
pub fn retire_incompatible(
    object: &[u8],
    pins: &[(&str, PathBuf)],
    max_entries: &[(&str, u32)],
) -> Result<Retired, PinCheckError> {
    let mut retired = Retired {
        pins: retire_obsolete(pins)?,
        aside: Vec::new(),
    };
    let existing: Vec<&(&str, PathBuf)> = pins.iter().filter(|(_, p)| p.exists()).collect();
    if existing.is_empty() {
        return Ok(retired);
    }
    let mut defs = object_maps(object)?;
    for (name, entries) in max_entries {
        if let Some(def) = defs.get_mut(*name) {
            def.max_entries = *entries;
        }
    }
    for (name, path) in existing {
        // A map compiled out of this object (e.g. CT without enforcement) is not loaded: its
        // pin stays for the configurations that have it.
        let Some(want) = defs.get(*name) else {
            continue;
        };
        if let Some(reason) = pinned_mismatch(path, want)? {
            let aside = aside_path(path);
            // One left by a load that crashed before it committed or restored.
            let _ = std::fs::remove_file(&aside);
            if let Err(source) = std::fs::rename(path, &aside) {
                retired.restore();
                return Err(PinCheckError::SetAside {
                    path: path.clone(),
                    source,
                });
            }
            retired.aside.push((aside, path.clone()));
            retired.pins.push(RetiredPin {
                map: name.to_string(),
                path: path.clone(),
                reason,
            });
        }
    }
    Ok(retired)
}

/// Unlinks the pins of [`codegen::maps::RETIRED`] maps found in a directory that holds (or
/// would hold) a requested pin of a current map of the same scope.
fn retire_obsolete(pins: &[(&str, PathBuf)]) -> Result<Vec<RetiredPin>, PinCheckError> {
    let mut retired = Vec::new();
    let mut dirs: Vec<(&Path, Pin)> = Vec::new();
    for (name, path) in pins {
        let (Some(map), Some(dir)) = (codegen::maps::by_name(name), path.parent()) else {
            continue;
        };
        if !dirs.contains(&(dir, map.pin)) {
            dirs.push((dir, map.pin));
        }
    }
    for (dir, scope) in dirs {
        for (old, pin) in codegen::maps::RETIRED {
            let path = dir.join(old);
            if *pin != scope || !path.exists() {
                continue;
            }
            std::fs::remove_file(&path).map_err(|source| PinCheckError::Unlink {
                path: path.clone(),
                source,
            })?;
            retired.push(RetiredPin {
                map: old.to_string(),
                path,
                reason: "no longer in the map table".into(),
            });
        }
    }
    Ok(retired)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(map_type: u32, value_size: u32, max_entries: u32) -> Shape {
        Shape {
            map_type,
            key_size: 8,
            value_size,
            max_entries,
            flags: 1,
        }
    }

    #[test]
    fn every_difference_is_named() {
        let want = shape(1, 32, 1024);
        assert_eq!(shape(1, 32, 1024).mismatch(&want), None);
        assert_eq!(
            shape(9, 24, 1024).mismatch(&want).as_deref(),
            Some("map type 9 (want 1), value size 24 (want 32)")
        );
        assert_eq!(
            shape(1, 32, 65536).mismatch(&want).as_deref(),
            Some("max entries 65536 (want 1024)")
        );
    }

    #[test]
    fn ring_buffers_compare_by_type_only() {
        let want = shape(RINGBUF, 0, 4096);
        assert_eq!(shape(RINGBUF, 0, 8192).mismatch(&want), None);
        assert!(shape(1, 0, 4096).mismatch(&want).is_some());
    }
}
