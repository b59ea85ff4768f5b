//! The proxy against `trace`: generated L7 policies (methods, path and host regexes, headers,
//! L3/L4-only and wider-peer rules next to them, ingress on app1 and egress on the clients) and
//! generated requests from app2 or app3 to app1; every request goes through the real egress
//! proxy of its client and the real ingress proxy of app1, and the two verdicts together (both
//! forwarded, or a 403) must equal `compiler::trace`'s for the same flow and HTTP request. The
//! proxy reads the map state; trace reads the rules.

mod common;

use common::*;
use compiler::trace::{resolve_party, trace, HttpRequest, PartySpec};
use ir::{Direction, NumericIdentity, Protocol};
use l7proxy::{ProxyConfig, SharedTable};
use proptest::prelude::*;
use std::net::SocketAddr;
use std::sync::OnceLock;

const METHODS: &[&str] = &["GET", "POST", "GET|HEAD", "P.*", "", "DELETE"];
const PATHS: &[&str] = &[
    "/public",
    "/p.*",
    "/api/v[0-9]+/.*",
    "/a(/b)?",
    "",
    "/private/?",
];
const HOSTS: &[&str] = &["app1", "(www\\.)?example\\.com", ".*\\.svc", "APP1"];
const HEADERS: &[&str] = &["X-A: 1", "X-B", "x-a: 2"];

const REQ_METHODS: &[&str] = &["GET", "POST", "PUT", "HEAD", "DELETE", "PATCH"];
const REQ_PATHS: &[&str] = &[
    "/public",
    "/private",
    "/private/",
    "/api/v1/x",
    "/api/v/x",
    "/a",
    "/a/b",
    "/p",
    "/",
];
const REQ_HOSTS: &[&str] = &["app1", "example.com", "www.example.com", "x.svc", "other"];
const REQ_HEADERS: &[(&str, &str)] = &[("X-A", "1"), ("x-a", "2"), ("X-B", "z")];

#[derive(Clone, Debug)]
struct GenHttp {
    method: Option<usize>,
    path: Option<usize>,
    host: Option<usize>,
    headers: Vec<usize>,
}

#[derive(Clone, Debug)]
struct GenRule {
    /// An egress rule of the clients (else an ingress rule of app1).
    egress: bool,
    /// Ingress: the peer, egress: the subject. 0: app2, 1: app3, 2: every endpoint.
    peer: usize,
    /// None: no port (L3 only); Some(false): the port; Some(true): a range around it.
    port: Option<bool>,
    /// None: no L7 rules (L3/L4 only).
    http: Option<Vec<GenHttp>>,
}

fn http_strategy() -> impl Strategy<Value = GenHttp> {
    (
        prop::option::of(0..METHODS.len()),
        prop::option::of(0..PATHS.len()),
        prop::option::weighted(0.3, 0..HOSTS.len()),
        prop::collection::vec(0..HEADERS.len(), 0..2),
    )
        .prop_map(|(method, path, host, headers)| GenHttp {
            method,
            path,
            host,
            headers,
        })
}

fn rule_strategy() -> impl Strategy<Value = GenRule> {
    (
        prop::bool::weighted(0.3),
        0..3usize,
        prop::option::weighted(0.85, any::<bool>()),
        prop::option::weighted(0.75, prop::collection::vec(http_strategy(), 0..4)),
    )
        .prop_map(|(egress, peer, port, http)| GenRule {
            egress,
            peer,
            port,
            http,
        })
}

fn yaml(rules: &[GenRule], port: u16) -> String {
    let mut out = String::new();
    for (i, r) in rules.iter().enumerate() {
        let sel = [
            "{matchLabels: {id: app2}}",
            "{matchLabels: {id: app3}}",
            "{}",
        ][r.peer];
        let (subject, dir, peers) = if r.egress {
            (
                sel,
                "egress",
                "toEndpoints: [{matchLabels: {id: app1}}]".to_string(),
            )
        } else {
            (
                "{matchLabels: {id: app1}}",
                "ingress",
                format!("fromEndpoints: [{sel}]"),
            )
        };
        out.push_str(&format!(
            "---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: r{i}, namespace: default}}\nspec:\n  endpointSelector: {subject}\n  {dir}:\n  - {peers}\n"
        ));
        let Some(range) = r.port else { continue };
        let ports = if range {
            format!(
                "{{port: \"{}\", endPort: {}, protocol: TCP}}",
                port - 1,
                port + 1
            )
        } else {
            format!("{{port: \"{port}\", protocol: TCP}}")
        };
        out.push_str(&format!("    toPorts:\n    - ports: [{ports}]\n"));
        let Some(http) = &r.http else { continue };
        out.push_str("      rules:\n        http:");
        if http.is_empty() {
            out.push_str(" []\n");
            continue;
        }
        out.push('\n');
        for h in http {
            out.push_str("        - {");
            let mut fields = Vec::new();
            for (name, idx, list) in [
                ("method", h.method, METHODS),
                ("path", h.path, PATHS),
                ("host", h.host, HOSTS),
            ] {
                if let Some(i) = idx {
                    fields.push(format!("{name}: {:?}", list[i]));
                }
            }
            if !h.headers.is_empty() {
                let hs: Vec<String> = h
                    .headers
                    .iter()
                    .map(|i| format!("{:?}", HEADERS[*i]))
                    .collect();
                fields.push(format!("headers: [{}]", hs.join(", ")));
            }
            out.push_str(&fields.join(", "));
            out.push_str("}\n");
        }
    }
    out
}

