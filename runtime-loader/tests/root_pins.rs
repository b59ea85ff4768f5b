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
    // The IPv6 tables are compiled out of this IPv4-only object: their pins are not the
    // object's business.
    let names = [
        maps::POLICY.name,
        maps::CT4_TCP.name,
        maps::CT4_ANY.name,
        maps::CT6_TCP.name,
        maps::CT6_ANY.name,
        maps::STATE.name,
    ];
    let policy_pin = layout.endpoint_map(EP, maps::POLICY.name).unwrap();
    pin_foreign_map(&policy_pin, maps::POLICY.name);
    let ct6_pin = pin_of(&layout, maps::CT6_TCP.name);
    pin_foreign_map(&ct6_pin, maps::CT6_TCP.name);
    // The per-endpoint CT of builds before the node-wide CT, and a node pin of the same name
    // (not of the retired map's scope, so not the check's business).
    let old_ct = layout.endpoint_map(EP, "cp_ct4").unwrap();
    pin_foreign_map(&old_ct, "cp_ct4");
    let node_namesake = layout.shared_map("cp_ct4").unwrap();
    pin_foreign_map(&node_namesake, "cp_ct4");
    // The map of maps the node's tables were reached through before the programs named them.
    let old_outer = layout.shared_map("cp_ct4_global").unwrap();
    pin_foreign_map(&old_outer, "cp_ct4_global");

    // First load: the foreign policy map and the old CT pins are retired and the policy map
    // replaced; the others are created.
    let opts = LoadOptions {
        map_pins: pins(&layout, &names),
        ..Default::default()
    };
    let dp = load(&object, &opts).unwrap_or_else(|e| panic!("{e}"));
    let mut retired: Vec<(&str, &Path)> = dp
        .retired_pins
        .iter()
        .map(|r| (r.map.as_str(), r.path.as_path()))
        .collect();
    retired.sort();
    assert_eq!(
        retired,
        [
            ("cp_ct4", old_ct.as_path()),
            ("cp_ct4_global", old_outer.as_path()),
            (maps::POLICY.name, policy_pin.as_path()),
        ]
    );
    assert!(!old_ct.exists(), "the old per-endpoint CT pin is gone");
    assert!(!old_outer.exists(), "the old map of maps is gone");
    assert!(node_namesake.exists());
    let r = dp
        .retired_pins
        .iter()
        .find(|r| r.map == maps::POLICY.name)
        .unwrap();
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
    drop(dp);

    // A new TCP size (`--bpf-ct-global-tcp-max`) retires exactly the TCP table, which starts
    // empty; the other table keeps its entries.
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
}

/// Writes an entry into the pinned IPv4 table of other protocols; returns it.
fn table_entry(layout: &NodeLayout) -> (Vec<u8>, Vec<u8>) {
    let t = RawMap::open_pinned(&pin_of(layout, maps::CT4_ANY.name)).unwrap();
    let key = vec![9u8; t.key_size() as usize];
    let value = vec![2u8; t.value_buffer_len()];
    t.update(&key, &value).unwrap();
    (key, value)
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
