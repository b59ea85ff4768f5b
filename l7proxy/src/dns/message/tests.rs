use super::*;

/// A query for `name` with id 0x1234, RD set.
pub(crate) fn query(name: &str, qtype: u16) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m
}

/// The answer to `query` with one record per address (name compressed to the question).
pub(crate) fn answer(query: &[u8], addrs: &[(IpAddr, u32)]) -> Vec<u8> {
    let mut m = query.to_vec();
    m[2] = 0x81;
    m[3] = 0x80;
    m[6..8].copy_from_slice(&(addrs.len() as u16).to_be_bytes());
    for (addr, ttl) in addrs {
        m.extend_from_slice(&[0xC0, 12]);
        let (t, data) = match addr {
            IpAddr::V4(a) => (TYPE_A, a.octets().to_vec()),
            IpAddr::V6(a) => (TYPE_AAAA, a.octets().to_vec()),
        };
        m.extend_from_slice(&t.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m.extend_from_slice(&ttl.to_be_bytes());
        m.extend_from_slice(&(data.len() as u16).to_be_bytes());
        m.extend_from_slice(&data);
    }
    m
}

#[test]
fn parses_a_query_lower_casing_the_name() {
    let q = parse_query(&query("WWW.Allowed.test", TYPE_A)).unwrap();
    assert_eq!(
        (q.id, q.name.as_str(), q.qtype),
        (0x1234, "www.allowed.test.", TYPE_A)
    );
}

#[test]
fn refused_echoes_id_and_question() {
    let m = query("blocked.test", TYPE_AAAA);
    let q = parse_query(&m).unwrap();
    let r = error_answer(&m, &q, RCODE_REFUSED);
    assert_eq!(&r[..2], &[0x12, 0x34]);
    assert_eq!(rcode(&r), Some(RCODE_REFUSED));
    assert_eq!(r[2] & 0x81, 0x81, "QR and RD");
    assert_eq!(parse_answer(&r).unwrap(), (q, vec![]));
}

#[test]
fn reads_compressed_address_records() {
    let m = query("www.allowed.test", TYPE_A);
    let a = answer(
        &m,
        &[
            ("10.1.2.3".parse().unwrap(), 30),
            ("fd00::1".parse().unwrap(), 7),
        ],
    );
    let (q, recs) = parse_answer(&a).unwrap();
    assert_eq!(q.name, "www.allowed.test.");
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].name, "www.allowed.test.");
    assert_eq!(
        (recs[0].addr, recs[0].ttl),
        ("10.1.2.3".parse().unwrap(), 30)
    );
    assert_eq!((recs[1].addr, recs[1].ttl), ("fd00::1".parse().unwrap(), 7));
}

#[test]
fn malformed_messages_are_errors() {
    let m = query("a.b", TYPE_A);
    assert!(matches!(
        parse_query(&m[..5]),
        Err(MessageError::Truncated(_))
    ));
    assert!(matches!(
        parse_query(&m[..m.len() - 1]),
        Err(MessageError::Truncated(_))
    ));
    let mut two = m.clone();
    two[5] = 2;
    assert_eq!(parse_query(&two), Err(MessageError::Questions(2)));
    let mut resp = m.clone();
    resp[2] |= 0x80;
    assert_eq!(parse_query(&resp), Err(MessageError::NotQuery(0)));
    // A pointer to itself.
    let mut looped = m[..12].to_vec();
    looped.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
    assert_eq!(parse_query(&looped), Err(MessageError::PointerLoop));
    // Reserved label type.
    let mut bad = m[..12].to_vec();
    bad.extend_from_slice(&[0x40, 0, 0, 1, 0, 1]);
    assert_eq!(parse_query(&bad), Err(MessageError::BadLabel(12)));
    // Every prefix of an answer is an error, never a panic.
    let a = answer(&m, &[("10.0.0.1".parse().unwrap(), 1)]);
    for n in 0..a.len() {
        let _ = parse_answer(&a[..n]);
    }
}

#[test]
fn long_names_are_refused() {
    let name = vec!["a".repeat(60); 5].join(".");
    assert_eq!(
        parse_query(&query(&name, TYPE_A)),
        Err(MessageError::NameTooLong)
    );
}

/// The answer to `query` with one CNAME (the question's name → `target`, TTL `alias_ttl`)
/// and one A record for `target` (its name compressed to the CNAME's data).
pub(crate) fn cname_answer(query: &[u8], target: &str, alias_ttl: u32, addr: [u8; 4]) -> Vec<u8> {
    let mut m = query.to_vec();
    m[2] = 0x81;
    m[3] = 0x80;
    m[6..8].copy_from_slice(&2u16.to_be_bytes());
    m.extend_from_slice(&[0xC0, 12]);
    m.extend_from_slice(&TYPE_CNAME.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m.extend_from_slice(&alias_ttl.to_be_bytes());
    let data: Vec<u8> = query_name(target);
    m.extend_from_slice(&(data.len() as u16).to_be_bytes());
    let at = m.len() as u8;
    m.extend_from_slice(&data);
    m.extend_from_slice(&[0xC0, at]);
    m.extend_from_slice(&TYPE_A.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m.extend_from_slice(&300u32.to_be_bytes());
    m.extend_from_slice(&4u16.to_be_bytes());
    m.extend_from_slice(&addr);
    m
}

/// `name` in wire form.
fn query_name(name: &str) -> Vec<u8> {
    let q = query(name, TYPE_A);
    q[12..q.len() - 4].to_vec()
}

#[test]
fn reads_cname_records_with_compressed_targets() {
    let m = query("api.allowed.test", TYPE_A);
    let a = cname_answer(&m, "edge.cdn.test", 60, [10, 1, 2, 3]);
    let (q, recs, aliases) = parse_answer_aliases(&a).unwrap();
    assert_eq!(q.name, "api.allowed.test.");
    assert_eq!(
        aliases,
        vec![Alias {
            name: "api.allowed.test.".into(),
            target: "edge.cdn.test.".into(),
            ttl: 60
        }]
    );
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].name, "edge.cdn.test.");
    assert_eq!(recs[0].addr, IpAddr::from([10, 1, 2, 3]));
    for n in 0..a.len() {
        let _ = parse_answer_aliases(&a[..n]);
    }
}
