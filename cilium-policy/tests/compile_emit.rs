//! `cilium-policy compile --emit ir|c|maps` on the testdata fixtures (snapshots), the output
//! directory, and the refusal of an overfull policy map.

use codegen::testkit::skip::{skip, Need};
use runtime_loader::testkit::require_root;
use std::path::PathBuf;
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/datapath")
        .join(name)
}

fn compile(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cilium-policy"))
        .arg("compile")
        .args(args)
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
        .output()
        .expect("run cilium-policy");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Compiles the getting-started fixture into a temporary `out/`: (dir, exit code, stderr).
fn compile_getting_started() -> (tempfile::TempDir, i32, String) {
    compile_getting_started_with(&[])
}

/// As [`compile_getting_started`], with more flags.
fn compile_getting_started_with(flags: &[&str]) -> (tempfile::TempDir, i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let fixture = fixture("getting-started");
    let mut args = vec!["-f", fixture.to_str().unwrap(), "-o", out.to_str().unwrap()];
    args.extend_from_slice(flags);
    let (code, _, stderr) = compile(&args);
    (dir, code, stderr)
}

#[test]
fn no_deny_cache_builds_objects_for_linux_5_10() {
    let (dir, code, stderr) = compile_getting_started_with(&["--no-deny-cache"]);
    if stderr.contains("clang not found") {
        skip("no_deny_cache_builds_objects_for_linux_5_10", Need::Clang);
        return;
    }
    assert_eq!(code, 0, "{stderr}");
    let out = dir.path().join("out");
    let manifest = codegen::output::Manifest::read(&out).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(manifest.min_kernel, "5.10");
    assert!(!manifest.sizes.deny_cache);
    let mut cached = 0;
    for ep in &manifest.endpoints {
        let obj = std::fs::read(out.join(&ep.object)).unwrap();
        let maps = runtime_loader::pins::object_maps(&obj).unwrap();
        assert!(
            !maps.contains_key(codegen::maps::CTGEN.name),
            "{}: no deny slots",
            ep.name
        );
        cached += usize::from(maps.contains_key(codegen::maps::FC4.name));
    }
    assert!(cached > 0, "the flow cache itself stays");
}

#[test]
fn emit_snapshots_getting_started() {
    // Explicit CT sizes: the defaults follow the machine's memory.
    for emit in ["ir", "c", "maps"] {
        let (code, stdout, stderr) = compile(&[
            "-f",
            "testdata/datapath/getting-started",
            "--emit",
            emit,
            "--bpf-ct-global-tcp-max",
            "131072",
            "--bpf-ct-global-any-max",
            "65536",
        ]);
        assert_eq!(code, 0, "{stderr}");
        insta::assert_snapshot!(format!("getting_started_{emit}"), stdout);
    }
}

#[test]
fn output_directory_has_manifest_and_endpoint_folders() {
    let (dir, code, stderr) = compile_getting_started();
    let out = dir.path().join("out");
    if stderr.contains("clang not found") {
        skip(
            "output_directory_has_manifest_and_endpoint_folders",
            Need::Clang,
        );
        return;
    }
    assert_eq!(code, 0, "{stderr}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["min_kernel"], "5.12",
        "deny slots are on by default"
    );
    assert_eq!(manifest["sizes"]["flow_cache"], 256);
    assert_eq!(manifest["version"], codegen::output::MANIFEST_VERSION);
    let eps = manifest["endpoints"].as_array().unwrap();
    assert_eq!(eps.len(), 4);
    for ep in eps {
        for f in ["header", "object", "policy_image"] {
            assert!(
                out.join(ep[f].as_str().unwrap()).is_file(),
                "{f} of {}",
                ep["name"]
            );
        }
    }
    let app1 = eps.iter().find(|e| e["name"] == "default/app1-a").unwrap();
    assert_eq!(app1["ingress_enforced"], true);
    assert_eq!(app1["egress_enforced"], false);
    let img = std::fs::read(out.join(app1["policy_image"].as_str().unwrap())).unwrap();
    let img = codegen::image::MapImage::from_bytes(&img).unwrap();
    assert_eq!(img.len(), app1["policy_entries"].as_u64().unwrap() as usize);
    for f in ["ipcache.img", "ipcache_host.img", "rules.json"] {
        assert!(out.join(f).is_file(), "{f}");
    }
}

#[test]
fn overfull_policy_map_is_refused_naming_the_endpoint() {
    let (code, _, stderr) = compile(&[
        "-f",
        "testdata/datapath/getting-started",
        "--emit",
        "maps",
        "--policy-map-size",
        "1",
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("default/app1-a"), "{stderr}");
    // Two map-state entries: identity 1's every-protocol allow, and identity 57070's TCP/80
    // allow plus its lookup marker.
    assert!(stderr.contains("needs 3 entries"), "{stderr}");
}

#[test]
fn flow_cache_slots_reach_the_header_and_must_be_a_power_of_two() {
    let args = |slots: &'static str| {
        [
            "-f",
            "testdata/datapath/getting-started",
            "--emit",
            "c",
            "--flow-cache-slots",
            slots,
        ]
    };
    let (code, stdout, stderr) = compile(&args("0"));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("#define FLOW_CACHE_SLOTS 0\n"), "{stdout}");
    let (code, _, stderr) = compile(&args("3"));
    assert_ne!(code, 0);
    assert!(
        stderr.contains("3 is not 0 or a power of two up to 65536"),
        "{stderr}"
    );
}

