//! A small JSON reader for `.json` files, producing the same [`Node`] tree as the YAML reader.
//! Needed because some JSON is not YAML (UTF-16 surrogate-pair escapes such as `\ud83d\ude00`);
//! it applies the same duplicate-key, depth and node-count checks.

use super::lines::LineIndex;
use super::node::{Key, KeySet, Node, NodeKind, ScalarStyle};
use super::yaml::{Document, Limits, ReadError};
use ir::Span;

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    lines: LineIndex<'a>,
    limits: Limits,
    budget: usize,
    errors: Vec<ReadError>,
}

/// Reads one JSON document (the whole text).
pub fn read_json(text: &str, limits: Limits) -> Vec<Document> {
    let mut r = Reader {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        lines: LineIndex::new(text),
        limits,
        budget: limits.max_nodes,
        errors: Vec::new(),
    };
    r.skip_ws();
    if r.pos == r.bytes.len() {
        return Vec::new();
    }
    let root = match r.value(0) {
        Ok(v) => {
            r.skip_ws();
            if r.pos < r.bytes.len() {
                let e = r.syntax("unexpected content after the JSON value");
                r.errors.push(e);
            }
            Some(v)
        }
        Err(e) => {
            r.errors.push(e);
            None
        }
    };
    vec![Document {
        root,
        errors: r.errors,
    }]
}

