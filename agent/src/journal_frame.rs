//! Framing of journal records: `LEN:CRC:PAYLOAD\n`, where `LEN` is the payload's length in
//! bytes (decimal) and `CRC` its CRC-32 (8 lowercase hex digits). A record torn at any byte —
//! inside a UTF-8 character too — or corrupted is detected on the bytes, before its payload
//! is decoded. Lines starting with `{` are records of the unframed format of earlier agents
//! (one JSON document a line), read for a one-time migration.

/// One record as found in the journal.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// 1-based line number in the file.
    pub line: usize,
    /// Byte offset just past the record's newline.
    pub end: usize,
    pub payload: &'a [u8],
    /// An unframed record of an earlier agent.
    pub legacy: bool,
}

/// A line that is not a complete record, and why.
#[derive(Debug, PartialEq, Eq)]
pub struct Bad {
    pub line: usize,
    /// Byte offset where the line starts.
    pub start: usize,
    pub reason: &'static str,
}

/// The journal's records in order, and the first line that is not a complete record.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan<'a> {
    pub records: Vec<Record<'a>>,
    /// The first bad line; `last` tells whether it ends the file (a torn append) or is
    /// followed by other lines (corruption).
    pub bad: Option<(Bad, bool)>,
}

/// Frames `payload` (which must not contain a newline) as one record.
pub fn encode(payload: &[u8]) -> Vec<u8> {
    debug_assert!(!payload.contains(&b'\n'));
    let mut out = format!("{}:{:08x}:", payload.len(), crc32fast::hash(payload)).into_bytes();
    out.extend_from_slice(payload);
    out.push(b'\n');
    out
}

/// Splits `bytes` into records; stops at the first bad line. Blank lines are skipped.
pub fn scan(bytes: &[u8]) -> Scan<'_> {
    let mut out = Scan::default();
    let mut start = 0;
    let mut line = 0;
    while start < bytes.len() {
        line += 1;
        let (text, end, complete) = match bytes[start..].iter().position(|&b| b == b'\n') {
            Some(n) => (&bytes[start..start + n], start + n + 1, true),
            None => (&bytes[start..], bytes.len(), false),
        };
        let rest_blank = bytes[end..].iter().all(u8::is_ascii_whitespace);
        if text.iter().all(u8::is_ascii_whitespace) && complete {
            start = end;
            continue;
        }
        let decoded = if complete {
            decode(text)
        } else {
            Err("the record has no end of line (torn)")
        };
        match decoded {
            Ok((payload, legacy)) => out.records.push(Record {
                line,
                end,
                payload,
                legacy,
            }),
            Err(reason) => {
                out.bad = Some((
                    Bad {
                        line,
                        start,
                        reason,
                    },
                    rest_blank,
                ));
                return out;
            }
        }
        start = end;
    }
    out
}

/// One line without its newline: the payload, and whether it is an unframed legacy record.
fn decode(text: &[u8]) -> Result<(&[u8], bool), &'static str> {
    if text.first() == Some(&b'{') {
        return Ok((text, true));
    }
    let colon = |from: usize| {
        text[from..]
            .iter()
            .position(|&b| b == b':')
            .map(|n| from + n)
            .ok_or("no record header (LEN:CRC:)")
    };
    let c1 = colon(0)?;
    let c2 = colon(c1 + 1)?;
    let len: usize = std::str::from_utf8(&text[..c1])
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or("the record length is not a number")?;
    let crc = std::str::from_utf8(&text[c1 + 1..c2])
        .ok()
        .filter(|s| s.len() == 8)
        .and_then(|s| u32::from_str_radix(s, 16).ok())
        .ok_or("the record checksum is not 8 hex digits")?;
    let payload = &text[c2 + 1..];
    if payload.len() != len {
        return Err("the record is shorter or longer than its header says (torn)");
    }
    if crc32fast::hash(payload) != crc {
        return Err("the record's checksum does not match its bytes");
    }
    Ok((payload, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn framed_legacy_and_blank_lines() {
        let mut j = encode(br#"{"revision":1}"#);
        j.extend_from_slice(b"\n{\"revision\":2}\n");
        j.extend(encode("{\"p\":\"é\"}".as_bytes()));
        let s = scan(&j);
        assert_eq!(s.bad, None);
        let lines: Vec<(usize, bool)> = s.records.iter().map(|r| (r.line, r.legacy)).collect();
        assert_eq!(lines, [(1, false), (3, true), (4, false)]);
        assert_eq!(s.records[2].payload, "{\"p\":\"é\"}".as_bytes());
        assert_eq!(s.records[2].end, j.len());
    }

    #[test]
    fn a_flipped_byte_in_the_middle_is_corruption_not_a_torn_tail() {
        let mut j = encode(b"{\"a\":1}");
        let second = j.len();
        j.extend(encode(b"{\"a\":2}"));
        j.extend(encode(b"{\"a\":3}"));
        j[second + 8] ^= 1;
        let s = scan(&j);
        assert_eq!(s.records.len(), 1);
        let (bad, last) = s.bad.expect("a bad line");
        assert_eq!((bad.line, bad.start, last), (2, second, false));
    }

    proptest! {
        /// A journal cut at every byte of a non-ASCII record keeps exactly the records before
        /// it, and reports the cut one (if any byte of it remains) as the torn last line.
        #[test]
        fn a_record_torn_at_any_byte_is_detected(
            text in "[a-zé漢🦀\"\\\\]{0,40}",
        ) {
            let first = encode(b"{\"revision\":1}");
            let payload = serde_json::to_vec(&serde_json::json!({"revision": 2, "text": text})).unwrap();
            let second = encode(&payload);
            for cut in 0..second.len() {
                let mut j = first.clone();
                j.extend_from_slice(&second[..cut]);
                let s = scan(&j);
                prop_assert_eq!(s.records.len(), 1);
                prop_assert_eq!(s.records[0].end, first.len());
                match s.bad {
                    None => prop_assert_eq!(cut, 0),
                    Some((bad, last)) => {
                        prop_assert!(last);
                        prop_assert_eq!((bad.line, bad.start), (2, first.len()));
                    }
                }
            }
        }
    }
}
