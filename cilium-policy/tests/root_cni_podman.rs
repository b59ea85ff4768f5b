//! Real containers through the CNI plugin: podman (CNI backend, runc) runs busybox containers on
//! a network chaining ptp (or bridge) and cilium-policy-cni; the agent enforces their policy from
//! the first packet, removes them with `podman rm`, collects those whose veth vanished, and a
//! container whose endpoint cannot be created does not start.

mod agent_harness;
mod podman;

use agent_harness::Agent;
use api::model::EndpointStatus;
use podman::{stderr, stdout, Podman};
use runtime_loader::testkit::{node_netns, require_root, Netns};
use std::time::{Duration, Instant};

fn pods(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| {
            let app = n.trim_end_matches(|c: char| c.is_ascii_digit());
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {n}\n  namespace: default\n  labels:\n    app: {app}\n---\n"
            )
        })
        .collect()
}

fn allow_from(name: &str, app: &str) -> String {
    format!(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: {name}\n  namespace: default\n\
         spec:\n  endpointSelector:\n    matchLabels:\n      app: web\n  ingress:\n  - fromEndpoints:\n\
         \x20   - matchLabels:\n        app: {app}\n    toPorts:\n    - ports:\n      - port: \"8080\"\n        protocol: TCP\n"
    )
}

const PTP: &str = r#"{"type": "ptp", "ipMasq": false, "ipam": {"type": "host-local",
    "ranges": [[{"subnet": "10.89.SUBNET.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}}"#;

const BRIDGE: &str = r#"{"type": "bridge", "bridge": "BRIDGE", "isGateway": true, "ipMasq": false,
    "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.89.SUBNET.0/24"}]],
    "routes": [{"dst": "0.0.0.0/0"}]}}"#;

fn endpoints(agent: &Agent) -> Vec<EndpointStatus> {
    api::client::Client::new(&agent.socket)
        .unwrap()
        .get("/v1/endpoint")
        .expect("GET /v1/endpoint")
}

fn endpoint_of(agent: &Agent, pod: &str) -> Option<EndpointStatus> {
    let pod = format!("default/{pod}");
    endpoints(agent)
        .into_iter()
        .find(|e| e.pod.as_deref() == Some(pod.as_str()))
}

/// Does any node directory of the agent's bpffs still pin endpoint `id`?
fn pinned(agent: &Agent, id: u16) -> bool {
    let root = agent
        .datapath
        .as_ref()
        .unwrap()
        .0
        .path
        .join("cilium-policy");
    std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .any(|node| node.path().join("endpoints").join(id.to_string()).exists())
}

