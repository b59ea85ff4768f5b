//! The DNS proxy: the queries of connections the datapath redirects to the DNS proxy ports
//! (Documentation/l7.md, "DNS"), judged by the `rules.dns` at the deciding redirect key;
//! allowed ones are forwarded to the original server and the answer relayed (after the
//! agent learned its addresses for `toFQDNs`), denied ones answered `REFUSED`.
//!
//! - [`learn`]: the addresses an allowed answer teaches (CNAMEs followed) and the hook;
//! - [`message`]: the DNS message reader and the `REFUSED` answer;
//! - [`pattern`]: Cilium's `matchName` / `matchPattern` semantics;
//! - [`proxy`]: the proxy, its bounds, and what it does with one query;
//! - [`rules`]: a DNS redirect key's names, rule by rule (which rule allowed a query);
//! - [`udp`]: the transparent UDP listener and the per-datagram exchange;
//! - [`tcp`]: queries over TCP (RFC 7766): the transparent listener's connections, one
//!   connection to the server per client connection.

pub mod learn;
pub mod message;
pub mod pattern;
pub mod proxy;
pub mod rules;
pub mod tcp;
pub mod udp;

pub use pattern::NameMatcher;
pub use rules::DnsRules;
