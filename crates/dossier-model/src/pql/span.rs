//! Where things are in PQL text, so every error can point at what it is about.

use std::fmt;

/// A place in the text: 1-based line and column (columns count characters, not bytes) and the
/// byte offset, which tools use to slice the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub line: u32,
    pub column: u32,
    pub offset: usize,
}

impl Position {
    /// The first character of any text.
    pub const START: Position = Position {
        line: 1,
        column: 1,
        offset: 0,
    };

    /// The position of byte `offset` of `text` (which must be a character boundary), counted the
    /// way the lexer counts: a `\n` starts a new line.
    pub fn of_offset(text: &str, offset: usize) -> Position {
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        let column = before[line_start..].chars().count() + 1;
        Position {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
            offset,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// The stretch of text a token or an AST node was read from: `start` inclusive, `end` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    pub start: Position,
    pub end: Position,
}

impl Span {
    /// From the start of `self` to the end of `last`.
    pub fn to(self, last: Span) -> Span {
        Span {
            start: self.start,
            end: last.end,
        }
    }

    /// The text the span covers.
    pub fn slice(self, text: &str) -> &str {
        &text[self.start.offset..self.end.offset]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let text = "a = 1\nand é = \"x\"";
        assert_eq!(Position::of_offset(text, 0), Position::START);
        let e_acute = text.find('é').unwrap();
        assert_eq!(
            Position::of_offset(text, e_acute),
            Position {
                line: 2,
                column: 5,
                offset: e_acute
            }
        );
        let after = e_acute + 'é'.len_utf8();
        assert_eq!(Position::of_offset(text, after).column, 6, "é is one column");
        assert_eq!(Position::of_offset(text, 6).to_string(), "line 2, column 1");
    }
}
