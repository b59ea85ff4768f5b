//! Cilium's DNS name matching (`rules.dns` and `toFQDNs`), shared with the compiler (`trace`)
//! and the agent (learned `toFQDNs` addresses): `compiler::fqdn`.

pub use compiler::fqdn::{normalize, pattern_matches, NameMatcher};
