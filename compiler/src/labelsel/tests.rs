//! Truth tables from the Kubernetes "Labels and Selectors" documentation (set-based and
//! equality-based requirements) and Cilium's label sources (seed §3.2), plus error positions.

use super::*;

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    pairs.iter().map(|(k, v)| Label::k8s(*k, *v)).collect()
}

fn matches(sel: &str, pairs: &[(&str, &str)]) -> bool {
    parse_selector(sel).expect(sel).matches(&labels(pairs))
}

#[test]
fn equality_based_requirements() {
    // "environment = production" selects resources with key environment and value production.
    assert!(matches(
        "environment = production",
        &[("environment", "production")]
    ));
    assert!(!matches(
        "environment = production",
        &[("environment", "qa")]
    ));
    assert!(matches(
        "environment == production",
        &[("environment", "production")]
    ));
    // "tier != frontend" selects resources with tier other than frontend, and without a tier.
    assert!(matches("tier != frontend", &[("tier", "backend")]));
    assert!(matches("tier != frontend", &[]));
    assert!(!matches("tier != frontend", &[("tier", "frontend")]));
    // "environment=production,tier!=frontend": comma is AND.
    assert!(matches(
        "environment=production,tier!=frontend",
        &[("environment", "production"), ("tier", "db")]
    ));
    assert!(!matches(
        "environment=production,tier!=frontend",
        &[("environment", "production"), ("tier", "frontend")]
    ));
}

#[test]
fn set_based_requirements() {
    let sel = "environment in (production, qa)";
    assert!(matches(sel, &[("environment", "qa")]));
    assert!(!matches(sel, &[("environment", "dev")]));
    assert!(!matches(sel, &[]));
    // notin also selects resources without the key.
    let sel = "tier notin (frontend, backend)";
    assert!(matches(sel, &[("tier", "cache")]));
    assert!(matches(sel, &[]));
    assert!(!matches(sel, &[("tier", "backend")]));
    assert!(matches("partition", &[("partition", "a")]));
    assert!(!matches("partition", &[]));
    assert!(matches("!partition", &[]));
    assert!(!matches("!partition", &[("partition", "")]));
    let sel = "partition in (customerA, customerB),environment!=qa";
    assert!(matches(
        sel,
        &[("partition", "customerA"), ("environment", "prod")]
    ));
    assert!(!matches(
        sel,
        &[("partition", "customerA"), ("environment", "qa")]
    ));
}

#[test]
fn empty_selects_everything() {
    assert!(parse_selector("").unwrap().is_all());
    assert!(parse_selector("  ").unwrap().is_all());
}

#[test]
fn cilium_sources() {
    // A key without a source matches any source; `k8s:` only k8s labels (seed §3.2).
    let container: LabelSet = [Label::new(LabelSource::Container, "app", "web")]
        .into_iter()
        .collect();
    assert!(parse_selector("app=web").unwrap().matches(&container));
    assert!(!parse_selector("k8s:app=web").unwrap().matches(&container));
    assert!(parse_selector("container:app=web")
        .unwrap()
        .matches(&container));
    let host: LabelSet = [Label::reserved("host")].into_iter().collect();
    assert!(parse_selector("reserved:host").unwrap().matches(&host));
    let sel = parse_selector("k8s:io.kubernetes.pod.namespace=default,any:id").unwrap();
    assert_eq!(
        sel.to_string(),
        "{any:id, k8s:io.kubernetes.pod.namespace=default}"
    );
}

#[test]
fn keywords_are_words_outside_operator_position() {
    let sel = parse_selector("in=notin,notin in (in)").unwrap();
    assert_eq!(sel.to_string(), "{any:in=notin, any:notin=in}");
    assert!(parse_selector("a=").unwrap().matches(&labels(&[("a", "")])));
}

#[test]
fn prefixed_keys() {
    let sel = parse_selector("app.kubernetes.io/name=web,k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=prod").unwrap();
    assert_eq!(sel.requirements.len(), 2);
    assert_eq!(
        sel.requirements[1].key.key,
        "io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name"
    );
}

#[test]
fn label_lists() {
    let l = parse_labels("id.curl").unwrap();
    assert_eq!(l.to_string(), "any:id.curl");
    let l = parse_labels("k8s:app=web, env=prod").unwrap();
    assert_eq!(l.to_string(), "any:env=prod k8s:app=web");
    assert!(parse_labels("").is_err());
}

fn err(input: &str) -> SelectorError {
    parse_selector(input).expect_err(input)
}

#[test]
fn errors_point_into_the_string() {
    let e = err("tier=frontend,env in prod");
    assert_eq!((e.offset, e.len), (21, 4));
    assert!(
        matches!(e.kind, SelectorErrorKind::UnexpectedToken { .. }),
        "{:?}",
        e.kind
    );
    assert_eq!(e.kind.to_string(), "unexpected \"prod\", expected `(`");

    let e = err("env in (a,b");
    assert_eq!((e.offset, e.len), (11, 0));
    assert!(matches!(e.kind, SelectorErrorKind::UnexpectedEnd { .. }));

    let e = err("app=we$b");
    assert_eq!(e.offset, 6);
    assert_eq!(e.kind, SelectorErrorKind::InvalidCharacter('$'));

    let e = err("tier=-front");
    assert_eq!((e.offset, e.len), (5, 6));
    assert!(matches!(e.kind, SelectorErrorKind::InvalidValue { .. }));

    let e = err("a,Bad.Prefix/x=1");
    assert_eq!((e.offset, e.len), (2, 12));
    assert!(matches!(e.kind, SelectorErrorKind::InvalidKey { .. }));

    let e = err("a,,b");
    assert_eq!(e.offset, 2);
    let e = err("env in ()");
    assert_eq!(e.offset, 8);
}

#[test]
fn error_renders_with_the_string_and_a_label() {
    let report = miette::Report::new(err("env notin (a,b) x"));
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .with_width(100)
        .render_report(&mut out, report.as_ref())
        .unwrap();
    insta::assert_snapshot!(out);
}