fn veths(node: &Netns) -> usize {
    let out = std::process::Command::new("ip")
        .args(["-n", &node.name, "-o", "link", "show", "type", "veth"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// An HTTP GET of web's index with busybox nc (its wget crashes in this build): the response
/// on stdout, exit status 1 when the connection cannot be made within 3 s.
fn http_get(web: &str) -> Vec<String> {
    // stdin stays open until the server has answered and closed (HTTP/1.0), so nc never
    // closes first.
    let script =
        format!("(printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n'; sleep 2) | nc -w 3 {web} 8080");
    vec!["sh".into(), "-c".into(), script]
}

fn has_page(o: &std::process::Output) -> bool {
    o.status.success() && stdout(o).contains("hello from web")
}

/// `client-ok` gets web's page and `client-bad` cannot connect, each on its first connection.
fn check_verdicts(pm: &Podman, get: &[&str], when: &str) {
    let ok = pm.container("client-ok", false, get);
    assert!(
        has_page(&ok),
        "allowed client {when}: {}{}",
        stdout(&ok),
        stderr(&ok)
    );
    let bad = pm.container("client-bad", false, get);
    assert!(
        !bad.status.success(),
        "denied client reached web {when}: {}",
        stdout(&bad)
    );
}

fn until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

/// A web container and clients: allowed and denied from their first packet, a policy applied
/// while a client runs, `podman rm`, a vanished veth, 50 containers at once, then the agent down.
#[test]
fn root_cni_podman_ptp() {
    if !require_root("root_cni_podman_ptp") || !podman::available("root_cni_podman_ptp") {
        return;
    }
    let node = node_netns();
    let mut agent = Agent::start(&node);
    let mut names = vec!["web", "client-ok", "client-bad", "client-late", "victim"];
    let many: Vec<String> = (0..50).map(|i| format!("client-ok{i}")).collect();
    names.extend(many.iter().map(String::as_str));
    agent.ok(&["apply", "-f", &agent.file("pods.yaml", &pods(&names))]);
    agent.ok(&[
        "apply",
        "-f",
        &agent.file("web.yaml", &allow_from("web", "client-ok")),
    ]);
    let pm = Podman::new(&node, &PTP.replace("SUBNET", "71"), &agent.socket);

    let out = pm.container("web", true, &["httpd", "-f", "-p", "8080", "-h", "/www"]);
    assert!(out.status.success(), "web: {}", stderr(&out));
    let web = endpoint_of(&agent, "web").expect("web's endpoint");
    assert_eq!(web.state, "ready");
    assert!(web.container_id.is_some() && web.ipv4.is_some());
    assert_eq!(
        web.ipv4.unwrap().to_string(),
        pm.address("web"),
        "addresses come from CNI"
    );
    let list = agent.ok(&["endpoint", "list"]);
    assert!(list.contains("container:"), "{list}");
    let web_ip = pm.address("web");
    let get = http_get(&web_ip);
    let get: Vec<&str> = get.iter().map(String::as_str).collect();

    // Enforced from the first packet: the client's first connection is its whole life.
    check_verdicts(&pm, &get, "on ptp");

    // A policy applied after the client started takes effect on it.
    let late = pm.container("client-late", true, &["sleep", "600"]);
    assert!(late.status.success(), "{}", stderr(&late));
    let exec = |c: &str| {
        let mut a = vec!["exec", c];
        a.extend(&get);
        has_page(&pm.run(&a))
    };
    assert!(!exec("client-late"), "client-late is not allowed yet");
    agent.ok(&[
        "apply",
        "-f",
        &agent.file("late.yaml", &allow_from("late", "client-late")),
    ]);
    assert!(exec("client-late"), "client-late is allowed now");

    // podman rm: the endpoint and its pins go.
    let id = endpoint_of(&agent, "client-late").unwrap().id;
    assert!(pinned(&agent, id));
    let rm = pm.run(&["rm", "-f", "-t", "0", "client-late"]);
    assert!(rm.status.success(), "{}", stderr(&rm));
    assert!(endpoint_of(&agent, "client-late").is_none());
    assert!(
        !pinned(&agent, id),
        "endpoint {id}'s pins stay after podman rm"
    );

    // A container whose veth vanishes without a DEL is collected within seconds.
    let v = pm.container("victim", true, &["sleep", "600"]);
    assert!(v.status.success(), "{}", stderr(&v));
    let victim = endpoint_of(&agent, "victim").unwrap();
    node.exec(&["ip", "link", "del", &victim.iface]);
    assert!(
        until(Duration::from_secs(5), || endpoint_of(&agent, "victim")
            .is_none()),
        "the endpoint of a vanished veth was not collected"
    );
    assert!(!pinned(&agent, victim.id));

    // 50 containers at once: 50 correct ADDs, each allowed from its first packet.
    let children: Vec<_> = many
        .iter()
        .map(|n| {
            let mut a = vec!["run", "--rm", "--name", n, "--network", &pm.network];
            a.extend([
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=1024:1024",
            ]);
            a.push(&pm.image);
            a.extend(&get);
            pm.command(&a)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (n, c) in many.iter().zip(children) {
        let o = c.wait_with_output().unwrap();
        assert!(has_page(&o), "{n}: {}{}", stdout(&o), stderr(&o));
    }
    assert!(until(Duration::from_secs(10), || endpoints(&agent).len() == 1));

    // An agent restart keeps CNI endpoints and their enforcement.
    agent.kill();
    agent.spawn();
    let again = endpoint_of(&agent, "web").expect("web's endpoint after a restart");
    assert_eq!((again.id, &again.container_id), (web.id, &web.container_id));
    check_verdicts(&pm, &get, "after a restart");

    // A pod the agent does not know: ADD fails, the container does not start.
    let stranger = pm.container("stranger", false, &["true"]);
    assert!(!stranger.status.success());
    assert!(
        stderr(&stranger).contains("not applied"),
        "{}",
        stderr(&stranger)
    );

    // The agent down: ADD fails and leaves no veth behind.
    agent.kill();
    let before = veths(&node);
    let down = pm.container("client-ok0", false, &["true"]);
    assert!(
        !down.status.success(),
        "a container started without the agent"
    );
    assert!(
        stderr(&down).contains("cannot reach the agent"),
        "{}",
        stderr(&down)
    );
    assert_eq!(veths(&node), before, "a failed ADD left a veth behind");
}

/// The same enforcement on a bridge network (containers on one L2 segment).
#[test]
fn root_cni_podman_bridge() {
    if !require_root("root_cni_podman_bridge") || !podman::available("root_cni_podman_bridge") {
        return;
    }
    let node = node_netns();
    let agent = Agent::start(&node);
    agent.ok(&[
        "apply",
        "-f",
        &agent.file("pods.yaml", &pods(&["web", "client-ok", "client-bad"])),
    ]);
    agent.ok(&[
        "apply",
        "-f",
        &agent.file("web.yaml", &allow_from("web", "client-ok")),
    ]);
    let chain = BRIDGE
        .replace("SUBNET", "72")
        .replace("BRIDGE", &runtime_loader::testkit::unique_name("cpbr"));
    let pm = Podman::new(&node, &chain, &agent.socket);
    let out = pm.container("web", true, &["httpd", "-f", "-p", "8080", "-h", "/www"]);
    assert!(out.status.success(), "web: {}", stderr(&out));
    let web_ip = pm.address("web");
    let get = http_get(&web_ip);
    let get: Vec<&str> = get.iter().map(String::as_str).collect();
    check_verdicts(&pm, &get, "on a bridge");
}