#[test]
fn root_every_compiled_object_loads_with_its_images() {
    if !require_root("root_every_compiled_object_loads_with_its_images") {
        return;
    }
    let (dir, code, stderr) = compile_getting_started();
    let out = dir.path().join("out");
    assert_eq!(code, 0, "{stderr}");
    let manifest = codegen::output::Manifest::read(&out).unwrap_or_else(|e| panic!("{e}"));
    let read_image = |rel: &str| {
        codegen::image::MapImage::from_bytes(&std::fs::read(out.join(rel)).unwrap()).unwrap()
    };
    let ipcache = read_image(&manifest.ipcache_image);
    let hosts = read_image(&manifest.ipcache_host_image);
    assert_eq!(ipcache.len() + hosts.len(), manifest.ipcache_entries);
    for ep in &manifest.endpoints {
        let object = std::fs::read(out.join(&ep.object)).unwrap();
        let policy = read_image(&ep.policy_image);
        let ranges = ep.range_image.as_deref().map(read_image);
        let addr = ep.addr_image.as_deref().map(read_image);
        let mut images = vec![&policy, &ipcache, &hosts];
        images.extend(ranges.as_ref());
        images.extend(addr.as_ref());
        let opts = runtime_loader::LoadOptions {
            images,
            max_entries: codegen::maps::endpoint_max_entries(ep.policy_capacity),
            ..Default::default()
        };
        let dp =
            runtime_loader::load(&object, &opts).unwrap_or_else(|e| panic!("{}: {e}", ep.name));
        let policy = dp.map(codegen::maps::POLICY.name).unwrap();
        assert_eq!(policy.max_entries(), ep.policy_capacity, "{}", ep.name);
        assert!(ep.policy_capacity < manifest.sizes.policy_map);
        // The patched constants are the endpoint's: its own source address passes the check.
        let me: std::net::IpAddr = ep.addresses[0].parse().unwrap();
        let pkt =
            runtime_loader::packet::PacketSpec::new(me, "10.0.0.99".parse().unwrap(), 17, 1000, 53);
        let prog = dp.program(ir::Direction::Egress).unwrap();
        let r = runtime_loader::test_run(prog, &pkt.build(), 1).unwrap();
        assert!(
            r.passed(),
            "{}: egress is not enforced in this scenario",
            ep.name
        );
        let spoofed = runtime_loader::packet::PacketSpec::new(
            "10.0.0.98".parse().unwrap(),
            "10.0.0.99".parse().unwrap(),
            17,
            1000,
            53,
        );
        assert!(!runtime_loader::test_run(prog, &spoofed.build(), 1)
            .unwrap()
            .passed());
    }
}
