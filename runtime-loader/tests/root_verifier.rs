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
