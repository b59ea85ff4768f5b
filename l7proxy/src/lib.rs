//! The L7 (HTTP) proxy: a transparent HTTP/1.1 proxy that enforces the HTTP rules of the map
//! state's proxy redirects. See Documentation/l7.md.
//!
//! - [`matcher`]: the HTTP rules of one map key compiled into `RegexSet`s.
//! - [`table`]: every endpoint's redirect keys with their matchers, built once per policy
//!   change and swapped atomically ([`table::SharedTable`]).
//! - [`proxy`]: configuration and the accept loop (connection cap); `conn` serves one
//!   connection (sniff, hyper server, 403 or forward, upgrades), [`upstream`] connects to the
//!   original destination, [`sniff`] tells HTTP from other bytes, [`listen`] opens the
//!   transparent listeners the datapath assigns redirected connections to.
//! - [`dns`]: the DNS proxy (UDP): `rules.dns` per query, `REFUSED` for denied names.
//! - [`event`]: per-request events and their seed §6 style lines.

mod conn;
pub mod dns;
pub mod event;
pub mod listen;
pub mod matcher;
pub mod proxy;
pub mod sniff;
mod sockopt;
pub mod table;
pub mod upstream;

pub use event::{
    format_event, qtype_name, DnsAnswer, Event, EventKind, Events, Names, Outcome, Verdict,
};
pub use matcher::{HttpMatcher, Limits};
pub use proxy::{ConnInfo, Marks, Proxy, ProxyConfig, ProxyError};
pub use table::{PolicyTable, SharedTable, TableError};