impl Reader<'_> {
    fn span(&self, start: usize, end: usize) -> Span {
        self.lines.span_of_bytes(start, end)
    }

    fn syntax(&self, message: &str) -> ReadError {
        let at = self.pos.min(self.bytes.len());
        ReadError::Syntax {
            span: self.span(at, at),
            message: message.to_string(),
        }
    }

    fn skip_ws(&mut self) {
        while matches!(self.bytes.get(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        self.skip_ws();
        let hit = self.bytes.get(self.pos) == Some(&b);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn value(&mut self, depth: usize) -> Result<Node, ReadError> {
        self.skip_ws();
        let start = self.pos;
        if self.budget == 0 {
            return Err(ReadError::TooManyNodes {
                span: self.span(start, start),
                limit: self.limits.max_nodes,
            });
        }
        self.budget -= 1;
        // Located now, while the line index's cursor is here (children move it further on).
        let mut span = self.span(start, start);
        let kind = match self.bytes.get(self.pos) {
            Some(b'{' | b'[') if depth >= self.limits.max_depth => {
                return Err(ReadError::TooDeep {
                    span: self.span(start, start),
                    limit: self.limits.max_depth,
                })
            }
            Some(b'{') => NodeKind::Mapping(self.object(depth)?),
            Some(b'[') => NodeKind::Sequence(self.array(depth)?),
            Some(b'"') => NodeKind::Scalar {
                text: self.string()?,
                style: ScalarStyle::Quoted,
            },
            Some(_) => self.literal()?,
            None => return Err(self.syntax("unexpected end of input, expected a value")),
        };
        span.len = (self.pos - start) as u32;
        Ok(Node { span, kind })
    }

    fn object(&mut self, depth: usize) -> Result<Vec<(Key, Node)>, ReadError> {
        self.pos += 1;
        let mut entries: Vec<(Key, Node)> = Vec::new();
        let mut seen = KeySet::default();
        if self.eat(b'}') {
            return Ok(entries);
        }
        loop {
            self.skip_ws();
            let kstart = self.pos;
            if self.bytes.get(self.pos) != Some(&b'"') {
                return Err(self.syntax("expected a string key"));
            }
            let text = self.string()?;
            let key = Key {
                text,
                span: self.span(kstart, self.pos),
            };
            if !self.eat(b':') {
                return Err(self.syntax("expected `:` after the key"));
            }
            let value = self.value(depth + 1)?;
            match seen.seen(&entries, &key) {
                Some(first) => self.errors.push(ReadError::DuplicateKey {
                    span: key.span,
                    key: key.text.clone(),
                    first,
                }),
                None => entries.push((key, value)),
            }
            if self.eat(b',') {
                continue;
            }
            if self.eat(b'}') {
                return Ok(entries);
            }
            return Err(self.syntax("expected `,` or `}`"));
        }
    }

    fn array(&mut self, depth: usize) -> Result<Vec<Node>, ReadError> {
        self.pos += 1;
        let mut items = Vec::new();
        if self.eat(b']') {
            return Ok(items);
        }
        loop {
            items.push(self.value(depth + 1)?);
            if self.eat(b',') {
                continue;
            }
            if self.eat(b']') {
                return Ok(items);
            }
            return Err(self.syntax("expected `,` or `]`"));
        }
    }

    fn literal(&mut self) -> Result<NodeKind, ReadError> {
        let start = self.pos;
        while matches!(self.bytes.get(self.pos), Some(b) if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.'))
        {
            self.pos += 1;
        }
        let word = &self.text[start..self.pos];
        match word {
            "null" => Ok(NodeKind::Null),
            "true" | "false" => Ok(NodeKind::Scalar {
                text: word.to_string(),
                style: ScalarStyle::Plain,
            }),
            _ if is_json_number(word) => Ok(NodeKind::Scalar {
                text: word.to_string(),
                style: ScalarStyle::Plain,
            }),
            _ => {
                self.pos = start;
                Err(self.syntax(
                    "expected a value (object, array, string, number, true, false or null)",
                ))
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, ReadError> {
        let h = self
            .text
            .get(self.pos..self.pos + 4)
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
        let v = h
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| self.syntax("expected 4 hex digits after \\u"))?;
        self.pos += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, ReadError> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = &self.text[self.pos..];
            // One pass over the bytes: the closing quote, an escape, or a control character
            // (all ASCII, so `i` is a char boundary).
            let Some(i) = rest
                .bytes()
                .position(|b| b == b'"' || b == b'\\' || b < 0x20)
            else {
                return Err(self.syntax("unterminated string"));
            };
            if rest.as_bytes()[i] < 0x20 {
                self.pos += i;
                return Err(self.syntax("control character in a string"));
            }
            if out.is_empty() && rest.as_bytes()[i] == b'"' {
                self.pos += i + 1;
                return Ok(rest[..i].to_string());
            }
            out.push_str(&rest[..i]);
            self.pos += i + 1;
            if rest.as_bytes()[i] == b'"' {
                return Ok(out);
            }
            let esc = self.bytes.get(self.pos).copied();
            self.pos += 1;
            let c = match esc {
                Some(b'"') => '"',
                Some(b'\\') => '\\',
                Some(b'/') => '/',
                Some(b'b') => '\u{8}',
                Some(b'f') => '\u{c}',
                Some(b'n') => '\n',
                Some(b'r') => '\r',
                Some(b't') => '\t',
                Some(b'u') => {
                    let hi = self.hex4()?;
                    let cp = if (0xD800..0xDC00).contains(&hi)
                        && self.text[self.pos..].starts_with("\\u")
                    {
                        self.pos += 2;
                        let lo = self.hex4()?;
                        if !(0xDC00..0xE000).contains(&lo) {
                            return Err(self.syntax("invalid low surrogate in \\u escape"));
                        }
                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                    } else {
                        hi
                    };
                    char::from_u32(cp)
                        .ok_or_else(|| self.syntax("unpaired surrogate in \\u escape"))?
                }
                _ => return Err(self.syntax("invalid escape in a string")),
            };
            out.push(c);
        }
    }
}

fn is_json_number(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    let (int, rest) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    if int.is_empty() || (int.len() > 1 && int.starts_with('0')) {
        return false;
    }
    let rest = match rest.strip_prefix('.') {
        Some(r) => {
            let n = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            if n == 0 {
                return false;
            }
            &r[n..]
        }
        None => rest,
    };
    match rest.strip_prefix(['e', 'E']) {
        Some(e) => {
            let e = e.strip_prefix(['+', '-']).unwrap_or(e);
            !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
        }
        None => rest.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::yaml::read_stream;

    fn one(text: &str) -> Node {
        let mut docs = read_json(text, Limits::default());
        assert_eq!(docs.len(), 1);
        let doc = docs.remove(0);
        assert!(doc.errors.is_empty(), "{:?}", doc.errors);
        doc.root.expect("a root")
    }

    #[test]
    fn escapes_numbers_and_tabs() {
        let j = one("{\n\t\"a\": 1e3,\t\"b\": -0.5, \"c\": true, \"d\": null,\n\t\"e\": \"\\ud83d\\ude00\\/\\t\"}");
        assert_eq!(j.get("a").and_then(Node::as_str), Some("1e3"));
        assert_eq!(j.get("b").and_then(Node::as_str), Some("-0.5"));
        assert!(j.get("d").is_some_and(Node::is_null));
        assert_eq!(j.get("e").and_then(Node::as_str), Some("\u{1F600}/\t"));
        assert_eq!(
            j.get("e").map(|e| (e.span.line, e.span.column)),
            Some((3, 7))
        );
    }

    #[test]
    fn errors_are_located() {
        for (text, line, col) in [
            ("{\"a\": [1, 2}", 1, 12),
            ("{\n  \"a\": tru\n}", 2, 8),
            ("[1] 2", 1, 5),
            ("\"x\ny\"", 1, 3),
        ] {
            let docs = read_json(text, Limits::default());
            match &docs[0].errors[..] {
                [ReadError::Syntax { span, .. }] => {
                    assert_eq!((span.line, span.column), (line, col), "{text}")
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        let docs = read_json("{\"a\": 1, \"a\": 2}", Limits::default());
        assert!(
            matches!(&docs[0].errors[..], [ReadError::DuplicateKey { first, .. }] if first.column == 2)
        );
        let deep = "[".repeat(1000);
        assert!(matches!(
            read_json(&deep, Limits::default())[0].errors[..],
            [ReadError::TooDeep { .. }]
        ));
    }

    /// Positions of every node and key, for comparing the two readers.
    fn positions(n: &Node, out: &mut Vec<(u32, u32, String)>) {
        out.push((
            n.span.line,
            n.span.column,
            n.as_str().unwrap_or(n.kind_name()).to_string(),
        ));
        match &n.kind {
            NodeKind::Mapping(e) => e.iter().for_each(|(k, v)| {
                out.push((k.span.line, k.span.column, k.text.clone()));
                positions(v, out)
            }),
            NodeKind::Sequence(s) => s.iter().for_each(|v| positions(v, out)),
            _ => {}
        }
    }

    #[test]
    fn json_and_yaml_readers_agree_on_json() {
        let text = "[{\n  \"endpointSelector\": {\"matchLabels\": {\"app\": \"a\"}},\n  \"ingress\": [ {\"toPorts\": [{\"ports\": [{\"port\": \"80\"}]}]}, {} ],\n  \"x\": [1, -2.5, true, null, \"é\"]\n}]";
        let (mut a, mut b) = (Vec::new(), Vec::new());
        positions(&one(text), &mut a);
        let y = read_stream(text, Limits::default())
            .remove(0)
            .root
            .expect("yaml root");
        positions(&y, &mut b);
        assert_eq!(a, b);
    }
}
