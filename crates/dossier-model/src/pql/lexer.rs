//! PQL text → tokens with spans.
//!
//! Keywords are not special here: `and`, `occurs` or `xEvent` come out as [`TokenKind::Ident`]
//! and the parser decides by context, because most PQL keywords are also plausible field names.
//! Operators that are common elsewhere but not PQL (`==`, `&&`, `||`, `<>`, single quotes) are
//! refused here with the PQL spelling, so a user coming from SQL or JavaScript learns it at once.

use super::error::PqlError;
use super::span::{Position, Span};

#[derive(Debug, Clone, PartialEq)]
pub enum TokenKind {
    /// A name: a field segment, a variable, a function or a keyword.
    Ident(String),
    /// A double-quoted string, escapes resolved.
    Str(String),
    /// Digits with an optional fraction, as written (`42`, `3.14`); the sign is a separate token.
    Number(String),
    /// `$1`: a parameter reference (refused by the parser, with the supported spelling).
    Parameter(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Colon,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    Bang,
    /// `=>`: lambda notation (refused by the parser).
    Arrow,
    Minus,
    /// `+`, `*`, `/`, `%`: arithmetic (refused by the parser).
    Arithmetic(char),
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub kind: TokenKind,
    pub span: Span,
}

impl Token {
    /// How the token is named in messages: `'person'`, `"text"`, `end of expression`.
    pub fn describe(&self) -> String {
        match &self.kind {
            TokenKind::Ident(name) => format!("'{name}'"),
            TokenKind::Str(text) => format!("\"{text}\""),
            TokenKind::Number(text) | TokenKind::Parameter(text) => format!("'{text}'"),
            TokenKind::Eof => "the end of the expression".to_owned(),
            other => format!("'{}'", symbol(other)),
        }
    }
}

fn symbol(kind: &TokenKind) -> String {
    let text = match kind {
        TokenKind::LParen => "(",
        TokenKind::RParen => ")",
        TokenKind::LBracket => "[",
        TokenKind::RBracket => "]",
        TokenKind::Comma => ",",
        TokenKind::Dot => ".",
        TokenKind::Colon => ":",
        TokenKind::Eq => "=",
        TokenKind::NotEq => "!=",
        TokenKind::Lt => "<",
        TokenKind::LtEq => "<=",
        TokenKind::Gt => ">",
        TokenKind::GtEq => ">=",
        TokenKind::Bang => "!",
        TokenKind::Arrow => "=>",
        TokenKind::Minus => "-",
        TokenKind::Arithmetic(c) => return c.to_string(),
        _ => "?",
    };
    text.to_owned()
}

/// A cursor over the text that keeps line and column.
struct Cursor<'a> {
    text: &'a str,
    position: Position,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<char> {
        self.text[self.position.offset..].chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.text[self.position.offset..].chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.position.offset += c.len_utf8();
        if c == '\n' {
            self.position.line += 1;
            self.position.column = 1;
        } else {
            self.position.column += 1;
        }
        Some(c)
    }

