//! Root test: programs verified ahead for an endpoint yet to come (runtime-loader/src/kit.rs).
//! A kit claimed by an endpoint enforces that endpoint's policy with its address and id, its
//! globals frozen; its maps are pinned where the endpoint's belong; a kit whose node maps were
//! replaced is refused; a kit is only loaded on the node's maps as they are pinned.

mod common;

use codegen::template::{Globals, PatchSites, GLOBALS_SECTION};
use codegen::{EndpointConfig, Features, MapSizes};
use common::datapath::{self as dpt, run, tcp};
use ir::{Direction, NumericIdentity};
use runtime_loader::kit::ClaimError;
use runtime_loader::load::{default_state, Loader};
use runtime_loader::packet::PacketSpec;
use runtime_loader::testkit::{require_root, PrivateBpffs};
use runtime_loader::{NodeLayout, RawMap};
use std::path::PathBuf;

/// The configuration of the hand-built endpoint (dual-stack, as `setup_endpoint` loads it),
/// with the source-address check on: it reads the endpoint's address from the globals a kit
/// gets only when claimed.
fn features() -> Features {
    let mut ep = endpoint(1, "10.0.0.1");
    ep.ipv6 = Some("fd00::1".parse().unwrap());
    let (f, _) = Features::derive(&ep, &dpt::policy(), None);
    assert!(f.sip_check);
    f
}

fn shared_pins(layout: &NodeLayout) -> Vec<(&'static str, PathBuf)> {
    codegen::maps::pinned(codegen::maps::Pin::Node)
        .map(|m| (m.name, layout.shared_map(m.name).unwrap()))
        .collect()
}

fn endpoint_pins(layout: &NodeLayout, id: u16) -> Vec<(&'static str, PathBuf)> {
    codegen::maps::pinned(codegen::maps::Pin::Endpoint)
        .map(|m| (m.name, layout.endpoint_map(id, m.name).unwrap()))
        .collect()
}

/// Writing `map` fails as the kernel fails it for a frozen map: EPERM.
fn assert_frozen(map: &RawMap) {
    let zeros = vec![0u8; map.value_size() as usize];
    match map.update(&0u32.to_ne_bytes(), &zeros) {
        Err(runtime_loader::LoaderError::Syscall { source, .. }) => {
            assert_eq!(source.raw_os_error(), Some(libc::EPERM), "{source}")
        }
        other => panic!("writing a frozen map: {other:?}"),
    }
}

fn udp(src: &str, dst: &str, sport: u16, dport: u16) -> PacketSpec {
    PacketSpec::new(dpt::ip(src), dpt::ip(dst), 17, sport, dport)
}

/// A private bpffs with a node's pin layout, and the hand-built endpoint's template.
struct Node {
    _fs: PrivateBpffs,
    layout: NodeLayout,
    sizes: MapSizes,
    template: Vec<u8>,
    sites: PatchSites,
}

impl Node {
    fn new() -> Node {
        let fs = PrivateBpffs::new();
        let layout = NodeLayout::create(&fs.path, "n").unwrap();
        let sizes = MapSizes::default();
        let template = common::template_object(&features(), &sizes);
        let sites = PatchSites::find(&template).unwrap();
        Node {
            _fs: fs,
            layout,
            sizes,
            template,
            sites,
        }
    }

    /// The hand-built endpoint loaded as endpoint `id` on the node's pins.
    fn endpoint(&self, id: u16) -> runtime_loader::Datapath {
        let mut pins = shared_pins(&self.layout);
        pins.extend(endpoint_pins(&self.layout, id));
        dpt::setup_endpoint(u32::from(id), true, &self.sizes, pins).unwrap()
    }
}

fn endpoint(id: u32, v4: &str) -> EndpointConfig {
    EndpointConfig {
        id,
        name: format!("default/ep{id}"),
        identity: NumericIdentity(dpt::EP),
        ipv4: Some(v4.parse().unwrap()),
        ipv6: None,
    }
}

