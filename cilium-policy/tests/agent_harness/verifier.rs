//! Faults the kernel verifier refuses, and what is attached afterwards: shared by the tests
//! of verifier rejections on a live agent.

use super::Agent;
use runtime_loader::testkit::Netns;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An unchecked read of packet byte 64 (no bounds check against `data_end`): the verifier
/// refuses the program it is in ("invalid access to packet").
pub const UNCHECKED_READ: &str =
    "if (*(volatile __u8 *)((void *)(long)skb->data + 64) == 0xff) return TC_ACT_SHOT;";

/// Where [`faulty_clang`] puts the fault, relative to the line it looks for.
pub enum Insert {
    Before,
    After,
}

/// Writes a faulty toolchain in `dir`: the real clang, with [`UNCHECKED_READ`] inserted
/// before or after every line `line` (a whole line of bpf_lxc.c, matched with sed's basic
/// regular expressions) in the copy of bpf_lxc.c it compiles. The agent uses it through
/// `$CLANG`.
pub fn faulty_clang(dir: &Path, line: &str, at: Insert) -> PathBuf {
    let real = codegen::clang::Clang::find().expect("clang").path;
    let replacement = match at {
        Insert::Before => format!("\\t{UNCHECKED_READ}\\n&"),
        Insert::After => format!("&\\n\\t{UNCHECKED_READ}"),
    };
    let script = format!(
        r#"#!/bin/sh
for a in "$@"; do
  case "$a" in
    *bpf_lxc.c) sed -i 's|^{line}$|{replacement}|' "$a" ;;
  esac
done
exec '{real}' "$@"
"#,
        real = real.display()
    );
    let path = dir.join("clang-with-fault");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Ids of the programs attached for endpoint `id`: from its pinned tcx links (`--attach-mode
/// tcx`), or from the tc filters on its host-side interface (tc mode, the default).
pub fn attached_programs(agent: &Agent, node: &Netns, id: u16, iface: &str) -> Vec<u64> {
    let dir = agent.endpoint_pins(id);
    let links = ["link-from-endpoint", "link-to-endpoint"].map(|l| dir.join(l));
    let mut ids = Vec::new();
    if links.iter().all(|l| l.exists()) {
        for l in &links {
            collect_prog_ids(
                &bpftool(None, &["link", "show", "pinned", &l.display().to_string()]),
                &mut ids,
            );
        }
    } else {
        // tc mode: `bpftool net show` names each filter's program `id`.
        let shown = bpftool(Some(node), &["net", "show", "dev", iface]);
        for dev in shown.as_array().into_iter().flatten() {
            for f in dev["tc"].as_array().into_iter().flatten() {
                ids.extend(f["id"].as_u64());
            }
        }
    }
    ids.sort();
    ids
}

pub fn bpftool(ns: Option<&Netns>, args: &[&str]) -> serde_json::Value {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &ns.name, "bpftool"]);
            c
        }
        None => Command::new("bpftool"),
    };
    let out = cmd.arg("-j").args(args).output().expect("bpftool");
    assert!(
        out.status.success(),
        "bpftool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("bpftool json")
}

pub fn collect_prog_ids(v: &serde_json::Value, out: &mut Vec<u64>) {
    match v {
        serde_json::Value::Object(m) => {
            out.extend(m.get("prog_id").and_then(|x| x.as_u64()));
            m.values().for_each(|x| collect_prog_ids(x, out));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_prog_ids(x, out)),
        _ => {}
    }
}
