//! Every configuration of the datapath loads through the kernel verifier.

mod common;

use codegen::{Features, MapSizes};
use runtime_loader::{load, LoadOptions};

fn configurations() -> Vec<Features> {
    let all = common::all_features();
    vec![
        all,
        Features::default(),
        Features {
            ipv4: true,
            ..Default::default()
        },
        Features {
            ipv4: true,
            sip_check: true,
            ingress_policy: true,
            ct: true,
            ..Default::default()
        },
        Features {
            ipv6: true,
            sip_check: true,
            egress_policy: true,
            ct: true,
            ..Default::default()
        },
        Features {
            ipv4: true,
            ipv6: true,
            ingress_policy: true,
            egress_policy: true,
            ct: true,
            addr_match: true,
            ..Default::default()
        },
        Features {
            ipv4: true,
            ingress_policy: true,
            ct: true,
            l7_redirect: true,
            ..Default::default()
        },
        Features {
            ipv6: true,
            egress_policy: true,
            ct: true,
            l7_redirect: true,
            ..Default::default()
        },
        Features {
            l7_redirect: false,
            ..all
        },
        Features { ct: false, ..all },
        Features {
            ipv4: true,
            sip_check: true,
            egress_policy: true,
            ct: true,
            port_ranges: true,
            ..Default::default()
        },
    ]
}

#[test]
fn root_verifier_accepts_every_configuration() {
    if !runtime_loader::testkit::require_root("root_verifier_accepts_every_configuration") {
        return;
    }
    let all = common::all_features();
    // Every configuration with the default flow cache; the largest one also without it, with
    // a single slot, and without deny slots (the build for kernels before 5.12).
    let no_deny = MapSizes {
        deny_cache: false,
        ..MapSizes::default()
    };
    let sized = configurations()
        .into_iter()
        .map(|f| (f, MapSizes::default()))
        .chain([0, 1].map(|flow_cache| {
            let sizes = MapSizes {
                flow_cache,
                ..MapSizes::default()
            };
            (all, sizes)
        }))
        .chain([(all, no_deny)]);
    for (f, sizes) in sized {
        let obj = common::template_object(&f, &sizes);
        if let Err(e) = load(&obj, &LoadOptions::default()) {
            panic!("configuration {f:?} with {sizes:?} rejected: {e}");
        }
    }
}

/// The node's L7-redirect program (bpf_node.c) loads through the verifier.
#[test]
fn root_verifier_accepts_the_node_program() {
    if !runtime_loader::testkit::require_root("root_verifier_accepts_the_node_program") {
        return;
    }
    let clang = codegen::clang::Clang::find().expect("clang");
    let (path, _) = common::cache()
        .node_object(&clang)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut ebpf = aya::Ebpf::load(&std::fs::read(path).unwrap()).unwrap();
    let prog: &mut aya::programs::SchedClassifier = ebpf
        .program_mut(runtime_loader::proxy::PROG_LO)
        .unwrap()
        .try_into()
        .unwrap();
    if let Err(e) = prog.load() {
        panic!("the node program was rejected: {e:?}");
    }
}

/// The verifier's work on the all-features object at the default sizes (`verified_insns`),
/// printed for Documentation/datapath.md ("Verifier cost"). Each program must keep 5 % of the
/// verifier's 1,000,000-instruction limit free, so that a datapath change that eats the
/// headroom is seen here before it is refused on a kernel that verifies a little differently.
#[test]
fn root_verifier_all_features_keeps_headroom() {
    if !runtime_loader::testkit::require_root("root_verifier_all_features_keeps_headroom") {
        return;
    }
    const BUDGET: u32 = 950_000;
    let obj = common::template_object(&common::all_features(), &MapSizes::default());
    let dp = load(&obj, &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    for (dir, name) in [
        (
            ir::Direction::Egress,
            runtime_loader::load::PROG_FROM_CONTAINER,
        ),
        (
            ir::Direction::Ingress,
            runtime_loader::load::PROG_TO_CONTAINER,
        ),
    ] {
        let info = dp.program(dir).unwrap().info().unwrap();
        let insns = info
            .verified_instruction_count()
            .expect("verified_insns (Linux 5.16)");
        println!("{name}: {insns} verified instructions");
        assert!(insns <= BUDGET, "{name}: {insns} > {BUDGET}");
    }
}
