//! Converting between byte offsets and 1-based line / character columns, for both readers.
//! A cursor remembers the last position, so scanning forward along one long line (minified
//! JSON, a one-line flow mapping) stays linear instead of re-counting from the line start.

use ir::Span;
use std::cell::Cell;

pub struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
    /// Pure ASCII text: a column is a byte distance (the common case, checked once).
    ascii: bool,
    /// Last position converted: (0-based line, 0-based character column, byte offset).
    cursor: Cell<(usize, usize, usize)>,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1));
        LineIndex {
            text,
            starts,
            ascii: text.is_ascii(),
            cursor: Cell::new((0, 0, 0)),
        }
    }

    /// Byte offset of 0-based character column `col` on 0-based line `line`.
    pub fn offset(&self, line: usize, col: usize) -> usize {
        let Some(&start) = self.starts.get(line) else {
            return self.text.len();
        };
        let (cl, cc, cb) = self.cursor.get();
        let (from_col, from_byte) = if cl == line && cc <= col {
            (cc, cb)
        } else {
            (0, start)
        };
        let rest = &self.text[from_byte..];
        let byte = from_byte
            + rest
                .char_indices()
                .nth(col - from_col)
                .map_or(rest.len(), |(i, _)| i);
        self.cursor.set((line, col, byte));
        byte
    }

    /// 0-based line and character column of a byte offset (clamped to a char boundary).
    pub fn position(&self, byte: usize) -> (usize, usize) {
        let byte = byte.min(self.text.len());
        let (cl, cc, cb) = self.cursor.get();
        let on_line = |l: usize| {
            self.starts[l] <= byte && self.starts.get(l + 1).is_none_or(|&next| byte < next)
        };
        let line = if on_line(cl) {
            cl
        } else if cl + 1 < self.starts.len() && on_line(cl + 1) {
            cl + 1
        } else {
            self.starts.partition_point(|&s| s <= byte) - 1
        };
        if self.ascii {
            let col = byte - self.starts[line];
            self.cursor.set((line, col, byte));
            return (line, col);
        }
        let (from_col, from_byte) = if cl == line && cb <= byte {
            (cc, cb)
        } else {
            (0, self.starts[line])
        };
        let col = from_col
            + self
                .text
                .get(from_byte..byte)
                .map_or(0, |s| s.chars().count());
        self.cursor.set((line, col, byte));
        (line, col)
    }

    /// The span of bytes `start..end`.
    pub fn span_of_bytes(&self, start: usize, end: usize) -> Span {
        let (line, col) = self.position(start);
        Span {
            offset: start as u32,
            len: end.saturating_sub(start) as u32,
            line: line as u32 + 1,
            column: col as u32 + 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_and_positions_round_trip_in_any_order() {
        let text = "ab\nçd é\n\nxyz";
        let idx = LineIndex::new(text);
        let expect = [
            (0, 0, 0),
            (0, 2, 2),
            (1, 0, 3),
            (1, 1, 5),
            (1, 3, 7),
            (1, 4, 9),
            (3, 2, 13),
        ];
        for &(l, c, b) in expect.iter().chain(expect.iter().rev()) {
            assert_eq!(idx.offset(l, c), b, "offset of {l}:{c}");
            assert_eq!(idx.position(b), (l, c), "position of byte {b}");
        }
    }
}