    fn eat_while(&mut self, keep: impl Fn(char) -> bool) -> &'a str {
        let start = self.position.offset;
        while self.peek().is_some_and(&keep) {
            self.bump();
        }
        &self.text[start..self.position.offset]
    }

    fn span_from(&self, start: Position) -> Span {
        Span {
            start,
            end: self.position,
        }
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_ident_continue(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Splits `text` into tokens; the last one is always [`TokenKind::Eof`].
pub fn tokenize(text: &str) -> Result<Vec<Token>, PqlError> {
    let mut cursor = Cursor {
        text,
        position: Position::START,
    };
    let mut tokens = Vec::new();
    loop {
        cursor.eat_while(char::is_whitespace);
        let start = cursor.position;
        let Some(c) = cursor.peek() else {
            tokens.push(Token {
                kind: TokenKind::Eof,
                span: cursor.span_from(start),
            });
            return Ok(tokens);
        };
        let kind = if is_ident_start(c) {
            TokenKind::Ident(cursor.eat_while(is_ident_continue).to_owned())
        } else if c.is_ascii_digit() {
            number(&mut cursor)
        } else if c == '"' {
            TokenKind::Str(string(&mut cursor)?)
        } else if c == '$' {
            cursor.bump();
            TokenKind::Parameter(format!("${}", cursor.eat_while(is_ident_continue)))
        } else {
            symbol_token(&mut cursor, c)?
        };
        tokens.push(Token {
            kind,
            span: cursor.span_from(start),
        });
    }
}

/// Digits, then `.digits` when a digit follows the dot (so `7.days` is never read as a number).
fn number(cursor: &mut Cursor<'_>) -> TokenKind {
    let start = cursor.position.offset;
    cursor.eat_while(|c| c.is_ascii_digit());
    if cursor.peek() == Some('.') && cursor.peek_second().is_some_and(|c| c.is_ascii_digit()) {
        cursor.bump();
        cursor.eat_while(|c| c.is_ascii_digit());
    }
    TokenKind::Number(cursor.text[start..cursor.position.offset].to_owned())
}

/// A double-quoted string. `\"`, `\\`, `\n`, `\t` and `\r` are escapes; any other backslash is
/// kept as written, so regular expressions such as `"\d+"` mean what they look like.
fn string(cursor: &mut Cursor<'_>) -> Result<String, PqlError> {
    let start = cursor.position;
    cursor.bump();
    let mut value = String::new();
    loop {
        match cursor.bump() {
            None => {
                return Err(PqlError::at(
                    start,
                    "this string is not closed: end it with a double quote (\")",
                ));
            }
            Some('"') => return Ok(value),
            Some('\\') => match cursor.peek() {
                Some(escaped @ ('"' | '\\')) => {
                    cursor.bump();
                    value.push(escaped);
                }
                Some(letter @ ('n' | 't' | 'r')) => {
                    cursor.bump();
                    value.push(match letter {
                        'n' => '\n',
                        't' => '\t',
                        _ => '\r',
                    });
                }
                _ => value.push('\\'),
            },
            Some(c) => value.push(c),
        }
    }
}

fn symbol_token(cursor: &mut Cursor<'_>, c: char) -> Result<TokenKind, PqlError> {
    let start = cursor.position;
    cursor.bump();
    let next = cursor.peek();
    let mut two = |kind: TokenKind| {
        cursor.bump();
        Ok(kind)
    };
    match (c, next) {
        ('=', Some('=')) => Err(PqlError::unsupported(start, "==", "PQL compares with a single '='")),
        ('=', Some('>')) => two(TokenKind::Arrow),
        ('!', Some('=')) => two(TokenKind::NotEq),
        ('<', Some('=')) => two(TokenKind::LtEq),
        ('>', Some('=')) => two(TokenKind::GtEq),
        ('<', Some('>')) => Err(PqlError::unsupported(start, "<>", "write '!=' for \"not equal\"")),
        ('&', Some('&')) => Err(PqlError::unsupported(start, "&&", "write 'and'")),
        ('|', Some('|')) => Err(PqlError::unsupported(start, "||", "write 'or'")),
        ('=', _) => Ok(TokenKind::Eq),
        ('<', _) => Ok(TokenKind::Lt),
        ('>', _) => Ok(TokenKind::Gt),
        ('!', _) => Ok(TokenKind::Bang),
        ('(', _) => Ok(TokenKind::LParen),
        (')', _) => Ok(TokenKind::RParen),
        ('[', _) => Ok(TokenKind::LBracket),
        (']', _) => Ok(TokenKind::RBracket),
        (',', _) => Ok(TokenKind::Comma),
        ('.', _) => Ok(TokenKind::Dot),
        (':', _) => Ok(TokenKind::Colon),
        ('-', _) => Ok(TokenKind::Minus),
        ('+' | '*' | '/' | '%', _) => Ok(TokenKind::Arithmetic(c)),
        ('\'', _) => Err(PqlError::at(
            start,
            "strings are written in double quotes in PQL: \"text\", not 'text'",
        )),
        _ => Err(PqlError::at(
            start,
            format!("the character '{}' has no meaning in PQL", c.escape_debug()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<TokenKind> {
        tokenize(text).unwrap().into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn tokens_of_a_comparison() {
        assert_eq!(
            kinds("homeAddress.countryCode != \"US\""),
            [
                TokenKind::Ident("homeAddress".into()),
                TokenKind::Dot,
                TokenKind::Ident("countryCode".into()),
                TokenKind::NotEq,
                TokenKind::Str("US".into()),
                TokenKind::Eof
            ]
        );
        assert_eq!(
            kinds("a>=-1.5"),
            [
                TokenKind::Ident("a".into()),
                TokenKind::GtEq,
                TokenKind::Minus,
                TokenKind::Number("1.5".into()),
                TokenKind::Eof
            ]
        );
    }

    #[test]
    fn spans_have_lines_and_columns() {
        let tokens = tokenize("a = 1\n  or b").unwrap();
        let or = &tokens[3];
        assert_eq!(or.kind, TokenKind::Ident("or".into()));
        assert_eq!((or.span.start.line, or.span.start.column), (2, 3));
        assert_eq!(or.span.slice("a = 1\n  or b"), "or");
    }

    #[test]
    fn strings_resolve_escapes_but_keep_regex_backslashes() {
        assert_eq!(
            kinds(r#""say \"hi\"\\ \d+""#)[0],
            TokenKind::Str("say \"hi\"\\ \\d+".into())
        );
    }

    #[test]
    fn foreign_operators_are_refused_where_they_stand() {
        for (text, column, words) in [
            ("a == 1", 3, "'==' is not supported"),
            ("a = 1 && b = 2", 7, "write 'and'"),
            ("a = 'x'", 5, "double quotes"),
            ("a = \"open", 5, "not closed"),
            ("a # 1", 3, "'#' has no meaning"),
        ] {
            let error = tokenize(text).unwrap_err();
            assert_eq!(error.position.column, column, "{text}");
            assert!(error.message.contains(words), "{text}: {}", error.message);
        }
    }
}
