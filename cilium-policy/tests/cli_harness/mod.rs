//! The offline CLI as the tests run it: the binary, from the workspace root (so fixture paths
//! are repository-relative).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

pub fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cilium-policy"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("runs the binary")
}
