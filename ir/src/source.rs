//! Source locations: which file, which byte range, which 1-based line and column.

use serde::{Deserialize, Serialize};

/// Index of a file in [`crate::PolicySet::files`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FileId(pub u32);

/// A source file as the front end saw it (path as given by the user; `-` for stdin).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    pub path: String,
}

/// A node's place in a file: byte offset and length, and the 1-based line and column of its start.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Span {
    pub offset: u32,
    pub len: u32,
    pub line: u32,
    pub column: u32,
}
