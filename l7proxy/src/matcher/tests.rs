use super::*;
use ir::HeaderMatch;

fn rule(method: Option<&str>, path: Option<&str>, host: Option<&str>) -> HttpRule {
    HttpRule {
        method: method.map(str::to_string),
        path: path.map(str::to_string),
        host: host.map(str::to_string),
        headers: Vec::new(),
    }
}

fn allows(m: &HttpMatcher, method: &str, path: &str, host: &str, hdrs: &[(&str, &str)]) -> bool {
    let mut headers = hyper::HeaderMap::new();
    for (n, v) in hdrs {
        headers.append(
            hyper::header::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    m.allows(&RequestView {
        method,
        path,
        host,
        headers: &headers,
    })
}

#[test]
fn seed_language_example() {
    let r1 = rule(Some("GET"), Some("/path1$"), None);
    let mut r2 = rule(Some("PUT"), Some("/path2$"), None);
    r2.headers.push(HeaderMatch {
        name: "X-My-Header".into(),
        value: Some("true".into()),
    });
    let m =
        HttpMatcher::compile(&[(RuleId(0), &r1), (RuleId(1), &r2)], &Limits::default()).unwrap();
    assert!(allows(&m, "GET", "/path1", "", &[]));
    assert!(!allows(&m, "GET", "/path2", "", &[]));
    assert!(!allows(&m, "PUT", "/path2", "", &[]));
    assert!(allows(&m, "PUT", "/path2", "", &[("x-my-header", "true")]));
    assert!(!allows(
        &m,
        "PUT",
        "/path2",
        "",
        &[("x-my-header", "false")]
    ));
    assert!(!allows(&m, "POST", "/path1", "", &[]));
    // Anchored at both ends.
    assert!(!allows(&m, "GET", "/path1/x", "", &[]));
    assert!(!allows(&m, "GETX", "/path1", "", &[]));
}

#[test]
fn host_and_rules_without_path() {
    let r1 = rule(None, None, Some("api\\.example\\.com"));
    let r2 = rule(Some("POST"), Some("/submit"), None);
    let m =
        HttpMatcher::compile(&[(RuleId(0), &r1), (RuleId(1), &r2)], &Limits::default()).unwrap();
    assert!(allows(&m, "DELETE", "/anything", "api.example.com", &[]));
    assert!(!allows(&m, "DELETE", "/anything", "apiXexample.com", &[]));
    assert!(allows(&m, "POST", "/submit", "other", &[]));
}

#[test]
fn empty_rules_and_empty_fields_allow_everything() {
    let m = HttpMatcher::compile(&[], &Limits::default()).unwrap();
    assert!(allows(&m, "GET", "/", "", &[]));
    let r = rule(Some(""), None, None);
    let m = HttpMatcher::compile(&[(RuleId(0), &r)], &Limits::default()).unwrap();
    assert!(allows(&m, "BREW", "/pot", "", &[]));
}

#[test]
fn header_presence_only() {
    let mut r = rule(None, Some("/h"), None);
    r.headers.push(HeaderMatch {
        name: "X-Token".into(),
        value: None,
    });
    let m = HttpMatcher::compile(&[(RuleId(0), &r)], &Limits::default()).unwrap();
    assert!(allows(&m, "GET", "/h", "", &[("x-token", "anything")]));
    assert!(!allows(&m, "GET", "/h", "", &[("x-other", "anything")]));
}

#[test]
fn too_large_pattern_is_refused_naming_its_rule_and_no_other() {
    let ok = rule(Some("GET"), Some("/fine"), None);
    let big = rule(None, Some("(a{1000}){1000}"), None);
    let long_host = "h".repeat(20_000);
    let long = rule(None, None, Some(&long_host));
    let errs = HttpMatcher::compile(
        &[(RuleId(0), &ok), (RuleId(7), &big), (RuleId(9), &long)],
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!(errs[0].rule_id, RuleId(7));
    assert_eq!(errs[0].field, "path");
    assert!(
        errs[0].reason.contains("compiles to more than"),
        "{}",
        errs[0]
    );
    assert_eq!(errs[1].rule_id, RuleId(9));
    assert!(errs[1].reason.contains("longer than"), "{}", errs[1]);
}

#[test]
fn many_rules_one_matcher() {
    let rules: Vec<HttpRule> = (0..1000)
        .map(|i| rule(Some("GET"), Some(&format!("/api/v1/item{i}(/.*)?")), None))
        .collect();
    let with_ids: Vec<(RuleId, &HttpRule)> = rules
        .iter()
        .enumerate()
        .map(|(i, r)| (RuleId(i as u32), r))
        .collect();
    let m = HttpMatcher::compile(&with_ids, &Limits::default()).unwrap();
    assert_eq!(m.len(), 1000);
    assert!(allows(&m, "GET", "/api/v1/item999/x", "", &[]));
    assert!(allows(&m, "GET", "/api/v1/item0", "", &[]));
    assert!(!allows(&m, "GET", "/api/v1/item1000", "", &[]));
    assert!(!allows(&m, "POST", "/api/v1/item5", "", &[]));
}
