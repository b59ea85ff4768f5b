//! Templated objects: an endpoint's object patched from the template carries the same code and
//! the same read-only data as clang's output for the endpoint's own header; headers snapshot.

use codegen::clang::Clang;
use codegen::template::{Globals, PatchSites};
use codegen::testkit::skip::{skip, Need};
use codegen::{headers, testkit, EndpointConfig, Generator, MapSizes};
use ir::EndpointPolicy;
use object::{Object, ObjectSection};

fn endpoint() -> (EndpointConfig, EndpointPolicy) {
    let ep = testkit::endpoint(42, "default/app1", 4711, "10.1.2.3");
    let mut p = testkit::ingress_policy(&ep);
    testkit::allow_tcp_from(&mut p, 300, 80, 0);
    (ep, p)
}

fn section<'a>(f: &'a object::File<'a>, name: &str) -> &'a [u8] {
    f.section_by_name(name)
        .and_then(|s| s.data().ok())
        .unwrap_or_else(|| panic!("no {name}"))
}

#[test]
fn endpoint_header_snapshot() {
    let (ep, p) = endpoint();
    let (_, lines) = codegen::Features::derive(&ep, &p, None);
    insta::assert_snapshot!(headers::render_endpoint(&ep, &lines, &MapSizes::default()));
}

#[test]
fn templated_object_equals_per_endpoint_compile() {
    let Ok(clang) = Clang::find() else {
        skip("templated_object_equals_per_endpoint_compile", Need::Clang);
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (ep, p) = endpoint();
    let mut g = Generator::new(dir.path().join("cache"), MapSizes::default()).unwrap();
    let art = g.endpoint(&ep, &p, None).unwrap();
    let direct = dir.path().join("direct.o");
    clang
        .compile(
            &art.header,
            &g.node_header(0, &Default::default()),
            &direct,
            "direct",
        )
        .unwrap();
    let direct = std::fs::read(direct).unwrap();
    let (a, b) = (
        object::File::parse(&*art.object).unwrap(),
        object::File::parse(&*direct).unwrap(),
    );
    assert_eq!(
        section(&a, "classifier"),
        section(&b, "classifier"),
        "program code"
    );
    assert_eq!(
        section(&a, codegen::template::GLOBALS_SECTION),
        section(&b, codegen::template::GLOBALS_SECTION),
        "endpoint constants"
    );
    let sites = PatchSites::find(&direct).unwrap();
    assert_eq!(sites.read(&art.object), Globals::of(&ep));
    assert_eq!(sites.read(&direct).ep_identity, 4711);
}
