//! Label selectors (`matchLabels`, `matchExpressions`) and the Kubernetes label syntax rules.

use super::codes;
use super::decode::{Cx, Field, Unknown};
use ir::{LabelKey, LabelSource, Operator, Requirement, Selector, Span};

/// How selector keys become Cilium label keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyStyle {
    /// NetworkPolicy `podSelector`: plain Kubernetes keys, source `k8s`.
    K8s,
    /// NetworkPolicy `namespaceSelector`: `k8s:io.cilium.k8s.namespace.labels.<key>`.
    NamespaceLabels,
    /// Cilium rules: an optional `source:` prefix, `any` when absent.
    Cilium,
}

/// Prefix of the labels Cilium gives endpoints for their namespace's labels.
pub const NAMESPACE_LABELS_PREFIX: &str = "io.cilium.k8s.namespace.labels.";
/// The label holding an endpoint's namespace.
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";

fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_alphanumeric();
    !b.is_empty()
        && b.len() <= 63
        && alnum(&b[0])
        && alnum(&b[b.len() - 1])
        && b.iter()
            .all(|c| alnum(c) || matches!(c, b'-' | b'_' | b'.'))
}

/// A lowercase RFC 1123 DNS subdomain of at most 253 characters.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && !s.is_empty()
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
            !b.is_empty()
                && ok(&b[0])
                && ok(&b[b.len() - 1])
                && b.iter().all(|c| ok(c) || *c == b'-')
        })
}

/// Checks a Kubernetes label key (`[prefix/]name`); the error says what is wrong.
pub fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if !is_dns_subdomain(p) {
            return Err(format!(
                "label key prefix `{p}` must be a lowercase DNS subdomain of at most 253 characters"
            ));
        }
    }
    if !is_name(name) {
        return Err(format!(
            "label key name `{name}` must be 1-63 characters of [A-Za-z0-9_.-], starting and ending with an alphanumeric"
        ));
    }
    Ok(())
}

/// Checks a Kubernetes label value (empty or a name of at most 63 characters).
pub fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_name(value) {
        Ok(())
    } else {
        Err(format!(
            "label value `{value}` must be at most 63 characters of [A-Za-z0-9_.-], starting and ending with an alphanumeric"
        ))
    }
}

/// Turns a selector key into a Cilium label key (validating it), or reports and returns `None`.
fn label_key(
    cx: &mut Cx<'_>,
    span: Span,
    path: &str,
    raw: &str,
    style: KeyStyle,
) -> Option<LabelKey> {
    let key = match style {
        KeyStyle::K8s => LabelKey::new(LabelSource::K8s, raw),
        KeyStyle::NamespaceLabels => {
            LabelKey::new(LabelSource::K8s, format!("{NAMESPACE_LABELS_PREFIX}{raw}"))
        }
        KeyStyle::Cilium => LabelKey::parse_with_default(raw, LabelSource::Any),
    };
    // Reserved labels (`reserved:host`) are Cilium's own and follow no Kubernetes rule.
    if key.source != LabelSource::Reserved {
        if let Err(e) = check_key(if style == KeyStyle::Cilium {
            &key.key
        } else {
            raw
        }) {
            cx.report(&codes::INVALID_LABEL, span, path, e, None);
            return None;
        }
    }
    Some(key)
}

fn label_value(cx: &mut Cx<'_>, f: &Field<'_>, value: &str) -> bool {
    check_value(value)
        .map_err(|e| cx.at(&codes::INVALID_LABEL, f, e))
        .is_ok()
}

/// Decodes a `LabelSelector`. Null and `{}` select everything.
pub fn selector(cx: &mut Cx<'_>, f: &Field<'_>, style: KeyStyle) -> Option<Selector> {
    let before = cx.errors();
    let m = cx.map(f, &["matchLabels", "matchExpressions"], Unknown::Error)?;
    let mut reqs = Vec::new();
    if let Some(ml) = m.get("matchLabels") {
        for (k, v, value) in cx.string_map(&ml) {
            let key = label_key(cx, k.span, &v.path, &k.text, style);
            if let (Some(key), true) = (key, label_value(cx, &v, value)) {
                reqs.push(Requirement::new(key, Operator::In, vec![value.to_string()]));
            }
        }
    }
    if let Some(me) = m.get("matchExpressions") {
        for item in cx.seq(&me) {
            if let Some(r) = expression(cx, &item, style) {
                reqs.push(r);
            }
        }
    }
    (cx.errors() == before).then(|| Selector::new(reqs))
}

fn expression(cx: &mut Cx<'_>, f: &Field<'_>, style: KeyStyle) -> Option<Requirement> {
    let m = cx.map(f, &["key", "operator", "values"], Unknown::Error)?;
    let key_f = cx.required(&m, "key");
    let op_f = cx.required(&m, "operator");
    let key = key_f.as_ref().and_then(|kf| {
        cx.str(kf)
            .and_then(|k| label_key(cx, kf.span(), &kf.path, k, style))
    });
    let op = op_f.as_ref().and_then(|of| {
        let s = cx.str(of)?;
        let op = match s {
            "In" => Operator::In,
            "NotIn" => Operator::NotIn,
            "Exists" => Operator::Exists,
            "DoesNotExist" => Operator::DoesNotExist,
            _ => {
                let help =
                    super::decode::did_you_mean(s, ["In", "NotIn", "Exists", "DoesNotExist"])
                        .map_or("use In, NotIn, Exists or DoesNotExist".to_string(), |s| {
                            format!("did you mean `{s}`?")
                        });
                cx.at_help(
                    &codes::INVALID_OPERATOR,
                    of,
                    format!("unknown operator `{s}`"),
                    help,
                );
                return None;
            }
        };
        Some(op)
    });
    let values_f = m.get("values");
    let mut values = Vec::new();
    let mut ok = true;
    if let Some(vf) = &values_f {
        for (item, v) in cx.strings(vf) {
            ok &= label_value(cx, &item, v);
            values.push(v.to_string());
        }
    }
    let op = op?;
    let at = values_f.as_ref().or(op_f.as_ref())?;
    match op {
        Operator::In | Operator::NotIn if values.is_empty() => {
            cx.at(
                &codes::INVALID_OPERATOR,
                at,
                format!("operator `{op:?}` needs at least one value"),
            );
            return None;
        }
        Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
            cx.at(
                &codes::INVALID_OPERATOR,
                at,
                format!("operator `{op:?}` must not have values"),
            );
            return None;
        }
        _ => {}
    }
    let key = key?;
    ok.then(|| Requirement::new(key, op, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Examples from the Kubernetes "Labels and Selectors" syntax rules.
    #[test]
    fn kubernetes_label_key_and_value_rules() {
        for ok in [
            "app",
            "app.kubernetes.io/name",
            "example.com/my_key-1",
            "a",
            "A9",
            &"k".repeat(63),
        ] {
            assert!(check_key(ok).is_ok(), "{ok}");
        }
        let long_prefix = format!("{}/x", "a".repeat(254));
        for bad in [
            "",
            "-app",
            "app-",
            "my key",
            "Example.com/x",
            "a/b/c",
            &"k".repeat(64),
            &long_prefix,
            "/x",
        ] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
        for ok in ["", "v1", "1.10", "a_b-c.d", &"v".repeat(63)] {
            assert!(check_value(ok).is_ok(), "{ok}");
        }
        for bad in ["-v", "v-", "front end", "a/b", &"v".repeat(64)] {
            assert!(check_value(bad).is_err(), "{bad}");
        }
    }
}
