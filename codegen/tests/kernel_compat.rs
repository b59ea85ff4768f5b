//! Kernel compatibility of the generated objects, read from their instructions: BPF atomics
//! with fetch (Linux 5.12) appear only in programs built with the flow cache's deny slots
//! (`MapSizes::deny_cache`); without them, with every feature on, none do.

use codegen::clang::{Clang, ObjectCache};
use codegen::testkit::skip::{skip, Need};
use codegen::{headers, Features, MapSizes};
use object::{Object, ObjectSection, SectionKind};

const BPF_STX: u8 = 0x03;
const BPF_ATOMIC: u8 = 0xc0;
const BPF_FETCH: i32 = 0x01;

/// The atomic instructions that fetch (BPF_FETCH, and xchg/cmpxchg, which always do) in the
/// object's program sections.
fn fetch_atomics(obj: &[u8]) -> usize {
    let file = object::File::parse(obj).expect("ELF");
    file.sections()
        .filter(|s| s.kind() == SectionKind::Text)
        .flat_map(|s| {
            s.data()
                .unwrap()
                .chunks_exact(8)
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        })
        .filter(|i| {
            let imm = i32::from_le_bytes([i[4], i[5], i[6], i[7]]);
            i[0] & 0x07 == BPF_STX && i[0] & 0xe0 == BPF_ATOMIC && imm & BPF_FETCH != 0
        })
        .count()
}

#[test]
fn only_deny_slots_use_fetching_atomics() {
    let Ok(clang) = Clang::find() else {
        skip("only_deny_slots_use_fetching_atomics", Need::Clang);
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cache = ObjectCache::new(dir.path().to_path_buf());
    let count = |sizes: MapSizes| {
        let ep = headers::render_template(&Features::all(), &sizes);
        let node = headers::render_node(&sizes, 1, 0);
        let (path, _) = cache
            .get_or_compile(&clang, &ep, &node, "kernel compat")
            .unwrap();
        fetch_atomics(&std::fs::read(path).unwrap())
    };
    let with = count(MapSizes::default());
    assert!(with > 0, "the deny slots' counts are fetching atomics");
    let without = MapSizes {
        deny_cache: false,
        ..MapSizes::default()
    };
    assert_eq!(count(without), 0, "without deny slots: loadable on 5.10");
    let no_cache = MapSizes {
        flow_cache: 0,
        ..MapSizes::default()
    };
    assert_eq!(count(no_cache), 0, "without the flow cache");
}
