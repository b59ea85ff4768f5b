//! `trace`: why a flow from one party to another is allowed or denied, rule by rule, evaluated
//! directly on the rules (labels, addresses, ports), independently of the map state. The
//! semantics are those of the map state (Documentation/policy-semantics.md); the test suite checks
//! that both agree.

mod audit;
mod eval;
mod files;
mod l7;
mod party;
pub mod render;

pub use eval::{trace, RuleMatch, Side, SideVerdict, Trace};
pub use files::{trace_files, Query, TraceFilesError};
pub use l7::{anchored_pattern, HttpRequest, L7Verdict};
pub use party::{resolve_parties, resolve_party, Party, PartyError, PartySpec};
