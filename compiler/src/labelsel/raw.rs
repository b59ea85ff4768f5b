//! The raw syntax the label-selector grammar produces: words with byte spans, before validation.

/// A key or value as written, with its byte range in the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub start: usize,
    pub end: usize,
}

/// One requirement as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawReq {
    Exists(Word),
    DoesNotExist(Word),
    Equals(Word, Word),
    NotEquals(Word, Word),
    In(Word, Vec<Word>),
    NotIn(Word, Vec<Word>),
}

/// One `key[=value]` of a plain label list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawLabel {
    pub key: Word,
    pub value: Option<Word>,
}
