//! The `cilium-policy` command line.

fn main() {
    println!("cilium-policy {}", env!("CARGO_PKG_VERSION"));
}
