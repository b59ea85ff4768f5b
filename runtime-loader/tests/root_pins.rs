//! Root test: pinned maps left by another layout or size, or by a map the table no longer has,
//! are retired before a load (needs root, a private bpffs, clang-19 and bpftool), compatible
//! pins are reused with their entries.

mod common;

use codegen::maps;
use codegen::{Features, MapSizes};
use runtime_loader::testkit::{require_root, PrivateBpffs};
use runtime_loader::{load, LoadOptions, NodeLayout, RawMap};
use std::path::{Path, PathBuf};

const EP: u16 = 3;

fn features() -> Features {
    Features {
        ipv4: true,
        ipv6: false,
        sip_check: false,
        ingress_policy: true,
        egress_policy: true,
        ct: true,
        l7_redirect: false,
        addr_match: false,
        port_ranges: false,
    }
}

/// What an older build might have left: a hash map with 4-byte keys and values.
fn pin_foreign_map(path: &Path, name: &str) {
    let st = std::process::Command::new("bpftool")
        .args(["map", "create"])
        .arg(path)
        .args([
            "type", "hash", "key", "4", "value", "4", "entries", "16", "name", name,
        ])
        .status()
        .expect("running bpftool (Debian package bpftool)");
    assert!(st.success(), "bpftool map create failed");
}

/// The pin path of map `name` by its scope in the map table.
fn pin_of(layout: &NodeLayout, name: &str) -> PathBuf {
    match maps::by_name(name).unwrap().pin {
        maps::Pin::Node => layout.shared_map(name).unwrap(),
        _ => layout.endpoint_map(EP, name).unwrap(),
    }
}

fn pins<'a>(layout: &NodeLayout, names: &[&'a str]) -> Vec<(&'a str, PathBuf)> {
    names.iter().map(|n| (*n, pin_of(layout, n))).collect()
}

