//! IR-level lint rules: checks that need the lowered policy (and, for some, the endpoint
//! inventory) rather than one file's syntax. One rule per file; each declares its stable code
//! with its documentation and implements [`LintRule`].

pub mod clusterwide_any_pod;
pub mod cover;
pub mod grants_nothing;
pub mod selects_nothing;
pub mod shadowed;
pub mod unknown_reference;
pub mod world_all_ports;

use crate::diag::{Code, Diagnostic};
use crate::front::FrontOutput;
use ir::{Action, Direction, Inventory, PolicyKind, PolicySet, Rule};

/// One lint rule: a stable code (with its documentation) and a check over the whole policy.
pub trait LintRule: Sync {
    fn code(&self) -> &'static Code;
    fn check(&self, cx: &Context<'_>, out: &mut Vec<Diagnostic>);
}

/// What a lint rule sees: the lowered policy and the inventory of endpoints and namespaces.
pub struct Context<'a> {
    pub policy: &'a PolicySet,
    pub inventory: &'a Inventory,
}

impl Context<'_> {
    /// A diagnostic of `code` located at `rule` (its file, span and field path).
    pub fn at_rule(
        &self,
        code: &'static Code,
        rule: &Rule,
        message: impl Into<String>,
    ) -> Diagnostic {
        let p = &rule.provenance;
        Diagnostic::new(
            code,
            self.policy.file_path(p.file),
            p.span,
            rule_path(rule),
            message,
        )
    }
}

/// Every lint rule, in code order.
pub static RULES: &[&dyn LintRule] = &[
    &grants_nothing::GrantsNothing,
    &selects_nothing::SelectsNothing,
    &shadowed::Shadowed,
    &world_all_ports::WorldAllPorts,
    &clusterwide_any_pod::ClusterwideAnyPod,
    &unknown_reference::UnknownReference,
];

/// The codes of [`RULES`] (for the registry in `crate::diag::codes`).
pub static LINT_CODES: &[&Code] = &[
    &grants_nothing::CODE,
    &selects_nothing::CODE,
    &shadowed::CODE,
    &world_all_ports::CODE,
    &clusterwide_any_pod::CODE,
    &unknown_reference::CODE,
];

/// Lints the front end's output: its diagnostics followed by every lint rule's findings over
/// the lowered policy and inventory, sorted by file and position (the order renderers print).
pub fn run(front: &FrontOutput) -> Vec<Diagnostic> {
    let mut diags = front.diagnostics.clone();
    diags.extend(check(&front.policy, &front.inventory));
    crate::diag::sort(&mut diags);
    diags
}

/// Runs every lint rule over a policy and inventory; diagnostics are unsorted.
pub fn check(policy: &PolicySet, inventory: &Inventory) -> Vec<Diagnostic> {
    let cx = Context { policy, inventory };
    let mut out = Vec::new();
    for rule in RULES {
        rule.check(&cx, &mut out);
    }
    out
}

/// The field path of a rule item as written, e.g. `spec.ingress[0]`, `specs[1].egressDeny[2]`,
/// `[3].ingress[0]` (an element of a Cilium JSON rule array).
pub fn rule_path(rule: &Rule) -> String {
    let p = &rule.provenance;
    let key = match (rule.direction, rule.action) {
        (Direction::Ingress, Action::Allow) => "ingress",
        (Direction::Egress, Action::Allow) => "egress",
        (Direction::Ingress, Action::Deny) => "ingressDeny",
        (Direction::Egress, Action::Deny) => "egressDeny",
    };
    let prefix = match (p.kind, p.spec_index) {
        (PolicyKind::CiliumJson, Some(i)) => format!("[{i}]."),
        (PolicyKind::CiliumJson, None) => String::new(),
        (_, Some(i)) => format!("specs[{i}]."),
        (_, None) => "spec.".to_string(),
    };
    format!("{prefix}{key}[{}]", p.rule_index)
}

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod tests {
    #[test]
    fn rules_declare_the_listed_codes() {
        let from_rules: Vec<&str> = super::RULES.iter().map(|r| r.code().code).collect();
        let listed: Vec<&str> = super::LINT_CODES.iter().map(|c| c.code).collect();
        assert_eq!(from_rules, listed);
    }
}