#[test]
fn root_a_claimed_kit_enforces_its_endpoint_and_freezes_its_globals() {
    if !require_root("root_a_claimed_kit_enforces_its_endpoint_and_freezes_its_globals") {
        return;
    }
    let node = Node::new();
    let (layout, sizes, template, sites) = (&node.layout, node.sizes, &node.template, &node.sites);
    let entries = codegen::entries::EndpointEntries::build(&dpt::policy());
    let max_entries =
        codegen::maps::endpoint_max_entries(sizes.policy_capacity(entries.hash_len()));
    let mut loader = Loader::default();

    // Before any endpoint pinned the node's maps, nothing is loaded ahead.
    let err = loader
        .prepare(template, sites, shared_pins(layout), max_entries.clone())
        .err()
        .expect("no node maps pinned yet");
    assert!(err.to_string().contains("not pinned"), "{err}");
    assert!(!layout
        .shared_map(codegen::maps::IPCACHE.name)
        .unwrap()
        .exists());

    // A first endpoint pins them (and the ipcache entries of the hand-built test).
    let first = node.endpoint(1);

    let kit = loader
        .prepare(template, sites, shared_pins(layout), max_entries.clone())
        .unwrap();
    let ep = endpoint(2, "10.0.0.1");
    let pins = endpoint_pins(layout, 2);
    let dp = kit
        .claim(&Globals::of(&ep), &default_state(), &pins)
        .unwrap_or_else(|e| panic!("{e}"));
    for img in [
        entries.policy_image(),
        entries.range_image(),
        entries.addr_image(),
    ] {
        dp.fill(&img).unwrap();
    }

    // Its maps are the endpoint's pins, its node maps the first endpoint's.
    for (name, path) in &pins {
        if let Ok(map) = dp.map(name) {
            let pinned = RawMap::open_pinned(path).unwrap();
            assert_eq!(pinned.id().unwrap(), map.id().unwrap(), "{name}");
        }
    }
    let ipcache = codegen::maps::IPCACHE.name;
    assert_eq!(
        dp.map(ipcache).unwrap().id().unwrap(),
        first.map(ipcache).unwrap().id().unwrap()
    );

    // The globals hold the endpoint — the bytes of the object templated for it, which
    // `templated_object_equals_per_endpoint_compile` compares with clang's — and no syscall
    // changes them any more.
    let globals = dp.map(GLOBALS_SECTION).unwrap();
    let value = globals.lookup(&0u32.to_ne_bytes()).unwrap().unwrap();
    let object = sites.instantiate(template, &Globals::of(&ep));
    let parsed = aya_obj::Object::parse(&object).unwrap();
    assert_eq!(value, parsed.maps[GLOBALS_SECTION].data());
    assert_frozen(globals);

    // It enforces the hand-built policy, from the endpoint's own address only.
    assert!(run(
        &dp,
        Direction::Ingress,
        &tcp("10.0.0.2", "10.0.0.1", 40000, 80)
    ));
    assert!(!run(
        &dp,
        Direction::Ingress,
        &tcp("10.0.0.3", "10.0.0.1", 40001, 80)
    ));
    assert!(run(
        &dp,
        Direction::Egress,
        &udp("10.0.0.1", "10.0.0.2", 40002, 53)
    ));
    assert!(
        !run(
            &dp,
            Direction::Egress,
            &udp("10.0.0.9", "10.0.0.2", 40003, 53)
        ),
        "another source address"
    );

    // A normally loaded endpoint freezes its globals too.
    assert_frozen(first.map(GLOBALS_SECTION).unwrap());
}

#[test]
fn root_a_kit_on_replaced_node_maps_is_refused() {
    if !require_root("root_a_kit_on_replaced_node_maps_is_refused") {
        return;
    }
    let node = Node::new();
    let (layout, sizes) = (&node.layout, node.sizes);
    let first = node.endpoint(1);
    let kit = Loader::default()
        .prepare(
            &node.template,
            &node.sites,
            shared_pins(layout),
            codegen::maps::endpoint_max_entries(sizes.policy_capacity(0)),
        )
        .unwrap();
    // The node's ipcache is pinned anew (as after a layout change).
    drop(first);
    let ipcache = layout.shared_map(codegen::maps::IPCACHE.name).unwrap();
    std::fs::remove_file(&ipcache).unwrap();
    let _other = node.endpoint(3);
    let pins = endpoint_pins(layout, 2);
    let err = kit
        .claim(
            &Globals::of(&endpoint(2, "10.0.0.1")),
            &default_state(),
            &pins,
        )
        .err()
        .expect("stale kit");
    assert!(matches!(err, ClaimError::Stale { .. }), "{err}");
    for (_, path) in &pins {
        assert!(
            !path.exists(),
            "{} pinned by a refused claim",
            path.display()
        );
    }
}
