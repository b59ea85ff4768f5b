//! Shared helpers of the kernel tests: compiling an object for a configuration.
#![allow(dead_code)]

pub mod datapath;

use codegen::clang::{Clang, ObjectCache};
use codegen::{headers, Features, MapSizes};
use std::path::PathBuf;

pub fn cache() -> ObjectCache {
    ObjectCache::new(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bpf-objects"))
}

/// The template object for `features` (compiled once per configuration, cached).
pub fn template_object(features: &Features, sizes: &MapSizes) -> Vec<u8> {
    let clang =
        Clang::find().expect("clang (Debian package clang-19) is required for kernel tests");
    let ep = headers::render_template(features, sizes);
    let node = headers::render_node(sizes, 1, 0);
    let (path, _) = cache()
        .get_or_compile(&clang, &ep, &node, "test template")
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::read(path).expect("read object")
}

pub fn all_features() -> Features {
    Features::all()
}
