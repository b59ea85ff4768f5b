//! Front ends, lowering, lint, identity resolution, policy computation and trace.

pub mod cluster;
pub mod diag;
pub mod diff;
pub mod flow;
pub mod fqdn;
pub mod front;
pub mod identity;
pub mod labelsel;
pub mod lint;
pub mod par;
pub mod policy;
pub mod render;
pub mod selcache;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod trace;
