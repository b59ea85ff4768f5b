//! The L7 redirect on real packets (Documentation/datapath.md, "L7 redirect"): a node namespace
//! with a client and a server endpoint behind veths running the endpoint programs, the node's
//! routing rules and `lo` program (`runtime_loader::proxy`), and a transparent test proxy in
//! the node namespace. A redirected connection (server ingress, or client egress, port 80)
//! reaches the proxy with the original destination as its local address and the client as its
//! peer; the proxy's upstream connection, bound to the client's address, reaches the server,
//! which sees the client's address; data flows both ways. IPv4 and IPv6. With nothing
//! listening, the connection fails and a drop event with reason 178 is emitted.

mod common;

use codegen::clang::Clang;
use codegen::entries::EndpointEntries;
use codegen::ipcache::ipcache_images;
use codegen::layout::{Event, EVENT_DROP, MARK_MAGIC_PROXY_EGRESS, MARK_MAGIC_PROXY_INGRESS};
use codegen::template::Globals;
use codegen::{maps, EndpointConfig, Features, MapSizes};
use ir::{Direction, EndpointPolicy, IpCache, MapEntry, MapKey, MapVerdict, NumericIdentity};
use runtime_loader::testkit::{node_netns, require_root, Endpoint, Netns, PrivateBpffs};
use runtime_loader::{load, AttachMode, Datapath, Hook, LoadOptions, NodeLayout};
use socket2::{Domain, SockAddr, Socket, Type};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

const CLIENT: u32 = 1100;
const SERVER: u32 = 1200;
const PROXY_PORT: u16 = 15001;
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the redirect is: on the server's ingress or on the client's egress.
#[derive(Clone, Copy, PartialEq)]
enum Side {
    ServerIngress,
    ClientEgress,
}

fn key(id: u32, d: Direction, proto: u8, port: u16, plen: u8) -> MapKey {
    MapKey {
        identity: NumericIdentity(id),
        direction: d,
        protocol: proto,
        port,
        port_prefix_len: plen,
    }
}

/// Both directions enforced (so both endpoints track connections); everything allowed except
/// the redirected TCP/80 entry of `side` (peer `peer`), `redirect` on that side only.
fn policy(identity: u32, peer: u32, dir: Direction, redirect: bool) -> EndpointPolicy {
    let mut p = EndpointPolicy {
        endpoint: format!("default/ep{identity}"),
        identity: NumericIdentity(identity),
        ingress_enforced: true,
        egress_enforced: true,
        ..Default::default()
    };
    let allow = |rule| MapEntry {
        verdict: MapVerdict::Allow,
        rules: vec![ir::RuleId(rule)],
        audited: vec![],
    };
    p.entries
        .insert(key(0, Direction::Ingress, 0, 0, 0), allow(1));
    p.entries
        .insert(key(0, Direction::Egress, 0, 0, 0), allow(2));
    let verdict = if redirect {
        MapVerdict::Redirect {
            proxy_port: PROXY_PORT,
        }
    } else {
        MapVerdict::Allow
    };
    p.entries.insert(
        key(peer, dir, 6, 80, 16),
        MapEntry {
            verdict,
            rules: vec![ir::RuleId(3)],
            audited: vec![],
        },
    );
    p
}

struct Setup {
    node: Netns,
    client: Endpoint,
    server: Endpoint,
    /// The endpoints' events rings, pinned.
    client_events: PathBuf,
    server_events: PathBuf,
    /// The pinned link of the node program on `lo`.
    link: PathBuf,
    _dps: [Datapath; 2],
    _fs: PrivateBpffs,
}

fn endpoint_config(id: u32, ep: &Endpoint, identity: u32) -> EndpointConfig {
    EndpointConfig {
        id,
        name: format!("default/ep{id}"),
        identity: NumericIdentity(identity),
        ipv4: Some(ep.addr),
        ipv6: ep.addr6,
    }
}

fn load_endpoint(
    cfg: &EndpointConfig,
    pol: &EndpointPolicy,
    cache: &IpCache,
    events: &std::path::Path,
) -> Datapath {
    let (features, _) = Features::derive(cfg, pol, None);
    let obj = common::template_object(&features, &MapSizes::default());
    let entries = EndpointEntries::build(pol);
    let mut images = vec![entries.policy_image()];
    images.extend(ipcache_images(cache));
    let opts = LoadOptions {
        globals: Some(Globals::of(cfg)),
        images: images.iter().collect(),
        map_pins: vec![(maps::EVENTS.name, events.to_path_buf())],
        ..Default::default()
    };
    load(&obj, &opts).unwrap_or_else(|e| panic!("{e}"))
}