#[test]
fn root_pins_of_another_layout_are_retired_compatible_ones_reused() {
    if !require_root("root_pins_of_another_layout_are_retired_compatible_ones_reused") {
        return;
    }
    let fs = PrivateBpffs::new();
    let layout = NodeLayout::create(&fs.path, "n").unwrap();
    let sizes = MapSizes::default();
    let object = common::template_object(&features(), &sizes);
    // cp_ct6_global is compiled out of this IPv4-only object: its pin is not the object's business.
    let names = [
        maps::POLICY.name,
        maps::CT4_TCP.name,
        maps::CT4_ANY.name,
        maps::CT4.name,
        maps::CT6_TCP.name,
        maps::CT6_ANY.name,
        maps::CT6.name,
        maps::STATE.name,
    ];
    let policy_pin = layout.endpoint_map(EP, maps::POLICY.name).unwrap();
    pin_foreign_map(&policy_pin, maps::POLICY.name);
    let ct6_pin = pin_of(&layout, maps::CT6.name);
    pin_foreign_map(&ct6_pin, maps::CT6.name);
    // The per-endpoint CT of builds before the node-wide CT, and a node pin of the same name
    // (not of the retired map's scope, so not the check's business).
    let old_ct = layout.endpoint_map(EP, "cp_ct4").unwrap();
    pin_foreign_map(&old_ct, "cp_ct4");
    let node_namesake = layout.shared_map("cp_ct4").unwrap();
    pin_foreign_map(&node_namesake, "cp_ct4");

    // First load: the foreign policy map and the old CT pin are retired and the policy map
    // replaced; the others are created.
    let opts = LoadOptions {
        map_pins: pins(&layout, &names),
        ..Default::default()
    };
    let dp = load(&object, &opts).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dp.retired_pins.len(), 2, "{:?}", dp.retired_pins);
    let old = &dp.retired_pins[0];
    assert_eq!((old.map.as_str(), &old.path), ("cp_ct4", &old_ct));
    assert!(!old_ct.exists(), "the old per-endpoint CT pin is gone");
    assert!(node_namesake.exists());
    let r = &dp.retired_pins[1];
    assert_eq!(r.map, maps::POLICY.name);
    assert!(
        r.reason.contains("key size 4") && r.reason.contains("value size 4"),
        "{}",
        r.reason
    );
    let policy = RawMap::open_pinned(&policy_pin).unwrap();
    assert_eq!(
        policy.key_size(),
        dp.map(maps::POLICY.name).unwrap().key_size()
    );
    assert_eq!(policy.max_entries(), sizes.policy_map);
    assert!(
        ct6_pin.exists(),
        "a map the object does not have keeps its pin"
    );

    // An entry written through the pin survives a reload of the same object.
    let ct = dp.map(maps::CT4_TCP.name).unwrap();
    let key = vec![7u8; ct.key_size() as usize];
    let value = vec![1u8; ct.value_buffer_len()];
    ct.update(&key, &value).unwrap();
    drop(dp);
    let dp = load(&object, &opts).unwrap_or_else(|e| panic!("{e}"));
    assert!(dp.retired_pins.is_empty(), "{:?}", dp.retired_pins);
    assert_eq!(
        dp.map(maps::CT4_TCP.name).unwrap().lookup(&key).unwrap(),
        Some(value)
    );
    assert_eq!(
        slot_ids(&dp),
        [
            map_id(&dp, maps::CT4_TCP.name),
            map_id(&dp, maps::CT4_ANY.name)
        ]
    );
    let outer_id = map_id(&dp, maps::CT4.name);
    drop(dp);

    // A new TCP size (`--bpf-ct-global-tcp-max`) retires exactly the TCP table, which starts
    // empty in slot 0 of the same outer map; the other table keeps its entries.
    let any = table_entry(&layout);
    let bigger = MapSizes {
        ct_tcp: sizes.ct_tcp * 2,
        ..MapSizes::default()
    };
    let object = common::template_object(&features(), &bigger);
    let dp = load(&object, &opts).unwrap_or_else(|e| panic!("{e}"));
    let retired: Vec<&str> = dp.retired_pins.iter().map(|r| r.map.as_str()).collect();
    assert_eq!(retired, [maps::CT4_TCP.name]);
    assert!(dp.retired_pins[0].reason.starts_with("max entries"));
    let ct = dp.map(maps::CT4_TCP.name).unwrap();
    assert_eq!(ct.max_entries(), bigger.ct_tcp);
    assert_eq!(ct.lookup(&key).unwrap(), None);
    let other = dp.map(maps::CT4_ANY.name).unwrap();
    assert_eq!(other.max_entries(), sizes.ct_any);
    assert_eq!(other.lookup(&any.0).unwrap(), Some(any.1));
    assert_eq!(
        map_id(&dp, maps::CT4.name),
        outer_id,
        "the outer map is kept"
    );
    assert_eq!(
        slot_ids(&dp),
        [
            map_id(&dp, maps::CT4_TCP.name),
            map_id(&dp, maps::CT4_ANY.name)
        ]
    );
    drop(dp);

    // Today's single-table pin (an LRU hash named like the outer map, from builds before the
    // split) is replaced by the map of maps: its connections are lost once.
    let outer = pin_of(&layout, maps::CT4.name);
    std::fs::remove_file(&outer).unwrap();
    let st = std::process::Command::new("bpftool")
        .args(["map", "create"])
        .arg(&outer)
        .args([
            "type",
            "lru_hash",
            "key",
            "24",
            "value",
            "24",
            "entries",
            "1024",
            "name",
            "cp_ct4_global",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let dp = load(&object, &opts).unwrap_or_else(|e| panic!("{e}"));
    let retired: Vec<(&str, &str)> = dp
        .retired_pins
        .iter()
        .map(|r| (r.map.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(retired.len(), 1, "{retired:?}");
    assert_eq!(retired[0].0, maps::CT4.name);
    assert!(
        retired[0].1.starts_with("map type 9 (want 12)"),
        "{}",
        retired[0].1
    );
    assert_eq!(
        slot_ids(&dp),
        [
            map_id(&dp, maps::CT4_TCP.name),
            map_id(&dp, maps::CT4_ANY.name)
        ]
    );
}

/// Writes an entry into the pinned IPv4 table of other protocols; returns it.
fn table_entry(layout: &NodeLayout) -> (Vec<u8>, Vec<u8>) {
    let t = RawMap::open_pinned(&pin_of(layout, maps::CT4_ANY.name)).unwrap();
    let key = vec![9u8; t.key_size() as usize];
    let value = vec![2u8; t.value_buffer_len()];
    t.update(&key, &value).unwrap();
    (key, value)
}

/// The kernel's id of the loaded map `name`.
fn map_id(dp: &runtime_loader::Datapath, name: &str) -> u32 {
    dp.map(name).unwrap().map_data().info().unwrap().id()
}

/// The ids of the maps in the IPv4 CT outer map's slots (both filled).
fn slot_ids(dp: &runtime_loader::Datapath) -> Vec<u32> {
    let ids = runtime_loader::slots::table_ids(map_id(dp, maps::CT4.name)).unwrap();
    assert_eq!(ids.len(), maps::CT_TABLES as usize, "{ids:?}");
    ids
}

/// A pinned outer map without its tables pinned would put private tables under every
/// endpoint: refused before anything is created.
#[test]
fn root_an_outer_map_is_pinned_only_with_its_tables() {
    if !require_root("root_an_outer_map_is_pinned_only_with_its_tables") {
        return;
    }
    let fs = PrivateBpffs::new();
    let layout = NodeLayout::create(&fs.path, "n").unwrap();
    let object = common::template_object(&features(), &MapSizes::default());
    let opts = LoadOptions {
        map_pins: pins(&layout, &[maps::CT4.name, maps::CT4_ANY.name]),
        ..Default::default()
    };
    let err = match load(&object, &opts) {
        Ok(_) => panic!("loaded with an unpinned table"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("cp_ct4_tcp"), "{err}");
    assert!(!pin_of(&layout, maps::CT4.name).exists());
}

/// The policy map sized per endpoint (`LoadOptions::max_entries`): created at that size, the pin
/// reused while the size is the same (entries kept), retired for another size.
#[test]
fn root_policy_map_is_created_and_compared_at_its_endpoint_size() {
    if !require_root("root_policy_map_is_created_and_compared_at_its_endpoint_size") {
        return;
    }
    let fs = PrivateBpffs::new();
    let layout = NodeLayout::create(&fs.path, "n").unwrap();
    let sizes = MapSizes::default();
    let object = common::template_object(&features(), &sizes);
    let with = |capacity: u32| LoadOptions {
        map_pins: pins(&layout, &[maps::POLICY.name, maps::STATE.name]),
        max_entries: maps::endpoint_max_entries(capacity),
        ..Default::default()
    };
    let small = sizes.policy_capacity(10);
    let dp = load(&object, &with(small)).unwrap_or_else(|e| panic!("{e}"));
    let policy = dp.map(maps::POLICY.name).unwrap();
    assert_eq!(policy.max_entries(), small);
    assert!(small < sizes.policy_map);
    let key = vec![7u8; policy.key_size() as usize];
    let value = vec![1u8; policy.value_buffer_len()];
    policy.update(&key, &value).unwrap();
    drop(dp);

    let dp = load(&object, &with(small)).unwrap_or_else(|e| panic!("{e}"));
    assert!(dp.retired_pins.is_empty(), "{:?}", dp.retired_pins);
    let policy = dp.map(maps::POLICY.name).unwrap();
    assert_eq!(policy.lookup(&key).unwrap(), Some(value));
    drop(dp);

    let larger = small * 4;
    let dp = load(&object, &with(larger)).unwrap_or_else(|e| panic!("{e}"));
    let retired: Vec<&str> = dp.retired_pins.iter().map(|r| r.map.as_str()).collect();
    assert_eq!(retired, [maps::POLICY.name]);
    assert_eq!(
        dp.retired_pins[0].reason,
        format!("max entries {small} (want {larger})")
    );
    let policy = RawMap::open_pinned(&pin_of(&layout, maps::POLICY.name)).unwrap();
    assert_eq!(policy.max_entries(), larger);
    assert_eq!(policy.lookup(&key).unwrap(), None, "a new, empty map");
}

/// A load that fails after the pin check (here: a map the kernel refuses to create) puts the
/// pins it set aside back, entries and all, and leaves no set-aside pin behind.
#[test]
fn root_a_failed_load_puts_the_retired_pins_back() {
    if !require_root("root_a_failed_load_puts_the_retired_pins_back") {
        return;
    }
    let fs = PrivateBpffs::new();
    let layout = NodeLayout::create(&fs.path, "n").unwrap();
    let sizes = MapSizes::default();
    let object = common::template_object(&features(), &sizes);
    let policy_pin = pin_of(&layout, maps::POLICY.name);
    let small = sizes.policy_capacity(10);
    let opts = LoadOptions {
        map_pins: pins(&layout, &[maps::POLICY.name, maps::STATE.name]),
        max_entries: maps::endpoint_max_entries(small),
        ..Default::default()
    };
    let dp = load(&object, &opts).unwrap_or_else(|e| panic!("{e}"));
    let policy = dp.map(maps::POLICY.name).unwrap();
    let key = vec![7u8; policy.key_size() as usize];
    let value = vec![1u8; policy.value_buffer_len()];
    policy.update(&key, &value).unwrap();
    drop(dp);

    // A larger policy map (its pin set aside) and a state map of no entries (refused).
    let mut failing = maps::endpoint_max_entries(small * 4);
    failing.push((maps::STATE.name, 0));
    let opts = LoadOptions {
        max_entries: failing,
        ..opts
    };
    let err = match load(&object, &opts) {
        Ok(_) => panic!("a map of no entries loaded"),
        Err(e) => e.to_string(),
    };
    let policy = RawMap::open_pinned(&policy_pin).unwrap();
    assert_eq!(policy.max_entries(), small, "the old map is back ({err})");
    assert_eq!(policy.lookup(&key).unwrap(), Some(value));
    let dir = policy_pin.parent().unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with("_retiring"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Opens the map with kernel id `id` under `name` (what `slots::fill` is given by name).
fn by_id(name: &str, id: u32) -> (String, RawMap) {
    let data = aya::maps::MapData::from_id(id).unwrap();
    (
        name.to_string(),
        RawMap::from_map_data(data, Path::new(name)).unwrap(),
    )
}

/// A slot write that fails leaves the map of maps as it was: the slot written before it gets
/// its table back (running programs share the outer map).
#[test]
fn root_a_failed_slot_write_puts_the_earlier_slots_back() {
    if !require_root("root_a_failed_slot_write_puts_the_earlier_slots_back") {
        return;
    }
    let object = common::template_object(&features(), &MapSizes::default());
    let (dp, other) = (
        load(&object, &LoadOptions::default()).unwrap(),
        load(&object, &LoadOptions::default()).unwrap(),
    );
    let before = slot_ids(&dp);
    // Slot 0 would take the other datapath's TCP table (same shape); slot 1 a policy map,
    // which the kernel refuses (another type, key and value).
    let maps: std::collections::BTreeMap<_, _> = [
        by_id(maps::CT4.name, map_id(&dp, maps::CT4.name)),
        by_id(maps::CT4_TCP.name, map_id(&other, maps::CT4_TCP.name)),
        by_id(maps::CT4_ANY.name, map_id(&other, maps::POLICY.name)),
    ]
    .into_iter()
    .collect();
    let err = runtime_loader::slots::fill(&maps).expect_err("a policy map in a CT slot");
    assert!(err.to_string().contains("slot 1"), "{err}");
    assert_eq!(slot_ids(&dp), before, "slot 0 holds its table again");
    // Without the bad table, the write goes through.
    let maps: std::collections::BTreeMap<_, _> = [
        by_id(maps::CT4.name, map_id(&dp, maps::CT4.name)),
        by_id(maps::CT4_TCP.name, map_id(&other, maps::CT4_TCP.name)),
        by_id(maps::CT4_ANY.name, map_id(&other, maps::CT4_ANY.name)),
    ]
    .into_iter()
    .collect();
    runtime_loader::slots::fill(&maps).unwrap();
    assert_eq!(slot_ids(&dp), slot_ids(&other));
}
