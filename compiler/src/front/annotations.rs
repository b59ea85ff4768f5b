//! Annotations this project reads from object metadata.

use super::codes;
use super::decode::Cx;
use super::decode::Map;

/// Puts a policy, or every endpoint of a Namespace, into audit mode: what it alone would deny
/// passes and is reported as audited (Documentation/policy-semantics.md, "Audit mode").
pub const AUDIT_MODE: &str = "cilium-policy.io/audit-mode";

/// Whether `metadata` (a decoded `metadata` mapping) has `cilium-policy.io/audit-mode: "true"`.
/// Values other than `"true"` and `"false"` are an error naming the annotation.
pub fn audit_mode(cx: &mut Cx<'_>, metadata: &Map<'_>) -> bool {
    let Some(f) = metadata.get("annotations") else {
        return false;
    };
    let mut on = false;
    for (k, v, value) in cx.string_map(&f) {
        if k.text != AUDIT_MODE {
            continue;
        }
        match value {
            "true" => on = true,
            "false" => on = false,
            other => cx.at(
                &codes::INVALID_VALUE,
                &v,
                format!("annotation `{AUDIT_MODE}` is `{other}`: expected \"true\" or \"false\""),
            ),
        }
    }
    on
}