fn node_object() -> Vec<u8> {
    let clang = Clang::find().expect("clang");
    let (path, _) = common::cache()
        .node_object(&clang)
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::read(path).unwrap()
}

fn setup(side: Side, n: u8) -> Setup {
    let node = node_netns();
    let client = Endpoint::dual_stack(
        &node,
        Ipv4Addr::new(10, 91, n, 1),
        format!("fd00:91:{n}::1").parse().unwrap(),
    );
    let server = Endpoint::dual_stack(
        &node,
        Ipv4Addr::new(10, 91, n, 2),
        format!("fd00:91:{n}::2").parse().unwrap(),
    );
    let mut cache = IpCache::default();
    for (ep, id) in [(&client, CLIENT), (&server, SERVER)] {
        cache.insert(
            format!("{}/32", ep.addr).parse().unwrap(),
            NumericIdentity(id),
        );
        cache.insert(
            format!("{}/128", ep.addr6.unwrap()).parse().unwrap(),
            NumericIdentity(id),
        );
    }
    let client_pol = policy(
        CLIENT,
        SERVER,
        Direction::Egress,
        side == Side::ClientEgress,
    );
    let server_pol = policy(
        SERVER,
        CLIENT,
        Direction::Ingress,
        side == Side::ServerIngress,
    );
    let fs = PrivateBpffs::new();
    let client_events = fs.path.join("client_events");
    let server_events = fs.path.join("server_events");
    let mut client_dp = load_endpoint(
        &endpoint_config(1, &client, CLIENT),
        &client_pol,
        &cache,
        &client_events,
    );
    let mut server_dp = load_endpoint(
        &endpoint_config(2, &server, SERVER),
        &server_pol,
        &cache,
        &server_events,
    );
    let layout = NodeLayout::create(&fs.path, "n1").unwrap();
    let object = node_object();
    let hosts = [client.host.clone(), server.host.clone()];
    let link = layout.proxy_link();
    let link2 = link.clone();
    let (client_dp2, server_dp2) = node.run(move || {
        let link = link2;
        for (id, dp, iface) in [
            (1, &mut client_dp, &hosts[0]),
            (2, &mut server_dp, &hosts[1]),
        ] {
            for (hook, name) in [
                (
                    Hook::FromEndpoint,
                    runtime_loader::load::PROG_FROM_CONTAINER,
                ),
                (Hook::ToEndpoint, runtime_loader::load::PROG_TO_CONTAINER),
            ] {
                let prog: &mut aya::programs::SchedClassifier =
                    dp.ebpf.program_mut(name).unwrap().try_into().unwrap();
                runtime_loader::attach::attach_or_replace(
                    prog,
                    iface,
                    hook,
                    AttachMode::Tcx,
                    &layout.link(id, hook).unwrap(),
                )
                .unwrap();
            }
        }
        runtime_loader::proxy::install_node_redirect(&object, &link, AttachMode::Tcx).unwrap();
        // Idempotent: a second install replaces the program and keeps one rule per family.
        runtime_loader::proxy::install_node_redirect(&object, &link, AttachMode::Tcx).unwrap();
        assert!(runtime_loader::proxy::rules_installed().unwrap());
        (client_dp, server_dp)
    });
    Setup {
        node,
        client,
        server,
        client_events,
        server_events,
        link,
        _dps: [client_dp2, server_dp2],
        _fs: fs,
    }
}

fn domain(a: &IpAddr) -> Domain {
    if a.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    }
}

/// A transparent socket of `a`'s family carrying the proxy's mark.
fn proxy_socket(a: &IpAddr, mark: u32) -> Socket {
    let s = Socket::new(domain(a), Type::STREAM, None).unwrap();
    if a.is_ipv4() {
        s.set_ip_transparent_v4(true).unwrap();
    } else {
        s.set_only_v6(true).unwrap();
        s.set_ip_transparent_v6(true).unwrap();
    }
    s.set_mark(mark).unwrap();
    s.set_reuse_address(true).unwrap();
    s
}

