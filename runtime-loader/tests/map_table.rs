//! The map definitions clang builds from the generated `maps.h` are exactly the map table's
//! (`codegen::maps`): every map with its type, key and value size, size and flags, and no other.

use codegen::clang::{Clang, ObjectCache};
use codegen::maps::{Pin, MAPS};
use codegen::testkit::skip::{skip, Need};
use codegen::{headers, Features, MapSizes};
use runtime_loader::pins::{object_maps, Shape};
use std::collections::BTreeMap;

/// The object's maps, without the global data sections aya also loads as maps (`.data.ep`).
fn table_maps(object: &[u8]) -> BTreeMap<String, Shape> {
    let mut maps = object_maps(object).unwrap();
    maps.retain(|name, _| !name.starts_with('.'));
    maps
}

#[test]
fn object_maps_are_the_map_table() {
    let Ok(clang) = Clang::find() else {
        skip("object_maps_are_the_map_table", Need::Clang);
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cache = ObjectCache::new(dir.path().to_path_buf());
    // Not the defaults, so that each size is seen to come from its own field.
    let sizes = MapSizes {
        policy_map: 1_000,
        ct_tcp: 2_000,
        ct_any: 1_500,
        addr_map: 300,
        ipcache_map: 4_000,
        events_ringbuf: 64 * 1024,
        flow_cache: 128,
        deny_cache: true,
    };
    let ep = headers::render_template(&Features::all(), &sizes);
    let node = headers::render_node(&sizes, 1, 0);
    let (path, _) = cache
        .get_or_compile(&clang, &ep, &node, "map table")
        .unwrap();
    let got = table_maps(&std::fs::read(path).unwrap());
    for m in MAPS {
        assert_eq!(got.get(m.name), Some(&Shape::of(m, &sizes)), "{}", m.name);
    }
    assert_eq!(got.len(), MAPS.len(), "maps not in the table: {got:?}");
    // Without a flow cache its maps (and the deny slots' counts) are compiled out.
    let sizes = MapSizes {
        flow_cache: 0,
        ..sizes
    };
    let ep = headers::render_template(&Features::all(), &sizes);
    let node = headers::render_node(&sizes, 1, 0);
    let (path, _) = cache
        .get_or_compile(&clang, &ep, &node, "map table")
        .unwrap();
    let got = table_maps(&std::fs::read(path).unwrap());
    let cached: Vec<_> = MAPS
        .iter()
        .filter(|m| m.pin == Pin::None || m.name == codegen::maps::CTGEN.name)
        .map(|m| m.name)
        .collect();
    assert_eq!(got.len(), MAPS.len() - cached.len());
    assert!(cached.iter().all(|n| !got.contains_key(*n)), "{got:?}");
}
