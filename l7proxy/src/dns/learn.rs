//! What an allowed answer teaches the agent for `toFQDNs`: the addresses that the question's
//! name resolves to, following the answer's CNAME records, each with the names it answers
//! for (the question's name and every alias on the way) and the lowest TTL on the way.
//! Records that the chain from the question does not reach are ignored (a server cannot
//! teach addresses for names the client did not ask about). The proxy hands them to a
//! [`Learn`] hook and relays the answer once the hook returns, or after
//! `DnsConfig::learn_wait` (the answer is never held longer; traffic to an address not yet
//! learned stays denied).

use super::message::{Alias, Record};
use crate::proxy::ConnInfo;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

/// CNAME records followed from the question's name.
const MAX_CHAIN: usize = 16;

/// One address of an allowed answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Learned {
    pub addr: IpAddr,
    /// Seconds the answer may be cached: the lowest TTL of the record and the aliases before it.
    pub ttl: u32,
    /// The names it answers for (normalized: lower-case, trailing dot): the question's name
    /// and the aliases leading to it.
    pub names: Vec<String>,
}

/// The hook the agent gives the proxy: learns the addresses of an allowed answer for the
/// endpoint of `ConnInfo` and returns once the datapath allows them.
pub type Learn =
    Arc<dyn Fn(ConnInfo, Vec<Learned>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The addresses `question` resolves to in an answer's `records` and `aliases`.
pub fn learned(question: &str, records: &[Record], aliases: &[Alias]) -> Vec<Learned> {
    // The chain of names from the question, with the lowest alias TTL to reach each.
    let mut chain: Vec<(String, u32)> = vec![(question.to_string(), u32::MAX)];
    while chain.len() <= MAX_CHAIN {
        let (last, ttl) = &chain[chain.len() - 1];
        let Some(next) = aliases.iter().find(|a| &a.name == last) else {
            break;
        };
        if chain.iter().any(|(n, _)| *n == next.target) {
            break; // a CNAME loop
        }
        let ttl = (*ttl).min(next.ttl);
        chain.push((next.target.clone(), ttl));
    }
    records
        .iter()
        .filter_map(|r| {
            let at = chain.iter().position(|(n, _)| *n == r.name)?;
            Some(Learned {
                addr: r.addr,
                ttl: r.ttl.min(chain[at].1),
                names: chain[..=at].iter().map(|(n, _)| n.clone()).collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, addr: [u8; 4], ttl: u32) -> Record {
        Record {
            name: name.into(),
            addr: IpAddr::from(addr),
            ttl,
        }
    }

    fn alias(name: &str, target: &str, ttl: u32) -> Alias {
        Alias {
            name: name.into(),
            target: target.into(),
            ttl,
        }
    }

    #[test]
    fn direct_records_answer_for_the_question() {
        let got = learned("a.test.", &[rec("a.test.", [192, 0, 2, 1], 30)], &[]);
        assert_eq!(
            got,
            vec![Learned {
                addr: IpAddr::from([192, 0, 2, 1]),
                ttl: 30,
                names: vec!["a.test.".into()],
            }]
        );
    }

    #[test]
    fn cnames_are_followed_and_their_ttl_counts() {
        let aliases = [
            alias("api.allowed.test.", "edge.cdn.test.", 20),
            alias("edge.cdn.test.", "pop1.cdn.test.", 600),
        ];
        let records = [
            rec("pop1.cdn.test.", [192, 0, 2, 7], 300),
            rec("unrelated.test.", [192, 0, 2, 9], 300),
        ];
        let got = learned("api.allowed.test.", &records, &aliases);
        assert_eq!(got.len(), 1, "records off the chain are ignored: {got:?}");
        assert_eq!(got[0].ttl, 20, "the lowest TTL on the way");
        assert_eq!(
            got[0].names,
            ["api.allowed.test.", "edge.cdn.test.", "pop1.cdn.test."]
        );
    }

    #[test]
    fn cname_loops_end() {
        let aliases = [alias("a.", "b.", 5), alias("b.", "a.", 5)];
        let got = learned("a.", &[rec("b.", [192, 0, 2, 2], 9)], &aliases);
        assert_eq!(got[0].names, ["a.", "b."]);
        assert_eq!(got[0].ttl, 5);
    }
}