/// The proxy's listener on loopback at the proxy port (where the datapath looks for it).
fn proxy_listener(v6: bool, mark: u32) -> TcpListener {
    let lo: IpAddr = if v6 {
        Ipv6Addr::LOCALHOST.into()
    } else {
        Ipv4Addr::LOCALHOST.into()
    };
    let s = proxy_socket(&lo, mark);
    s.bind(&SockAddr::from(SocketAddr::new(lo, PROXY_PORT)))
        .unwrap();
    s.listen(16).unwrap();
    s.into()
}

/// Accepts one connection within [`IO_TIMEOUT`] (a test that fails does not hang).
fn accept_within(l: &TcpListener) -> std::io::Result<(TcpStream, SocketAddr)> {
    l.set_nonblocking(true)?;
    let start = std::time::Instant::now();
    loop {
        match l.accept() {
            Ok((c, peer)) => {
                c.set_nonblocking(false)?;
                return Ok((c, peer));
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock && start.elapsed() < IO_TIMEOUT =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
}

/// What the test proxy saw of one connection.
#[derive(Debug)]
struct Proxied {
    local: SocketAddr,
    peer: SocketAddr,
}

/// Accepts one connection, connects upstream to its original destination from the client's
/// address (transparently, marked), and relays one line each way.
fn proxy_once(listener: TcpListener, mark: u32) -> std::io::Result<Proxied> {
    let (client, peer) = accept_within(&listener)?;
    let local = client.local_addr()?;
    client.set_read_timeout(Some(IO_TIMEOUT))?;
    let up = proxy_socket(&peer.ip(), mark);
    up.bind(&SockAddr::from(SocketAddr::new(peer.ip(), 0)))?;
    up.connect_timeout(&SockAddr::from(local), IO_TIMEOUT)?;
    let mut up: TcpStream = up.into();
    up.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new(&client).read_line(&mut line)?;
    up.write_all(format!("via-proxy {line}").as_bytes())?;
    let mut reply = String::new();
    BufReader::new(&up).read_line(&mut reply)?;
    (&client).write_all(reply.as_bytes())?;
    Ok(Proxied { local, peer })
}

/// The server: accepts one connection on port 80 and answers the line it got with the peer
/// address it sees.
fn serve_once(addr: IpAddr) -> std::io::Result<SocketAddr> {
    let l = TcpListener::bind(SocketAddr::new(addr, 80))?;
    let (c, peer) = accept_within(&l)?;
    c.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new(&c).read_line(&mut line)?;
    (&c).write_all(format!("peer={} got={line}", peer.ip()).as_bytes())?;
    Ok(peer)
}

/// The client: connects to `dst`, sends a line, returns the reply.
fn client_once(dst: SocketAddr, connect: Duration) -> std::io::Result<String> {
    let mut c = TcpStream::connect_timeout(&dst, connect)?;
    c.set_read_timeout(Some(IO_TIMEOUT))?;
    c.write_all(b"hello\n")?;
    let mut reply = String::new();
    c.read_to_string(&mut reply)?;
    Ok(reply)
}

fn redirect_end_to_end(side: Side, n: u8) {
    let s = setup(side, n);
    let mark = match side {
        Side::ServerIngress => MARK_MAGIC_PROXY_INGRESS,
        Side::ClientEgress => MARK_MAGIC_PROXY_EGRESS,
    };
    for (client_ip, server_ip) in [
        (IpAddr::from(s.client.addr), IpAddr::from(s.server.addr)),
        (
            IpAddr::from(s.client.addr6.unwrap()),
            IpAddr::from(s.server.addr6.unwrap()),
        ),
    ] {
        let v6 = server_ip.is_ipv6();
        let listener = s.node.run(move || proxy_listener(v6, mark));
        let proxy = s.node.run_detached(move || proxy_once(listener, mark));
        let server = s.server.ns.run_detached(move || serve_once(server_ip));
        std::thread::sleep(Duration::from_millis(200));
        let dst = SocketAddr::new(server_ip, 80);
        let reply = s.client.ns.run(move || client_once(dst, IO_TIMEOUT));
        let (proxied, seen) = (proxy.join().unwrap(), server.join().unwrap());
        let (Ok(reply), Ok(proxied), Ok(seen)) = (&reply, &proxied, &seen) else {
            panic!("{server_ip}: client {reply:?}, proxy {proxied:?}, server {seen:?}");
        };
        assert_eq!(
            proxied.local, dst,
            "the proxy sees the original destination"
        );
        assert_eq!(proxied.peer.ip(), client_ip, "the proxy sees the client");
        assert_eq!(seen.ip(), client_ip, "the server sees the client's address");
        assert_eq!(
            *reply,
            format!("peer={client_ip} got=via-proxy hello\n"),
            "data went client → proxy → server and back"
        );
    }
    // Removal takes everything away, and is idempotent too.
    let link = s.link.clone();
    s.node.run(move || {
        for _ in 0..2 {
            runtime_loader::proxy::remove_node_redirect(&link, AttachMode::Tcx).unwrap();
        }
        assert!(!runtime_loader::proxy::rules_installed().unwrap());
        assert!(!link.exists(), "the lo program's link is unpinned");
        let demux = std::fs::read_to_string(runtime_loader::proxy::TCP_EARLY_DEMUX).unwrap();
        assert_eq!(demux.trim(), "1");
    });
}

#[test]
fn root_proxy_server_ingress_redirect_reaches_the_transparent_proxy() {
    if require_root("root_proxy_server_ingress_redirect_reaches_the_transparent_proxy") {
        redirect_end_to_end(Side::ServerIngress, 1);
    }
}

#[test]
fn root_proxy_client_egress_redirect_reaches_the_transparent_proxy() {
    if require_root("root_proxy_client_egress_redirect_reaches_the_transparent_proxy") {
        redirect_end_to_end(Side::ClientEgress, 2);
    }
}

/// The drop events with reason `reason` in the events ring pinned at `pin`.
fn drops_with_reason(pin: &std::path::Path, reason: u8) -> Vec<Event> {
    let data = aya::maps::MapData::from_pin(pin).unwrap();
    let mut ring = aya::maps::RingBuf::try_from(aya::maps::Map::RingBuf(data)).unwrap();
    let mut out = vec![];
    while let Some(item) = ring.next() {
        if let Some(e) = Event::from_bytes(&item) {
            if e.kind == EVENT_DROP && e.reason == reason {
                out.push(e);
            }
        }
    }
    out
}

/// With no proxy listening, redirected connections fail closed, with reason 178 in the
/// redirecting endpoint's events, on both sides and in both families.
#[test]
fn root_proxy_without_listener_fails_closed_with_a_drop_event() {
    if !require_root("root_proxy_without_listener_fails_closed_with_a_drop_event") {
        return;
    }
    for (side, n) in [(Side::ServerIngress, 3), (Side::ClientEgress, 4)] {
        let s = setup(side, n);
        for server_ip in [
            IpAddr::from(s.server.addr),
            IpAddr::from(s.server.addr6.unwrap()),
        ] {
            let server = s.server.ns.run_detached(move || {
                let l = TcpListener::bind(SocketAddr::new(server_ip, 80)).unwrap();
                l.set_nonblocking(true).unwrap();
                std::thread::sleep(Duration::from_millis(1500));
                l.accept().is_ok()
            });
            std::thread::sleep(Duration::from_millis(200));
            let dst = SocketAddr::new(server_ip, 80);
            let r = s
                .client
                .ns
                .run(move || client_once(dst, Duration::from_millis(1000)));
            assert!(r.is_err(), "{server_ip}: connected without a proxy: {r:?}");
            assert!(
                !server.join().unwrap(),
                "{server_ip}: the server got the connection unfiltered"
            );
        }
        let pin = match side {
            Side::ServerIngress => &s.server_events,
            Side::ClientEgress => &s.client_events,
        };
        let drops = drops_with_reason(pin, codegen::reasons::DROP_PROXY_LOOKUP_FAILED);
        assert_eq!(
            codegen::reasons::name(178),
            Some("Proxy lookup failed"),
            "Cilium's code and text"
        );
        for family in [4u8, 6] {
            assert!(
                drops
                    .iter()
                    .any(|e| e.family == family && u16::from_be(e.dport_be) == 80),
                "no drop event 178 for family {family}: {drops:?}"
            );
        }
    }
}
