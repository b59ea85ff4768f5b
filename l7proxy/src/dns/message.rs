//! A small DNS message reader (RFC 1035 §4): the header, the one question of a query, and the
//! A/AAAA records of an answer (names decompressed with a bounded number of pointer jumps),
//! and the `REFUSED` answer the proxy sends for a denied query. Everything is bounds-checked:
//! a malformed message is an error, never a panic.

use std::net::IpAddr;

/// Largest DNS message over UDP the proxy reads (EDNS0 payloads included).
pub const MAX_MESSAGE: usize = 4096;
const HEADER: usize = 12;
/// Compression pointers followed per name (a loop ends here).
const MAX_JUMPS: usize = 16;
/// RFC 1035 §2.3.4: a name is at most 255 octets on the wire.
const MAX_NAME: usize = 255;
/// RCODE 5.
pub const RCODE_REFUSED: u8 = 5;
pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_CNAME: u16 = 5;
const CLASS_IN: u16 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("message truncated at byte {0}")]
    Truncated(usize),
    #[error("not a query (QR set, or opcode {0} is not QUERY)")]
    NotQuery(u8),
    #[error("{0} questions (exactly one is supported)")]
    Questions(u16),
    #[error("bad label at byte {0}")]
    BadLabel(usize),
    #[error("name longer than 255 octets")]
    NameTooLong,
    #[error("too many compression pointers")]
    PointerLoop,
    #[error("not an answer (QR clear)")]
    NotAnswer,
}

/// The question of a query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    pub id: u16,
    /// Lower-case, dot-separated, with the trailing dot (`www.example.com.`; the root is `.`).
    pub name: String,
    pub qtype: u16,
    /// Offset just past the question (where the answer section starts).
    end: usize,
}

/// An address record of an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub addr: IpAddr,
    pub ttl: u32,
}

/// A CNAME record of an answer: `name` is an alias of `target`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alias {
    pub name: String,
    pub target: String,
    pub ttl: u32,
}

fn u16_at(m: &[u8], at: usize) -> Result<u16, MessageError> {
    m.get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or(MessageError::Truncated(at))
}

/// Reads the name at `at`: the name and the offset past it (past its first pointer, if any).
fn name_at(m: &[u8], mut at: usize) -> Result<(String, usize), MessageError> {
    let mut name = String::new();
    let mut end = None;
    let mut jumps = 0;
    let mut wire = 1;
    loop {
        let len = *m.get(at).ok_or(MessageError::Truncated(at))? as usize;
        match len & 0xC0 {
            0x00 if len == 0 => break,
            0x00 => {
                let label = m
                    .get(at + 1..at + 1 + len)
                    .ok_or(MessageError::Truncated(at))?;
                wire += len + 1;
                if wire > MAX_NAME {
                    return Err(MessageError::NameTooLong);
                }
                for &b in label {
                    if b == b'.' || !(b.is_ascii_graphic()) {
                        return Err(MessageError::BadLabel(at));
                    }
                    name.push(b.to_ascii_lowercase() as char);
                }
                name.push('.');
                at += 1 + len;
            }
            0xC0 => {
                let ptr = (u16_at(m, at)? & 0x3FFF) as usize;
                end.get_or_insert(at + 2);
                jumps += 1;
                if jumps > MAX_JUMPS {
                    return Err(MessageError::PointerLoop);
                }
                at = ptr;
            }
            _ => return Err(MessageError::BadLabel(at)),
        }
    }
    if name.is_empty() {
        name.push('.');
    }
    Ok((name, end.unwrap_or(at + 1)))
}

fn question(m: &[u8]) -> Result<Question, MessageError> {
    if m.len() < HEADER {
        return Err(MessageError::Truncated(m.len()));
    }
    let qd = u16_at(m, 4)?;
    if qd != 1 {
        return Err(MessageError::Questions(qd));
    }
    let (name, at) = name_at(m, HEADER)?;
    let qtype = u16_at(m, at)?;
    u16_at(m, at + 2)?; // class
    Ok(Question {
        id: u16_at(m, 0)?,
        name,
        qtype,
        end: at + 4,
    })
}

/// The question of a query (QR clear, opcode QUERY, one question).
pub fn parse_query(m: &[u8]) -> Result<Question, MessageError> {
    let flags = m.get(2).ok_or(MessageError::Truncated(m.len()))?;
    let opcode = (flags >> 3) & 0x0F;
    if flags & 0x80 != 0 || opcode != 0 {
        return Err(MessageError::NotQuery(opcode));
    }
    question(m)
}

/// The question and the A/AAAA records of the answer section of a response.
pub fn parse_answer(m: &[u8]) -> Result<(Question, Vec<Record>), MessageError> {
    parse_answer_aliases(m).map(|(q, records, _)| (q, records))
}

/// The question, the A/AAAA records and the CNAME records of the answer section of a
/// response.
pub fn parse_answer_aliases(m: &[u8]) -> Result<(Question, Vec<Record>, Vec<Alias>), MessageError> {
    let q = question(m)?;
    if m[2] & 0x80 == 0 {
        return Err(MessageError::NotAnswer);
    }
    let count = u16_at(m, 6)?;
    let mut at = q.end;
    let mut records = Vec::new();
    let mut aliases = Vec::new();
    for _ in 0..count {
        let (name, next) = name_at(m, at)?;
        let rtype = u16_at(m, next)?;
        let class = u16_at(m, next + 2)?;
        let ttl = m
            .get(next + 4..next + 8)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or(MessageError::Truncated(next + 4))?;
        let len = u16_at(m, next + 8)? as usize;
        let data = m
            .get(next + 10..next + 10 + len)
            .ok_or(MessageError::Truncated(next + 10))?;
        let addr = match (rtype, class) {
            (TYPE_A, CLASS_IN) => <[u8; 4]>::try_from(data).ok().map(IpAddr::from),
            (TYPE_AAAA, CLASS_IN) => <[u8; 16]>::try_from(data).ok().map(IpAddr::from),
            _ => None,
        };
        if let Some(addr) = addr {
            records.push(Record { name, addr, ttl });
        } else if (rtype, class) == (TYPE_CNAME, CLASS_IN) {
            let (target, _) = name_at(m, next + 10)?;
            aliases.push(Alias { name, target, ttl });
        }
        at = next + 10 + len;
    }
    Ok((q, records, aliases))
}

/// An answer to `query` (whose question parsed) with `rcode` (e.g. [`RCODE_REFUSED`]): its
/// header with QR and RA set, the RD bit kept, the question echoed and no records.
pub fn error_answer(query: &[u8], q: &Question, rcode: u8) -> Vec<u8> {
    let mut out = query[..q.end].to_vec();
    out[2] = 0x80 | (query[2] & 0x01);
    out[3] = 0x80 | (rcode & 0x0F);
    out[6..12].fill(0);
    out
}

/// The RCODE of a message.
pub fn rcode(m: &[u8]) -> Option<u8> {
    m.get(3).map(|b| b & 0x0F)
}

#[cfg(test)]
mod tests;
