//! `cilium-policy lint` end to end: exit codes 0/1/2, `--deny warnings`, formats, `--explain`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(rel)
}

fn lint(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cilium-policy"))
        .arg("lint")
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run cilium-policy")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A temporary directory with one file.
fn temp_with(name: &str, text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join(name), text).expect("write");
    dir
}

const CLEAN: &str = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: ok\nspec:\n  endpointSelector:\n    matchLabels:\n      app: web\n  ingress:\n  - fromEndpoints:\n    - matchLabels:\n        app: client\n    toPorts:\n    - ports:\n      - port: \"80\"\n        protocol: TCP\n";

#[test]
fn clean_file_exits_0_with_a_summary() {
    let dir = temp_with("ok.yaml", CLEAN);
    let o = lint(&[dir.path().to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert_eq!(stdout(&o).trim(), "0 errors, 0 warnings in 1 file");
}

#[test]
fn errors_exit_1() {
    let bad = CLEAN.replace("\"80\"", "\"70000\"");
    let dir = temp_with("bad.yaml", &bad);
    let o = lint(&[dir.path().join("bad.yaml").to_str().unwrap(), "-o", "json"]);
    assert_eq!(code(&o), 1);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json on stdout");
    let d = &v["diagnostics"][0];
    assert_eq!(d["severity"], "error");
    assert_eq!(d["line"], 15);
    assert!(d["file"].as_str().unwrap().ends_with("bad.yaml"));
}

#[test]
fn warnings_exit_0_unless_denied() {
    let path = testdata("lint/CP2004-world-all-ports.yaml");
    let p = path.to_str().unwrap();
    let o = lint(&[p]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(stdout(&o).contains("CP2004"));
    assert_eq!(code(&lint(&[p, "--deny", "warnings"])), 1);
}

#[test]
fn could_not_run_exits_2() {
    let o = lint(&["/nonexistent/policies"]);
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/policies"));
    assert_eq!(code(&lint(&[])), 2, "missing PATH is a usage error");
    assert_eq!(code(&lint(&["-o", "xml", "x.yaml"])), 2);
    assert_eq!(code(&lint(&["--explain", "CP0000"])), 2);
    // A directory without a single policy file is a mistake, not a clean run.
    let empty = temp_with("README.md", "not a policy");
    let o = lint(&[empty.path().to_str().expect("utf-8 temp path")]);
    assert_eq!(code(&o), 2);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no policy files under"), "{err}");
}

#[test]
fn github_and_sarif_formats() {
    let p = testdata("lint/CP2004-world-all-ports.yaml");
    let o = lint(&[p.to_str().unwrap(), "-o", "github"]);
    let out = stdout(&o);
    assert!(
        out.lines().all(|l| l.starts_with("::warning file=")),
        "{out}"
    );
    assert!(out.contains(",title=CP2004::"));
    let o = lint(&[p.to_str().unwrap(), "-o", "sarif"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("sarif json");
    assert_eq!(v["version"], "2.1.0");
    assert_eq!(v["runs"][0]["results"][0]["ruleId"], "CP2004");
}

#[test]
fn explain_prints_the_doc() {
    let o = lint(&["--explain", "shadowed-rule"]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).starts_with("CP2003 shadowed-rule (warning)"));
}

#[test]
fn verbose_lists_skipped_objects() {
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  a: b\n";
    let dir = temp_with("cm.yaml", cm);
    let o = lint(&[dir.path().to_str().unwrap(), "-v"]);
    assert_eq!(code(&o), 0);
    assert!(
        stdout(&o).contains("skipped v1 ConfigMap/web at "),
        "{}",
        stdout(&o)
    );
}
