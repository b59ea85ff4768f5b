//! The checked-in headers generated from Rust, `bpf-templates/include/layout.h` (the layouts)
//! and `bpf-templates/include/maps.h` (the map table), must equal the generated ones.
//! Regenerate both with `UPDATE_LAYOUT=1 cargo test -p codegen --test layout_header`.

use std::path::PathBuf;

fn check_generated(file: &str, generated: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../bpf-templates/include")
        .join(file);
    if std::env::var_os("UPDATE_LAYOUT").is_some() {
        std::fs::write(&path, generated).expect("write the header");
    }
    let on_disk = std::fs::read_to_string(&path).expect("read the header");
    assert!(
        on_disk == generated,
        "bpf-templates/include/{file} is stale; run UPDATE_LAYOUT=1 cargo test -p codegen --test layout_header"
    );
}

#[test]
fn checked_in_layout_header_is_generated_one() {
    check_generated("layout.h", &codegen::layout::render_c_header());
}

#[test]
fn checked_in_maps_header_is_generated_one() {
    check_generated("maps.h", &codegen::maps::render_c_header());
}
/// Size and alignment of a C field type: integers, or a shared struct (by its layout).
fn size_align(c_type: &str) -> (usize, usize) {
    if let Some(name) = c_type.strip_prefix("struct ") {
        let s = codegen::layout::STRUCTS
            .iter()
            .find(|s| s.c_name == name)
            .unwrap_or_else(|| panic!("unknown struct {name}"));
        let align = s.fields.iter().map(|f| field_size_align(f.c_type).1).max();
        return (s.size, align.unwrap_or(1));
    }
    let size = match c_type {
        "__u8" => 1,
        "__u16" => 2,
        "__u32" => 4,
        "__u64" => 8,
        other => panic!("unknown C type {other}"),
    };
    (size, size)
}

/// Size and alignment of a field (arrays: `count` elements).
fn field_size_align(c_type: &str) -> (usize, usize) {
    let (base, count) = match c_type.split_once('[') {
        Some((b, n)) => (b, n.trim_end_matches(']').parse::<usize>().unwrap()),
        None => (c_type, 1),
    };
    let (size, align) = size_align(base);
    (size * count, align)
}

#[test]
fn rust_offsets_are_natural_c_offsets() {
    // C lays fields out at their natural alignment; the Rust side must agree field by field
    // (the C side asserts the same offsets with _Static_assert).
    for s in codegen::layout::STRUCTS {
        let mut expected = 0usize;
        let mut max_align = 1usize;
        for f in s.fields {
            let (size, align) = field_size_align(f.c_type);
            max_align = max_align.max(align);
            expected = expected.div_ceil(align) * align;
            assert_eq!(f.offset, expected, "{}.{}", s.c_name, f.name);
            expected += size;
        }
        assert_eq!(
            s.size,
            expected.div_ceil(max_align) * max_align,
            "{} size",
            s.c_name
        );
    }
}