#[derive(Clone, Debug)]
struct GenRequest {
    from_app3: bool,
    method: usize,
    path: usize,
    host: usize,
    headers: Vec<usize>,
}

fn request_strategy() -> impl Strategy<Value = GenRequest> {
    (
        prop::bool::weighted(0.2),
        0..REQ_METHODS.len(),
        0..REQ_PATHS.len(),
        0..REQ_HOSTS.len(),
        prop::collection::btree_set(0..REQ_HEADERS.len(), 0..3),
    )
        .prop_map(|(from_app3, method, path, host, headers)| GenRequest {
            from_app3,
            method,
            path,
            host,
            headers: headers.into_iter().collect(),
        })
}

/// One runtime and backend, and for each client (app2, app3) its egress proxy and app1's ingress
/// proxy for its connections; each case stores its own table in all four.
struct Fixture {
    rt: tokio::runtime::Runtime,
    backend: SocketAddr,
    /// Per client: (egress proxy, ingress proxy) addresses.
    proxies: [(SocketAddr, SocketAddr); 2],
    tables: Vec<SharedTable>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (backend, proxies, tables) = rt.block_on(async {
            let backend = backend().await;
            // Identities depend on labels only: any world gives the same numbers (tested below).
            let world = World::new(&ingress_policy(backend.port(), "        - {}"));
            let app1 = world.identity("app1");
            let mut proxies = Vec::new();
            let mut tables = Vec::new();
            for (id, pod) in [(2, "app2"), (3, "app3")] {
                let config = ProxyConfig::default;
                let egress = (id, Direction::Egress, app1);
                let e = proxy_as(world.table(), egress, backend, config()).await;
                let ingress = (1, Direction::Ingress, world.identity(pod));
                let i = proxy_as(world.table(), ingress, backend, config()).await;
                proxies.push((e.addr, i.addr));
                tables.extend([e.table, i.table]);
            }
            (backend, proxies, tables)
        });
        Fixture {
            rt,
            backend,
            proxies: [proxies[0], proxies[1]],
            tables,
        }
    })
}

/// Sends the request through one proxy on a new connection; true when forwarded.
fn forwarded(
    f: &Fixture,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> bool {
    let status = f.rt.block_on(async {
        let mut c = client(addr).await;
        send(&mut c, method, path, headers).await.0
    });
    assert!(status == 200 || status == 403, "status {status}");
    status == 200
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    #[test]
    fn proxy_verdicts_equal_trace(
        rules in prop::collection::vec(rule_strategy(), 1..5),
        requests in prop::collection::vec(request_strategy(), 1..10),
    ) {
        let f = fixture();
        let port = f.backend.port();
        let world = World::new(&yaml(&rules, port));
        for table in &f.tables {
            table.store(world.table());
        }
        let engine = &world.engine;
        let dst = resolve_party(&engine.cluster, &PartySpec::Endpoint("default/app1".into())).unwrap();
        for r in &requests {
            let src_name = if r.from_app3 { "default/app3" } else { "default/app2" };
            let src = resolve_party(&engine.cluster, &PartySpec::Endpoint(src_name.into())).unwrap();
            let headers: Vec<(&str, &str)> = r.headers.iter().map(|i| REQ_HEADERS[*i]).collect();
            let http = HttpRequest {
                method: REQ_METHODS[r.method].into(),
                path: REQ_PATHS[r.path].into(),
                host: REQ_HOSTS[r.host].into(),
                headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            };
            let t = trace(&engine.policy, &engine.cluster, src, dst.clone(), Protocol::Tcp, port, Some(&http));
            let (egress, ingress) = f.proxies[usize::from(r.from_app3)];
            let mut all = headers.clone();
            all.push(("host", REQ_HOSTS[r.host]));
            let (method, path) = (REQ_METHODS[r.method], REQ_PATHS[r.path]);
            let out = forwarded(f, egress, method, path, &all);
            let into = forwarded(f, ingress, method, path, &all);
            prop_assert_eq!(
                out && into,
                t.allowed,
                "request {:?} from {} (egress proxy {}, ingress proxy {})\npolicy:\n{}",
                http, src_name, out, into, yaml(&rules, port)
            );
        }
    }
}

#[test]
fn identities_do_not_depend_on_the_policy() {
    let a = World::new(&ingress_policy(80, "        - {}"));
    let b = World::new("");
    for pod in ["app1", "app2", "app3"] {
        assert_eq!(a.identity(pod), b.identity(pod));
        assert_ne!(a.identity(pod), NumericIdentity::WILDCARD);
    }
}
