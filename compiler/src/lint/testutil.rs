//! Builds small policy sets by hand for the lint rules' unit tests.

use super::{Context, LintRule};
use ir::*;

pub struct Builder {
    pub policy: PolicySet,
    pub inventory: Inventory,
}

pub struct RuleBuilder<'b> {
    b: &'b mut Builder,
    rule: Rule,
}

impl Builder {
    pub fn new() -> Self {
        let mut policy = PolicySet::default();
        policy.add_file("test.yaml");
        Builder {
            policy,
            inventory: Inventory::default(),
        }
    }

    /// A selector of `any:` keys with the given values.
    pub fn sel(&mut self, pairs: &[(&str, &str)]) -> Handle<Selector> {
        let reqs = pairs
            .iter()
            .map(|(k, v)| {
                Requirement::new(
                    LabelKey::new(LabelSource::Any, *k),
                    Operator::In,
                    vec![v.to_string()],
                )
            })
            .collect();
        self.policy.selectors.insert(Selector::new(reqs))
    }

    pub fn rule(&mut self, subject: Handle<Selector>) -> RuleBuilder<'_> {
        let n = self.policy.rules.len() as u32;
        let rule = Rule {
            id: RuleId(0),
            kind: PolicyKind::CiliumNetworkPolicy,
            subject,
            direction: Direction::Ingress,
            action: Action::Allow,
            peers: PeerSet::Any,
            requires: vec![],
            ports: vec![],
            default_deny: true,
            audit: false,
            provenance: Provenance {
                kind: PolicyKind::CiliumNetworkPolicy,
                namespace: Some("default".into()),
                name: format!("p{n}"),
                file: FileId(0),
                // The rule's id, recoverable from the diagnostic's offset.
                span: Span {
                    offset: n,
                    len: 1,
                    line: n + 1,
                    column: 3,
                },
                rule_index: 0,
                spec_index: None,
                labels: LabelSet::default(),
            },
        };
        RuleBuilder { b: self, rule }
    }

    /// `(code, rule id)` of every diagnostic `lint` reports, in report order.
    pub fn codes_at(&self, lint: &dyn LintRule) -> Vec<(&'static str, u32)> {
        let cx = Context {
            policy: &self.policy,
            inventory: &self.inventory,
        };
        let mut out = Vec::new();
        lint.check(&cx, &mut out);
        out.iter().map(|d| (d.code.code, d.span.offset)).collect()
    }
}

impl RuleBuilder<'_> {
    pub fn kind(mut self, k: PolicyKind) -> Self {
        self.rule.kind = k;
        self.rule.provenance.kind = k;
        self
    }
    pub fn egress(mut self) -> Self {
        self.rule.direction = Direction::Egress;
        self
    }
    pub fn deny(mut self) -> Self {
        self.rule.action = Action::Deny;
        self
    }
    pub fn peers(mut self, peers: Vec<Peer>) -> Self {
        self.rule.peers = PeerSet::Some(peers);
        self
    }
    fn add_peer(mut self, p: Peer) -> Self {
        match &mut self.rule.peers {
            PeerSet::Some(v) => v.push(p),
            PeerSet::Any => self.rule.peers = PeerSet::Some(vec![p]),
        }
        self
    }
    pub fn endpoints(self, s: Handle<Selector>) -> Self {
        self.add_peer(Peer::Endpoints(s))
    }
    pub fn entity(self, e: Entity) -> Self {
        self.add_peer(Peer::Entity(e))
    }
    pub fn cidr(self, c: &str, except: &[&str]) -> Self {
        let set = CidrSet::new(
            c.parse().unwrap(),
            except.iter().map(|e| e.parse().unwrap()).collect(),
        );
        self.add_peer(Peer::Cidr {
            set,
            by_address: false,
        })
    }
    pub fn requires(mut self, s: Handle<Selector>) -> Self {
        self.rule.requires.push(s);
        self
    }
    pub fn port(mut self, protocol: Protocol, port: PortSpec) -> Self {
        self.rule.ports.push(PortRule {
            protocol,
            port,
            l7: None,
        });
        self
    }
    pub fn tcp(self, p: u16) -> Self {
        self.port(Protocol::Tcp, PortSpec::Range { first: p, last: p })
    }
    pub fn http(mut self, p: u16, path: &str) -> Self {
        let rule = HttpRule {
            path: Some(path.into()),
            ..Default::default()
        };
        self.rule.ports.push(PortRule {
            protocol: Protocol::Tcp,
            port: PortSpec::Range { first: p, last: p },
            l7: Some(L7Rules::Http(vec![rule])),
        });
        self
    }
    pub fn push(self) {
        self.b.policy.push_rule(self.rule);
    }
}
