//! Reads a YAML 1.2 stream (JSON included) into spanned [`Node`] trees with saphyr's event
//! parser: one tree per document, duplicate keys and non-scalar keys reported, `<<` merge keys
//! applied, and alias expansion, nesting depth and node count bounded.

use super::lines::LineIndex;
use super::node::{is_null_text, Key, KeySet, Node, NodeKind, ScalarStyle};
use ir::Span;
use saphyr_parser::{Event, Marker, Parser, ScalarStyle as YStyle};
use std::collections::HashMap;

/// Bounds that keep hostile input from ballooning.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Nodes per source, aliases counted with the size of what they expand to.
    pub max_nodes: usize,
    /// Collections nested inside each other.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_nodes: 1_000_000,
            max_depth: 128,
        }
    }
}

/// What went wrong while reading; the front end turns these into diagnostics.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("syntax error: {message}")]
    Syntax { span: Span, message: String },
    #[error("duplicate key `{key}` (first defined at line {}, column {})", first.line, first.column)]
    DuplicateKey {
        span: Span,
        key: String,
        first: Span,
    },
    #[error("mapping keys must be plain scalars, not {found}")]
    ComplexKey { span: Span, found: &'static str },
    #[error("document expands to more than {limit} nodes (through aliases or sheer size); refusing to read further")]
    TooManyNodes { span: Span, limit: usize },
    #[error("collections nested deeper than {limit} levels")]
    TooDeep { span: Span, limit: usize },
}

impl ReadError {
    pub fn span(&self) -> Span {
        match self {
            ReadError::Syntax { span, .. }
            | ReadError::DuplicateKey { span, .. }
            | ReadError::ComplexKey { span, .. }
            | ReadError::TooManyNodes { span, .. }
            | ReadError::TooDeep { span, .. } => *span,
        }
    }
}

/// One document of a stream: its tree (when the reader got to its end; possibly with errors
/// such as duplicate keys, in which case it is only checked, never used) and its errors.
#[derive(Debug)]
pub struct Document {
    pub root: Option<Node>,
    pub errors: Vec<ReadError>,
}

/// Converts saphyr markers (character index, 1-based line, 0-based character column) to
/// [`Span`]s with byte offsets and 1-based columns.
fn marker_span(lines: &LineIndex<'_>, start: Marker, end: Marker) -> Span {
    let a = lines.offset(start.line().saturating_sub(1), start.col());
    let b = lines.offset(end.line().saturating_sub(1), end.col()).max(a);
    Span {
        offset: a as u32,
        len: (b - a) as u32,
        line: start.line().max(1) as u32,
        column: start.col() as u32 + 1,
    }
}

enum Frame {
    Seq {
        items: Vec<Node>,
        start: Marker,
        anchor: usize,
    },
    Map {
        entries: Vec<(Key, Node)>,
        key: Option<Key>,
        seen: KeySet,
        start: Marker,
        anchor: usize,
    },
}

struct Builder<'a> {
    lines: LineIndex<'a>,
    limits: Limits,
    budget: usize,
    frames: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    errors: Vec<ReadError>,
}

/// Reads every document of `text`. A syntax error ends the stream: the document it occurs in
/// carries the error, earlier documents are kept.
pub fn read_stream(text: &str, limits: Limits) -> Vec<Document> {
    let mut b = Builder {
        lines: LineIndex::new(text),
        limits,
        budget: limits.max_nodes,
        frames: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        errors: Vec::new(),
    };
    let mut docs = Vec::new();
    let mut parser = Parser::new_from_str(text);
    let mut in_doc = false;
    while let Some(ev) = parser.next_event() {
        let (event, span) = match ev {
            Ok(e) => e,
            Err(e) => {
                let m = *e.marker();
                b.errors.push(ReadError::Syntax {
                    span: marker_span(&b.lines, m, m),
                    message: e.info().to_string(),
                });
                docs.push(b.finish_doc());
                return docs;
            }
        };
        let fatal = match event {
            Event::DocumentStart(_) => {
                in_doc = true;
                Ok(())
            }
            Event::DocumentEnd => {
                in_doc = false;
                docs.push(b.finish_doc());
                Ok(())
            }
            Event::StreamEnd => break,
            Event::StreamStart | Event::Nothing => Ok(()),
            other => b.event(other, span.start, span.end),
        };
        if let Err(e) = fatal {
            b.errors.push(e);
            docs.push(b.finish_doc());
            return docs;
        }
    }
    if in_doc {
        docs.push(b.finish_doc());
    }
    docs
}

