//! The one intermediate representation of cilium-policy.
//!
//! Everything every front end understands is lowered into a [`PolicySet`]: normalized rules whose
//! peers are label selectors (with Cilium label sources), CIDR sets, entities, FQDNs and services,
//! whose L4 part is a list of protocol × port-range / named-port entries, with optional L7 rules,
//! and whose provenance points back at the source file and span.
//!
//! Invariants of this crate: plain data, no I/O, no Kubernetes types, no output formats. Later
//! stages (identities, map state, codegen, loader) consume these types; they never define a
//! second model of the same thing.

pub mod arena;
pub mod entity;
pub mod identity;
pub mod inventory;
pub mod ipcache;
pub mod l4;
pub mod l7;
pub mod label;
pub mod mapstate;
pub mod net;
pub mod rule;
pub mod selector;
pub mod source;
pub mod text;

pub use arena::{Arena, Handle};
pub use entity::Entity;
pub use identity::NumericIdentity;
pub use inventory::{
    CidrGroup, Endpoint, EndpointSlice, Inventory, NamedPort, Namespace, Node, Service,
};
pub use ipcache::IpCache;
pub use l4::{PortRule, PortSpec, Protocol};
pub use l7::{DnsRule, HeaderMatch, HttpRule, L7Rules};
pub use label::{Label, LabelKey, LabelSet, LabelSource};
pub use mapstate::{EndpointPolicy, MapEntry, MapKey, MapVerdict};
pub use net::{CidrSet, IpNet};
pub use rule::{Action, Direction, Peer, PeerSet, PolicyKind, PolicySet, Provenance, Rule, RuleId};
pub use selector::{Operator, Requirement, Selector};
pub use source::{FileId, SourceFile, Span};
