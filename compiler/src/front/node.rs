//! The spanned syntax tree that YAML and JSON documents are read into before decoding.

use ir::Span;

/// How a scalar was written. Quoted scalars are always strings; plain ones may be numbers,
/// booleans or null (YAML 1.2 core schema).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalarStyle {
    Plain,
    Quoted,
}

/// A mapping key (always a scalar) with its own location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    pub text: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// Entries in document order; keys are unique (duplicates are reported by the reader).
    Mapping(Vec<(Key, Node)>),
    Sequence(Vec<Node>),
    Scalar {
        text: String,
        style: ScalarStyle,
    },
    /// `null`, `~`, or an empty value.
    Null,
}

/// One node of a document, with the 1-based line and column of its first character.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub span: Span,
    pub kind: NodeKind,
}

impl Node {
    /// Looks up a mapping entry by key; `None` for other node kinds.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    pub fn entry(&self, key: &str) -> Option<(&Key, &Node)> {
        match &self.kind {
            NodeKind::Mapping(entries) => entries
                .iter()
                .find(|(k, _)| k.text == key)
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    /// The text of a scalar (any style); `None` for mappings, sequences and null.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.kind, NodeKind::Null)
    }

    /// A short description of the node's kind for "expected X, found Y" messages.
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Mapping(_) => "a mapping",
            NodeKind::Sequence(_) => "a list",
            NodeKind::Scalar {
                style: ScalarStyle::Quoted,
                ..
            } => "a string",
            NodeKind::Scalar { text, .. } if parse_int(text).is_some() => "a number",
            NodeKind::Scalar { text, .. } if parse_bool(text).is_some() => "a boolean",
            NodeKind::Scalar { .. } => "a string",
            NodeKind::Null => "null",
        }
    }

    /// Number of nodes in this subtree (itself included).
    pub fn count(&self) -> usize {
        1 + match &self.kind {
            NodeKind::Mapping(e) => e.iter().map(|(_, v)| v.count()).sum(),
            NodeKind::Sequence(s) => s.iter().map(Node::count).sum(),
            _ => 0,
        }
    }
}

/// A YAML 1.2 core-schema integer (decimal, `0x`, `0o`), also the JSON number form.
pub fn parse_int(s: &str) -> Option<i64> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = if let Some(h) = digits.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()?
    } else if let Some(o) = digits.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()?
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()?
    } else {
        return None;
    };
    Some(if neg { -v } else { v })
}

/// A YAML 1.2 core-schema boolean.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// Is a plain scalar with this text a YAML 1.2 null?
pub fn is_null_text(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

/// Finds duplicate keys while a mapping is built: a linear scan for small mappings, a hash
/// index once the mapping grows (so huge mappings stay linear overall, not quadratic).
#[derive(Debug, Default)]
pub struct KeySet {
    index: Option<std::collections::HashMap<String, Span>>,
}

impl KeySet {
    const HASH_FROM: usize = 16;

    /// The span of an earlier `key` among `entries`, if any; otherwise records `key`, which the
    /// caller then appends to `entries`.
    pub fn seen(&mut self, entries: &[(Key, Node)], key: &Key) -> Option<Span> {
        if let Some(index) = &mut self.index {
            if let Some(first) = index.get(&key.text) {
                return Some(*first);
            }
            index.insert(key.text.clone(), key.span);
            return None;
        }
        if let Some((first, _)) = entries.iter().find(|(k, _)| k.text == key.text) {
            return Some(first.span);
        }
        if entries.len() >= Self::HASH_FROM {
            let all = entries.iter().map(|(k, _)| k).chain(std::iter::once(key));
            self.index = Some(all.map(|k| (k.text.clone(), k.span)).collect());
        }
        None
    }
}