impl Builder<'_> {
    fn finish_doc(&mut self) -> Document {
        self.frames.clear();
        self.anchors.clear();
        let errors = std::mem::take(&mut self.errors);
        let root = self.root.take();
        Document { root, errors }
    }

    fn charge(&mut self, n: usize, at: Span) -> Result<(), ReadError> {
        if n > self.budget {
            self.budget = 0;
            return Err(ReadError::TooManyNodes {
                span: at,
                limit: self.limits.max_nodes,
            });
        }
        self.budget -= n;
        Ok(())
    }

    fn event(&mut self, event: Event<'_>, start: Marker, end: Marker) -> Result<(), ReadError> {
        let span = marker_span(&self.lines, start, end);
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                self.charge(1, span)?;
                let forced_str = tag.as_ref().is_some_and(|t| t.suffix == "str");
                let kind = match style {
                    YStyle::Plain if !forced_str && is_null_text(&text) => NodeKind::Null,
                    YStyle::Plain if !forced_str => NodeKind::Scalar {
                        text: text.into_owned(),
                        style: ScalarStyle::Plain,
                    },
                    _ => NodeKind::Scalar {
                        text: text.into_owned(),
                        style: ScalarStyle::Quoted,
                    },
                };
                self.complete(Node { span, kind }, anchor)
            }
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned();
                let node = node.ok_or_else(|| ReadError::Syntax {
                    span,
                    message: "alias of an unknown anchor".into(),
                })?;
                self.charge(node.count(), span)?;
                self.complete(node, 0)
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                self.charge(1, span)?;
                if self.frames.len() >= self.limits.max_depth {
                    return Err(ReadError::TooDeep {
                        span,
                        limit: self.limits.max_depth,
                    });
                }
                self.frames
                    .push(if matches!(event, Event::SequenceStart(..)) {
                        Frame::Seq {
                            items: Vec::new(),
                            start,
                            anchor,
                        }
                    } else {
                        Frame::Map {
                            entries: Vec::new(),
                            key: None,
                            seen: KeySet::default(),
                            start,
                            anchor,
                        }
                    });
                Ok(())
            }
            Event::SequenceEnd | Event::MappingEnd => match self.frames.pop() {
                Some(Frame::Seq {
                    items,
                    start,
                    anchor,
                }) => {
                    let node = Node {
                        span: marker_span(&self.lines, start, end),
                        kind: NodeKind::Sequence(items),
                    };
                    self.complete(node, anchor)
                }
                Some(Frame::Map {
                    entries,
                    start,
                    anchor,
                    ..
                }) => {
                    let node = Node {
                        span: marker_span(&self.lines, start, end),
                        kind: NodeKind::Mapping(apply_merges(entries)),
                    };
                    self.complete(node, anchor)
                }
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    fn complete(&mut self, node: Node, anchor: usize) -> Result<(), ReadError> {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.frames.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries, key, seen, ..
            }) => match key.take() {
                Some(k) => {
                    let first = if k.text == "<<" {
                        None
                    } else {
                        seen.seen(entries, &k)
                    };
                    if let Some(first) = first {
                        self.errors.push(ReadError::DuplicateKey {
                            span: k.span,
                            key: k.text.clone(),
                            first,
                        });
                    } else {
                        entries.push((k, node));
                    }
                }
                None => {
                    let text = match node.kind {
                        NodeKind::Scalar { text, .. } => text,
                        NodeKind::Null => String::new(),
                        _ => {
                            self.errors.push(ReadError::ComplexKey {
                                span: node.span,
                                found: node.kind_name(),
                            });
                            String::from("?")
                        }
                    };
                    *key = Some(Key {
                        text,
                        span: node.span,
                    });
                }
            },
        }
        Ok(())
    }
}

