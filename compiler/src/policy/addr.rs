//! CIDR set subtraction: a prefix minus its `except` prefixes as disjoint prefixes, for the
//! address-matched (`ipBlock`) entries.

use ir::{CidrSet, IpNet};

fn remove(p: IpNet, e: &IpNet, out: &mut Vec<IpNet>) {
    if e.contains(&p) {
        return;
    }
    if !p.contains(e) {
        out.push(p);
        return;
    }
    for half in p.subnets(p.prefix_len() + 1).into_iter().flatten() {
        remove(half, e, out);
    }
}

/// Disjoint prefixes covering exactly the addresses of `set`.
pub fn disjoint_prefixes(set: &CidrSet) -> Vec<IpNet> {
    let mut cur = vec![set.cidr];
    for e in &set.except {
        let mut next = Vec::with_capacity(cur.len() + 8);
        for p in cur {
            remove(p, e, &mut next);
        }
        cur = next;
    }
    cur.sort();
    cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn except_is_carved_out() {
        let set = CidrSet::new(
            "172.17.0.0/16".parse().unwrap(),
            vec!["172.17.1.0/24".parse().unwrap()],
        );
        let parts = disjoint_prefixes(&set);
        assert_eq!(parts.len(), 8);
        for probe in [
            "172.17.0.9",
            "172.17.2.1",
            "172.17.255.255",
            "172.17.1.1",
            "10.0.0.1",
        ] {
            let a: std::net::IpAddr = probe.parse().unwrap();
            assert_eq!(
                parts.iter().any(|p| p.contains(&a)),
                set.contains(a),
                "{probe}"
            );
        }
    }
}
