//! Builds the per_packet bench's endpoint datapaths with this source tree and pins them in a
//! bpffs directory (`benches/support/pinned.rs`), for `per_packet_ab` to measure beside the
//! datapaths of another tree in one process. Needs root: `per_packet_pin /sys/fs/bpf/DIR
//! [DEFINE,...]`, the endpoint template with the given macros defined (a change under
//! comparison put behind a macro while it is measured).
//! The programs stay loaded until the directory is removed (`rm -r`).

#[path = "../benches/support/datapath.rs"]
mod datapath;
#[path = "../benches/support/pinned.rs"]
mod pinned;

use aya::programs::SchedClassifier;
use codegen::{maps, MapSizes};
use datapath::Build;
use pinned::{CONFIGS, EVENTS, FLOOR, PROG};
use runtime_loader::load::default_state;
use std::path::{Path, PathBuf};

fn pin(ebpf: &mut aya::Ebpf, name: &str, at: &Path) {
    let prog: &mut SchedClassifier = ebpf.program_mut(name).unwrap().try_into().unwrap();
    prog.pin(at.join(PROG)).expect("pin the program");
}

fn main() {
    let Some(dir) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: per_packet_pin BPFFS_DIR [DEFINE,...]");
        std::process::exit(2);
    };
    let prelude: String = std::env::args()
        .nth(2)
        .unwrap_or_default()
        .split(',')
        .filter(|d| !d.is_empty())
        .map(|d| format!("#define {d} 1\n"))
        .collect();
    let sub = |name: &str| {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).expect("a directory on a bpffs");
        d
    };
    pin(&mut datapath::floor(), "cil_to_container", &sub(FLOOR));
    for c in &CONFIGS {
        let at = sub(c.name);
        let sizes = MapSizes {
            flow_cache: if c.flow_cache {
                MapSizes::default().flow_cache
            } else {
                0
            },
            ..MapSizes::default()
        };
        let map_pins = match c.events {
            true => vec![(maps::EVENTS.name, at.join(EVENTS))],
            false => vec![],
        };
        let mut dp = datapath::datapath(
            c.entries,
            &Build {
                sizes,
                ipv6: c.ipv6,
                map_pins,
                prelude: prelude.clone(),
            },
        );
        if c.events {
            dp.set_state(&default_state()).unwrap();
        }
        pin(&mut dp.ebpf, "cil_to_container", &at);
    }
}
