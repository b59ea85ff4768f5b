//! `diff` and `replay` on the fixtures under testdata/diff and testdata/replay, whose expected
//! output (`expect.tsv`) is written from the policies' meaning (see each README.md); exit codes
//! and bad input.

mod cli_harness;

use cli_harness::{root, run};
use std::process::Output;

fn expected(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).expect("expect.tsv")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

const TIGHTEN: &str = "testdata/diff/tighten";

fn diff_tighten(new: &str, extra: &[&str]) -> Output {
    let (c, o, n) = (
        format!("{TIGHTEN}/common"),
        format!("{TIGHTEN}/old"),
        format!("{TIGHTEN}/{new}"),
    );
    let mut args = vec!["diff", "-f", &c, "--old", &o, "--new", &n];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn diff_lists_exactly_the_flows_whose_verdict_changes() {
    let out = diff_tighten("new", &["-o", "tsv"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stdout, expected("testdata/diff/tighten/expect.tsv"));

    let d = "testdata/diff/egress-cidr";
    let out = run(&[
        "diff",
        "-f",
        &format!("{d}/common"),
        "--old",
        &format!("{d}/old"),
        "--new",
        &format!("{d}/new"),
        "--peer",
        "192.0.2.10",
        "--peer",
        "198.51.100.7",
        "--ports",
        "8443",
        "-o",
        "tsv",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stdout, expected("testdata/diff/egress-cidr/expect.tsv"));
}

#[test]
fn diff_tells_audited_flows_from_allowed_and_denied_ones() {
    let d = "testdata/diff/audit";
    let common = format!("{d}/common");
    let diff = |old: &str, new: &str, extra: &[&str]| {
        let (o, n) = (format!("{d}/{old}"), format!("{d}/{new}"));
        let mut args = vec!["diff", "-f", &common, "--old", &o, "--new", &n];
        args.extend_from_slice(extra);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out).1);
        text(&out).0
    };
    // Audit mode to enforcement: the audited flow is denied now.
    assert_eq!(
        diff("old", "new", &["-o", "tsv"]),
        expected(&format!("{d}/expect.tsv"))
    );
    let back = diff("new", "old", &[]);
    assert!(back.contains("deny -> audit"), "{back}");
    assert!(
        back.contains("would be denied by r1 CiliumNetworkPolicy shop/api-lockdown"),
        "{back}"
    );
    // Audit mode to no policy: allowed either way, but no longer audited.
    assert_eq!(
        diff("old", "none", &["-o", "tsv"]),
        expected(&format!("{d}/expect-none.tsv"))
    );
    let summary = diff("old", "none", &[]);
    assert!(
        summary.ends_with("1 changed between allowed and audited\n"),
        "{summary}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&diff("old", "none", &["-o", "json"])).unwrap();
    let old = &json["changes"][0]["old"];
    assert_eq!(
        (old["verdict"].as_str(), old["ingress"]["audit"].as_bool()),
        (Some("audit"), Some(true))
    );
}

#[test]
fn diff_of_equal_policies_written_differently_is_empty() {
    let out = diff_tighten("same", &["-o", "tsv"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout, "src\tdst\tport\tproto\told\tnew\n");
}

#[test]
fn diff_json_names_the_deciding_rules_of_each_side() {
    let out = diff_tighten("new", &["-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let first = &doc["changes"][0];
    assert_eq!(first["src"], "shop/db");
    assert_eq!(first["old"]["verdict"], "allow");
    let by = &first["old"]["ingress"]["rules"][0];
    assert_eq!(by["name"], "backend");
    assert_eq!(by["kind"], "NetworkPolicy");
    assert_eq!(by["source"], "testdata/diff/tighten/old/backend.yaml:12");
    assert_eq!(first["new"]["ingress"]["decision"], "default deny");
    let second = &doc["changes"][1];
    assert_eq!(
        second["new"]["ingress"]["rules"][0]["source"],
        "testdata/diff/tighten/new/backend.yaml:12"
    );
    let md = diff_tighten("new", &["-o", "md"]);
    let (stdout, _) = text(&md);
    assert!(
        stdout.contains(
            "| shop/db | shop/backend | 8080/tcp | allow | deny | ingress default deny |"
        ),
        "{stdout}"
    );
}

#[test]
fn diff_errors_exit_2() {
    // Inventory on one side only.
    let out = diff_tighten("common", &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("--new files define shop"), "{stderr}");
    let out = diff_tighten("new", &["--ports", "80,x/udp"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("--ports `x/udp`: `x` is not a port number"),
        "{stderr}"
    );
    let out = diff_tighten("new", &["--peer", "10.0.0.3"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("endpoint shop/db"), "{stderr}");
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: x\n  namespace: shop\nspec:\n  podSelector: 3\n").expect("write");
    let b = bad.to_string_lossy().to_string();
    let out = run(&[
        "diff",
        "-f",
        "testdata/diff/tighten/common",
        "--old",
        "testdata/diff/tighten/old",
        "--new",
        &b,
    ]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains(&format!("{b}:7:")), "{stderr}");
}

const REPLAY: &str = "testdata/replay/tighten";

fn replay(flows: &str, side: &str, extra: &[&str]) -> Output {
    let f = format!("{REPLAY}/{flows}");
    let (c, p) = (format!("{TIGHTEN}/common"), format!("{TIGHTEN}/{side}"));
    let mut args = vec!["replay", "--flows", &f, "-f", &c, &p];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn replay_lists_the_recorded_flows_the_new_policy_changes() {
    let out = replay("flows.json", "new", &["-o", "tsv"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stdout, expected("testdata/replay/tighten/expect.tsv"));
    assert!(
        stderr.contains("skipped 1 replies and 1 drops for reasons other than policy"),
        "{stderr}"
    );
    assert!(stderr.contains("flows.json:9: shop/gone"), "{stderr}");
    let json = replay("flows.json", "new", &["-o", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(doc["compared"], 7);
    let first = &doc["changes"][0];
    assert_eq!(
        first["old"]["ingress_allowed_by"][0]["source"],
        "old/backend.yaml:12"
    );
    assert_eq!(first["new"]["ingress"]["decision"], "default deny");
}

#[test]
fn replay_on_the_recording_policy_changes_nothing() {
    let out = replay("flows.json", "old", &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("0 of 7 flows would change"), "{stdout}");
}

#[test]
fn replay_names_the_bad_line_and_field() {
    let out = replay("bad-flows.json", "new", &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("bad-flows.json:2: field `l4.TCP.destination_port`"),
        "{stderr}"
    );
    let out = replay("missing.json", "new", &[]);
    assert_eq!(out.status.code(), Some(2));
}
