//! Runs `cilium-policy test` on every fixture suite (expected verdicts written from the
//! Kubernetes and Cilium documentation) and checks the seed's getting-started outcomes with `trace`.

mod cli_harness;

use cli_harness::{root, run};
use std::path::PathBuf;

fn suites(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .expect("fixture directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("expect.tsv").exists())
        .collect();
    v.sort();
    v
}

fn check_suites(dir: &str) {
    let all = suites(dir);
    assert!(!all.is_empty(), "no suites under {dir}");
    for s in all {
        let d = s.to_string_lossy().to_string();
        let expect = s.join("expect.tsv").to_string_lossy().to_string();
        let out = run(&["test", "-f", &d, "--expect", &expect]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{d}:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(" 0 failed"), "{d}: {stdout}");
    }
}

#[test]
fn semantics_suites_match_the_documentation() {
    check_suites("testdata/semantics");
}

#[test]
fn getting_started_scenarios_match_the_seed() {
    check_suites("testdata/getting-started");
}

fn trace(args: &[&str]) -> String {
    let mut a = vec!["trace"];
    a.extend_from_slice(args);
    let out = run(&a);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The seed §5.3 command: `trace -s id.curl -d id.httpd --dport PORT`.
fn curl_to_httpd(port: &str) -> String {
    let d = "testdata/getting-started/tracing";
    trace(&["-f", d, "-s", "id.curl", "-d", "id.httpd", "--dport", port])
}

#[test]
fn seed_trace_example_is_allowed() {
    let t = curl_to_httpd("80");
    assert!(t.trim_end().ends_with("Verdict: allowed"), "{t}");
    assert!(t.contains("L3 verdict: allowed"), "{t}");
    assert!(t.contains("L4 egress verdict: allowed"), "{t}");
    assert!(t.contains("L4 ingress verdict: allowed"), "{t}");
    assert!(
        t.contains("policy.json:13:15"),
        "rules are named by file:line:column\n{t}"
    );
    let t = curl_to_httpd("8080");
    assert!(t.trim_end().ends_with("Verdict: denied"), "{t}");
}

const APP2: &str = "default/app2-2889674625-wxs08";
const APP1: &str = "default/app1-2741898079-661z0";

#[test]
fn seed_l7_policy_allows_public_and_denies_private() {
    let k = "testdata/getting-started/kubernetes";
    let get = |path: &str| {
        trace(&[
            "-f",
            k,
            "--src",
            APP2,
            "--dst",
            APP1,
            "--dport",
            "80/tcp",
            "--http-method",
            "GET",
            "--http-path",
            path,
        ])
    };
    let public = get("/public");
    assert!(public.trim_end().ends_with("Verdict: allowed"), "{public}");
    let private = get("/private");
    assert!(private.trim_end().ends_with("Verdict: denied"), "{private}");
    assert!(private.contains("L7 ingress verdict: denied"), "{private}");
    assert!(
        private.contains("NetworkPolicy default/access-backend"),
        "{private}"
    );
}

#[test]
fn seed_language_http_example() {
    let d = "testdata/semantics/cilium-l7";
    let req = |m: &str, p: &str, h: Option<&str>| {
        let mut a = vec![
            "-f",
            d,
            "--src",
            "default/client",
            "--dst",
            "default/myservice",
            "--dport",
            "80",
            "--http-method",
            m,
            "--http-path",
            p,
        ];
        if let Some(h) = h {
            a.extend_from_slice(&["--http-header", h]);
        }
        trace(&a).trim_end().ends_with("Verdict: allowed")
    };
    assert!(req("GET", "/path1", None));
    assert!(!req("GET", "/path2", None));
    assert!(!req("PUT", "/path2", None));
    assert!(req("PUT", "/path2", Some("X-My-Header: true")));
    assert!(!req("DELETE", "/path1", None));
}

#[test]
fn trace_json_carries_the_verdict_and_provenance() {
    let k = "testdata/getting-started/kubernetes";
    let out = trace(&[
        "-f",
        k,
        "--src",
        "default/app3-3000954754-fbqzt",
        "--dst",
        APP1,
        "--dport",
        "80",
        "-o",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["verdict"], "denied");
    let rules = v["ingress"]["rules"].as_array().expect("rules");
    assert!(rules.iter().any(|r| r["name"] == "access-backend"
        && r["namespace"] == "default"
        && r["location"]
            .as_str()
            .is_some_and(|l| l.ends_with("l3_l4_policy.yaml:10:5"))));
}

#[test]
fn test_reports_mismatches_with_exit_1() {
    let dir = std::env::temp_dir().join(format!("cp-sem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let f = dir.join("wrong.tsv");
    std::fs::write(&f, format!("src\tdst\tport\tproto\tverdict\n{APP2}\t{APP1}\t80\ttcp\tallow\ndefault/app3-3000954754-fbqzt\t{APP1}\t80\ttcp\tallow\n")).expect("write");
    let out = run(&[
        "test",
        "-f",
        "testdata/getting-started/kubernetes",
        "--expect",
        &f.to_string_lossy(),
        "-o",
        "tsv",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("src\tdst\tport\tproto\texpected\tactual\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "default/app3-3000954754-fbqzt\tdefault/app1-2741898079-661z0\t80\ttcp\tallow\tdeny"
        ),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("wrong.tsv:3:") && stderr.contains("none allows it"),
        "{stderr}"
    );
    std::fs::write(&f, "src\tdst\tport\n").expect("write");
    let bad = run(&[
        "test",
        "-f",
        "testdata/getting-started/kubernetes",
        "--expect",
        &f.to_string_lossy(),
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("wrong.tsv:1:1"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn endpoints_and_connectivity_views() {
    let k = "testdata/getting-started/kubernetes";
    let out = run(&["endpoints", "-f", k]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.starts_with("ENDPOINT"), "{s}");
    let app1 = s.lines().find(|l| l.starts_with(APP1)).expect("app1 row");
    assert!(
        app1.contains("Enabled") && app1.contains("10.15.191.0") && app1.contains("k8s:id=app1"),
        "{app1}"
    );
    let app2 = s.lines().find(|l| l.starts_with(APP2)).expect("app2 row");
    assert!(!app2.contains("Enabled"), "{app2}");
    let out = run(&["connectivity", "-f", k, "-o", "tsv"]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains(&format!("{APP2}\t{APP1}\ttcp\t80-80\tallow\n")),
        "{s}"
    );
    assert!(
        !s.contains(&format!("default/app3-3000954754-fbqzt\t{APP1}\t")),
        "{s}"
    );
    assert!(
        s.contains(&format!("{APP1}\tworld\ttcp\t0-65535\tallow\n")),
        "{s}"
    );
    let dot =
        String::from_utf8_lossy(&run(&["connectivity", "-f", k, "-o", "dot"]).stdout).into_owned();
    assert!(dot.starts_with("digraph connectivity {"), "{dot}");
}

/// The Cilium docs' `cnp-icmp` example (testdata/semantics/cilium-icmp): org=empire may send echo
/// requests (ICMP type 8, ICMPv6 type 128) to the deathstar and nothing else; every output
/// format of `connectivity` says so.
#[test]
fn connectivity_reports_icmp_types_in_every_format() {
    let d = "testdata/semantics/cilium-icmp";
    let out = |o: &str| {
        let r = run(&["connectivity", "-f", d, "-o", o]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        String::from_utf8_lossy(&r.stdout).into_owned()
    };
    let (tie, star) = ("default/tiefighter", "default/deathstar");
    let want = "ICMP type 8, ICMPv6 type 128";
    let text = out("text");
    let block = text
        .split(&format!("{tie}\n"))
        .nth(1)
        .expect("tiefighter block");
    let line = block
        .lines()
        .find(|l| l.contains(star))
        .expect("to deathstar");
    assert!(line.ends_with(want), "{text}");
    let tsv = out("tsv");
    let pair: Vec<&str> = tsv
        .lines()
        .filter(|l| l.starts_with(&format!("{tie}\t{star}\t")))
        .collect();
    assert_eq!(
        pair,
        [
            format!("{tie}\t{star}\ticmp\t8-8\tallow"),
            format!("{tie}\t{star}\ticmpv6\t128-128\tallow")
        ],
        "{tsv}"
    );
    assert!(
        tsv.contains(&format!("{star}\t{tie}\ticmp\t0-255\tallow\n")),
        "{tsv}"
    );
    let json: serde_json::Value = serde_json::from_str(&out("json")).expect("json");
    let conn = json
        .as_array()
        .and_then(|a| a.iter().find(|c| c["src"] == tie && c["dst"] == star))
        .expect("pair in json");
    assert_eq!(
        conn["ports"],
        serde_json::json!([
            {"protocol": "ICMP", "unit": "type", "first": 8, "last": 8},
            {"protocol": "ICMPv6", "unit": "type", "first": 128, "last": 128}
        ])
    );
    assert!(out("md").contains(&format!("| {tie} | {star} | {want} |")));
    assert!(out("dot").contains(&format!("{tie:?} -> {star:?} [label={want:?}];")));
}

/// `connectivity --group identity`: app1's two pods (one identity) collapse into one row with
/// their count; app2 reaches them on TCP 80 only, and they do not reach each other (app1 admits
/// only app2).
#[test]
fn connectivity_groups_endpoints_by_identity() {
    let k = "testdata/getting-started/kubernetes";
    let out = run(&["connectivity", "-f", k, "--group", "identity", "-o", "md"]);
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    let row =
        |l: &&str| l.contains("default [id=app2] ×1 | identity") && l.contains("[id=app1] ×2");
    let app2_app1: Vec<&str> = s.lines().filter(row).collect();
    assert_eq!(app2_app1.len(), 1, "{s}");
    assert!(app2_app1[0].ends_with("| TCP 80 |"), "{s}");
    assert!(
        !s.lines().any(|l| l.matches("[id=app1] ×2").count() == 2),
        "app1 to app1: {s}"
    );
    let pods = run(&["connectivity", "-f", k, "-o", "tsv"]);
    let grouped = run(&["connectivity", "-f", k, "--group", "pod", "-o", "tsv"]);
    assert_eq!(pods.stdout, grouped.stdout);
}

/// `connectivity --group workload`: pods collapse into their controller (a ReplicaSet of a
/// Deployment counts as the Deployment), a workload manifest is its own workload, a bare Pod is
/// its own row.
#[test]
fn connectivity_groups_endpoints_by_workload() {
    let dir = tempfile::tempdir().unwrap();
    let pod = |name: &str, app: &str, owner: &str, hash: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: shop\n  labels:\n    app: {app}\n{hash}{owner}status:\n  podIP: 10.3.0.{}\n---\n",
            name.len()
        )
    };
    let rs = |rs: &str| {
        format!("  ownerReferences:\n  - {{apiVersion: apps/v1, kind: ReplicaSet, name: {rs}, uid: u1, controller: true}}\n")
    };
    let mut inv = String::new();
    inv += &pod(
        "web-5d4f8-abcde",
        "web",
        &rs("web-5d4f8"),
        "    pod-template-hash: 5d4f8\n",
    );
    inv += &pod(
        "web-5d4f8-fghij1",
        "web",
        &rs("web-5d4f8"),
        "    pod-template-hash: 5d4f8\n",
    );
    inv += &pod("debug", "debug", "", "");
    inv += "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\n  namespace: shop\nspec:\n  template:\n    metadata:\n      labels:\n        app: db\n    spec:\n      containers: []\n---\n";
    let policy = r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{port: 5432}]
"#;
    std::fs::write(dir.path().join("inv.yaml"), inv).unwrap();
    std::fs::write(dir.path().join("db.yaml"), policy).unwrap();
    let d = dir.path().display().to_string();
    let out = run(&["connectivity", "-f", &d, "--group", "workload", "-o", "tsv"]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{s}");
    let row = "shop/Deployment/web\t2\tshop/StatefulSet/db\t1\ttcp\t5432-5432\tallow";
    assert!(s.lines().any(|l| l == row), "{s}");
    assert!(
        !s.lines()
            .any(|l| l.starts_with("shop/Pod/debug\t1\tshop/StatefulSet/db")),
        "debug is not allowed to db: {s}"
    );
    assert!(
        s.contains("shop/Pod/debug\t1\t"),
        "a bare Pod is its own row: {s}"
    );
}

/// `connectivity` marks what passes only in audit mode, as `trace` does (the fixture's
/// expectations: client → web 80 is audited, client → api 8080 is allowed as written).
#[test]
fn connectivity_marks_audited_ranges() {
    let out = run(&["connectivity", "-f", "testdata/semantics/cilium-audit-mode"]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{s}");
    let from_client: Vec<&str> = s
        .lines()
        .skip_while(|l| *l != "default/client")
        .skip(1)
        .take_while(|l| l.starts_with("  => "))
        .collect();
    let to = |dst: &str| {
        from_client
            .iter()
            .find(|l| l.split_whitespace().nth(1) == Some(dst))
            .map(|l| l.split_once(dst).unwrap().1.trim().to_string())
            .unwrap_or_else(|| panic!("no row to {dst}: {s}"))
    };
    assert_eq!(to("default/web"), "TCP 80 (audit)");
    assert!(
        to("default/api").starts_with("TCP 0-8079 (audit), TCP 8080, TCP 8081-65535 (audit)"),
        "{s}"
    );
    // TSV: the last column says which.
    let out = run(&[
        "connectivity",
        "-f",
        "testdata/semantics/cilium-audit-mode",
        "-o",
        "tsv",
    ]);
    let tsv = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{tsv}");
    assert_eq!(tsv.lines().next(), Some("src\tdst\tproto\tports\tverdict"));
    for row in [
        "default/client\tdefault/web\ttcp\t80-80\taudit",
        "default/client\tdefault/api\ttcp\t0-8079\taudit",
        "default/client\tdefault/api\ttcp\t8080-8080\tallow",
    ] {
        assert!(tsv.lines().any(|l| l == row), "no `{row}` in {tsv}");
    }
}

#[test]
fn trace_to_a_service_traces_each_backend() {
    let d = "testdata/semantics/cilium-services";
    let to = |svc: &str, port: &str| {
        trace(&[
            "-f",
            d,
            "--src",
            "default/app2",
            "--dst-service",
            svc,
            "--dport",
            port,
        ])
    };
    // A service with a selector: its pods, one trace each, on the rule's port only.
    let t = to("default/db", "5432");
    assert!(
        t.contains("[default/db-0 (backend 1 of 2 of service default/db)]"),
        "{t}"
    );
    assert!(
        t.contains("[default/db-1 (backend 2 of 2 of service default/db)]"),
        "{t}"
    );
    assert!(
        t.trim_end()
            .ends_with("Service verdict: allowed to 2 of 2 backend(s)"),
        "{t}"
    );
    let t = to("db", "5433");
    assert!(
        t.trim_end()
            .ends_with("Service verdict: allowed to 0 of 2 backend(s)"),
        "{t}"
    );
    // Without a selector: each EndpointSlice address.
    let t = to("default/myservice", "443");
    for (i, a) in ["8.8.8.8", "192.0.2.10", "2001:db8::1"].iter().enumerate() {
        let line = format!(
            "[{a} (backend {} of 3 of service default/myservice)]",
            i + 1
        );
        assert!(t.contains(&line), "{line}\n{t}");
    }
    assert!(t.contains("allowed to 3 of 3"), "{t}");
    // An unknown service is an error naming it.
    let out = run(&[
        "trace",
        "-f",
        d,
        "--src",
        "default/app2",
        "--dst-service",
        "default/nope",
        "--dport",
        "80",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no Service named `default/nope`"), "{err}");
}

#[test]
fn trace_dst_fqdn_selects_the_address_for_the_name() {
    let d = "testdata/semantics/cilium-fqdn";
    let to = |name: &str| {
        let mut a = vec!["-f", d, "--src", "default/client", "--dst-ip", "192.0.2.10"];
        a.extend(["--dst-fqdn", name, "--dport", "443"]);
        trace(&a)
    };
    let t = to("api.example.com");
    assert!(t.trim_end().ends_with("Verdict: allowed"), "{t}");
    assert!(t.contains("FQDN matchName api.example.com"), "{t}");
    let t = to("www.example.com");
    assert!(t.trim_end().ends_with("Verdict: denied"), "{t}");
    let bad = run(&[
        "trace",
        "-f",
        d,
        "--src",
        "default/client",
        "--dst-ip",
        "192.0.2.10",
    ]
    .iter()
    .chain(&["--dst-fqdn", "a b", "--dport", "443"])
    .copied()
    .collect::<Vec<_>>());
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("--dst-fqdn `a b`: not a DNS name"), "{err}");
}