/// Applies YAML merge keys (`<<: *base` or `<<: [*a, *b]`): merged entries never override keys
/// written in the mapping itself, earlier sources win over later ones.
fn apply_merges(entries: Vec<(Key, Node)>) -> Vec<(Key, Node)> {
    if !entries.iter().any(|(k, _)| k.text == "<<") {
        return entries;
    }
    let (merges, mut out): (Vec<_>, Vec<_>) =
        entries.into_iter().partition(|(k, _)| k.text == "<<");
    let mut present: std::collections::HashSet<String> =
        out.iter().map(|(k, _)| k.text.clone()).collect();
    for (key, value) in merges {
        let sources = match value.kind {
            NodeKind::Mapping(_) => vec![value],
            NodeKind::Sequence(items) => items,
            _ => {
                out.push((key, value));
                continue;
            }
        };
        for source in sources {
            match source.kind {
                NodeKind::Mapping(src) => {
                    for (k, v) in src {
                        if present.insert(k.text.clone()) {
                            out.push((k, v));
                        }
                    }
                }
                _ => out.push((key.clone(), source)),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
        let mut docs = read_stream(text, Limits::default());
        assert_eq!(docs.len(), 1, "{docs:?}");
        let doc = docs.remove(0);
        assert!(doc.errors.is_empty(), "{:?}", doc.errors);
        doc.root.expect("a root")
    }

    #[test]
    fn nested_nodes_have_their_own_line_and_column() {
        let root = one("a:\n  b:\n    - x\n    - {c: 'y'}\n");
        let b = root.get("a").and_then(|a| a.get("b")).expect("a.b");
        let NodeKind::Sequence(items) = &b.kind else {
            panic!("{b:?}")
        };
        assert_eq!((items[0].span.line, items[0].span.column), (3, 7));
        assert_eq!(items[0].as_str(), Some("x"));
        let c = items[1].get("c").expect("c");
        assert_eq!((c.span.line, c.span.column), (4, 11));
        assert!(matches!(
            c.kind,
            NodeKind::Scalar {
                style: ScalarStyle::Quoted,
                ..
            }
        ));
        let (key, _) = items[1].entry("c").expect("c");
        assert_eq!((key.span.line, key.span.column), (4, 8));
        assert_eq!(
            &"a:\n  b:\n    - x\n    - {c: 'y'}\n"[c.span.offset as usize..][..3],
            "'y'"
        );
    }

    #[test]
    fn columns_count_characters_and_offsets_count_bytes() {
        let root = one("ä: é\nb: x\n");
        let e = root.get("ä").expect("ä");
        assert_eq!((e.span.line, e.span.column, e.span.offset), (1, 4, 4));
        let x = root.get("b").expect("b");
        assert_eq!((x.span.line, x.span.column, x.span.offset), (2, 4, 10));
    }

    #[test]
    fn duplicate_keys_report_both_locations() {
        let docs = read_stream("a: 1\nb: 2\na: 3\n", Limits::default());
        assert_eq!(docs.len(), 1);
        match &docs[0].errors[..] {
            [ReadError::DuplicateKey { span, key, first }] => {
                assert_eq!(key, "a");
                assert_eq!((span.line, span.column), (3, 1));
                assert_eq!((first.line, first.column), (1, 1));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn huge_mappings_are_checked_in_linear_time() {
        let mut text: String = (0..50_000).map(|i| format!("k{i}: v\n")).collect();
        text.push_str("k17: again\nk49999: again\n");
        let docs = read_stream(&text, Limits::default());
        let dups: Vec<(u32, u32)> = docs[0]
            .errors
            .iter()
            .map(|e| match e {
                ReadError::DuplicateKey { span, first, .. } => (span.line, first.line),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(dups, [(50_001, 18), (50_002, 50_000)]);
    }

    #[test]
    fn multi_document_streams_and_nulls() {
        let docs = read_stream("---\na: 1\n---\n---\nb: ~\n", Limits::default());
        assert_eq!(docs.len(), 3);
        assert!(docs[1].root.as_ref().is_some_and(Node::is_null));
        let b = docs[2].root.as_ref().and_then(|r| r.get("b")).expect("b");
        assert!(b.is_null());
        assert_eq!(b.span.line, 5);
    }

    #[test]
    fn json_reads_into_the_same_tree() {
        let y = one("a:\n  - 1\n  - \"x\"\nb: {}\n");
        let j = one("{\"a\": [1, \"x\"], \"b\": {}}");
        let strip = |n: &Node| format!("{:?}", n.kind).replace(char::is_whitespace, "");
        // Same shape and scalars; spans differ of course.
        let shape = |n: &Node| match &n.kind {
            NodeKind::Mapping(e) => e
                .iter()
                .map(|(k, v)| format!("{}={}", k.text, v.kind_name()))
                .collect::<Vec<_>>()
                .join(","),
            _ => strip(n),
        };
        assert_eq!(shape(&y), shape(&j));
        assert_eq!(j.get("a").map(|a| a.count()), Some(3));
    }

    #[test]
    fn alias_expansion_is_bounded() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let docs = read_stream(&text, Limits::default());
        assert!(
            matches!(
                docs.last().map(|d| &d.errors[..]),
                Some([ReadError::TooManyNodes { .. }])
            ),
            "{:?}",
            docs.last().map(|d| &d.errors)
        );
    }

    #[test]
    fn nesting_depth_is_bounded() {
        let text: String = (0..300)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        let docs = read_stream(&text, Limits::default());
        assert!(docs.iter().any(|d| d
            .errors
            .iter()
            .any(|e| matches!(e, ReadError::TooDeep { limit: 128, .. }))));
        // Flow collections hit the scanner's own recursion limit first: also an error, no crash.
        let docs = read_stream(&"[".repeat(100_000), Limits::default());
        assert!(docs.iter().any(|d| !d.errors.is_empty()));
    }

    #[test]
    fn small_aliases_and_merge_keys_expand() {
        let root = one("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n");
        let u = root.get("use").expect("use");
        assert_eq!(u.get("x").and_then(Node::as_str), Some("1"));
        assert_eq!(u.get("y").and_then(Node::as_str), Some("3"));
    }

    #[test]
    fn syntax_errors_keep_earlier_documents() {
        let docs = read_stream("a: 1\n---\nb: [1, 2\n", Limits::default());
        assert_eq!(docs.len(), 2);
        assert!(docs[0].root.is_some() && docs[0].errors.is_empty());
        assert!(matches!(docs[1].errors[..], [ReadError::Syntax { .. }]));
    }
}
