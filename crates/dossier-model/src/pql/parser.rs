//! A recursive-descent parser from tokens to the typed [`Expr`] tree.
//!
//! Grammar (keywords `and`, `or`, `not` in any case, the others as written):
//!
//! ```text
//! condition  := or
//! or         := and ("or" and)*
//! and        := unary ("and" unary)*
//! unary      := ("not" | "!") unary | primary
//! primary    := "(" or ")" | "(" select ")" [count] | select | exists | xevent | inSegment
//!             | INTEGER compare xevent-count | predicate
//! select     := "select" VAR "from" "xEvent" ["where" or]
//! exists     := "exists" VAR "from" "xEvent" [("where" | ":") or]
//! xevent     := "xEvent" ["[" or "]"] [count]
//! count      := "." "count" "(" ")" compare INTEGER
//! inSegment  := "inSegment" "(" STRING ")"
//! predicate  := field "." method "(" args ")" | field ("in" | "notIn") list | field "like" STRING
//!             | field "occurs" window | operand compare operand
//! operand    := field | STRING | ["-"] NUMBER | "true" | "false" | date
//! date       := "date" "(" INTEGER "," INTEGER "," INTEGER ")" | "date" "(" STRING ")"
//! ```
//!
//! Fields are resolved while parsing, because what a path means depends on where it stands:
//! on the profile at the top, on the event inside `xEvent[...]`, and after the variable inside
//! `select X from xEvent where X.eventType = ...`. Nesting is limited to [`MAX_DEPTH`] levels so
//! that no input can exhaust the stack.

use jiff::Timestamp;
use jiff::civil::Date;

use super::ast::{
    CompareOp, EventSelection, Expr, FieldRef, FieldScope, FieldType, Literal, LiteralValue, Operand, RelativePeriod,
    TextFunction, TimeAnchor, TimeDirection, TimeUnit, TimeWindow,
};
use super::error::PqlError;
use super::fields::{PathProblem, PqlSchemas, problem_message, resolve};
use super::lexer::{Token, TokenKind, tokenize};
use super::span::{Position, Span};
use crate::xdm::{parse_date, parse_date_time};

/// How deep parentheses, `not` and event filters may nest.
pub const MAX_DEPTH: usize = 64;

/// The largest pattern `matches` compiles, in bytes of compiled program: far above any real
/// pattern, and low enough that a hostile one cannot take the server's memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Words that begin or join constructs and so never start a field path.
const RESERVED: &[&str] = &[
    "and",
    "or",
    "not",
    "in",
    "notIn",
    "like",
    "occurs",
    "select",
    "exists",
    "from",
    "where",
    "xEvent",
    "forall",
    "let",
    "between",
    "before",
    "after",
    "inSegment",
];

const FUNCTIONS_HINT: &str = "the functions of this subset are inSegment(\"<segment id>\") and date(...), and on a \
     field isNull(), isNotNull(), startsWith(...), endsWith(...), contains(...), equals(...) and matches(...)";

/// What a bare field path reads at the current place of the text.
#[derive(Debug, Clone, PartialEq)]
enum Context {
    /// Top level: the profile.
    Profile,
    /// Inside `xEvent[...]`: the event.
    EventItem,
    /// Inside `select X from xEvent where ...`: `X.path` is the event, other paths the profile.
    EventVariable(String),
}

/// Parses `text` into a condition, checking field paths against `schemas`.
pub fn parse(text: &str, schemas: PqlSchemas<'_>) -> Result<Expr, PqlError> {
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        tokens,
        index: 0,
        schemas,
        context: Context::Profile,
        depth: 0,
    };
    if parser.peek().kind == TokenKind::Eof {
        return Err(PqlError::at(
            Position::START,
            "the expression is empty; write a condition such as homeAddress.countryCode = \"US\"",
        ));
    }
    let condition = parser.parse_or()?;
    let rest = parser.peek();
    if rest.kind != TokenKind::Eof {
        return Err(PqlError::at(
            rest.span.start,
            format!(
                "unexpected {} after a complete condition; join conditions with and / or",
                rest.describe()
            ),
        ));
    }
    Ok(condition)
}

struct Parser<'s> {
    tokens: Vec<Token>,
    index: usize,
    schemas: PqlSchemas<'s>,
    context: Context,
    depth: usize,
}

/// One segment of a field path as written.
struct Segment {
    name: String,
    span: Span,
}

impl Parser<'_> {
    // ---- token helpers -------------------------------------------------------------------

    fn peek(&self) -> &Token {
        &self.tokens[self.index]
    }

    fn peek_at(&self, ahead: usize) -> &TokenKind {
        let last = self.tokens.len() - 1;
        &self.tokens[(self.index + ahead).min(last)].kind
    }

    fn advance(&mut self) -> Token {
        let token = self.tokens[self.index].clone();
        if self.index + 1 < self.tokens.len() {
            self.index += 1;
        }
        token
    }

    fn at_word(&self, word: &str) -> bool {
        matches!(&self.peek().kind, TokenKind::Ident(name) if name == word)
    }

    /// `and`, `or`, `not` are accepted in any case, as SQL writers type them.
    fn at_word_any_case(&self, word: &str) -> bool {
        matches!(&self.peek().kind, TokenKind::Ident(name) if name.eq_ignore_ascii_case(word))
    }

    fn eat_word(&mut self, word: &str) -> Option<Span> {
        self.at_word(word).then(|| self.advance().span)
    }

    fn unexpected(&self, expected: &str) -> PqlError {
        let token = self.peek();
        PqlError::at(
            token.span.start,
            format!("expected {expected}, found {}", token.describe()),
        )
    }

    fn expect(&mut self, kind: TokenKind, expected: &str) -> Result<Span, PqlError> {
        if self.peek().kind == kind {
            Ok(self.advance().span)
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn expect_word(&mut self, word: &str, expected: &str) -> Result<Span, PqlError> {
        self.eat_word(word).ok_or_else(|| self.unexpected(expected))
    }

    fn enter(&mut self, at: Position) -> Result<(), PqlError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(PqlError::at(
                at,
                format!("the condition nests more than {MAX_DEPTH} levels deep; simplify it"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn compare_op(&self) -> Option<CompareOp> {
        Some(match self.peek().kind {
            TokenKind::Eq => CompareOp::Eq,
            TokenKind::NotEq => CompareOp::NotEq,
            TokenKind::Lt => CompareOp::Lt,
            TokenKind::LtEq => CompareOp::LtEq,
            TokenKind::Gt => CompareOp::Gt,
            TokenKind::GtEq => CompareOp::GtEq,
            _ => return None,
        })
    }

    // ---- boolean structure ---------------------------------------------------------------

    fn parse_or(&mut self) -> Result<Expr, PqlError> {
        let mut operands = vec![self.parse_and()?];
        while self.at_word_any_case("or") {
            self.advance();
            operands.push(self.parse_and()?);
        }
        Ok(joined(operands, |operands, span| Expr::Or { operands, span }))
    }

    fn parse_and(&mut self) -> Result<Expr, PqlError> {
        let mut operands = vec![self.parse_unary()?];
        while self.at_word_any_case("and") {
            self.advance();
            operands.push(self.parse_unary()?);
        }
        Ok(joined(operands, |operands, span| Expr::And { operands, span }))
    }

    fn parse_unary(&mut self) -> Result<Expr, PqlError> {
        if self.at_word_any_case("not") || self.peek().kind == TokenKind::Bang {
            let keyword = self.advance().span;
            self.enter(keyword.start)?;
            let operand = self.parse_unary()?;
            self.leave();
            let span = keyword.to(operand.span());
            return Ok(Expr::Not {
                operand: Box::new(operand),
                span,
            });
        }
        self.parse_primary()
    }

    fn parse_primary(&mut self) -> Result<Expr, PqlError> {
        let token = self.peek().clone();
        match &token.kind {
            TokenKind::LParen => self.parse_parenthesized(),
            TokenKind::Parameter(name) => Err(PqlError::unsupported(
                token.span.start,
                name,
                "write the field path directly, e.g. homeAddress.countryCode",
            )),
            TokenKind::Number(_) if self.is_count_on_the_right() => self.parse_count_on_the_right(),
            TokenKind::Ident(word) => match word.as_str() {
                "select" => self.parse_select(),
                "exists" => self.parse_exists(),
                "xEvent" => self.parse_xevent(),
                "inSegment" => self.parse_in_segment(),
                "forall" => Err(PqlError::unsupported(
                    token.span.start,
                    "forall",
                    "write the negation: not (select X from xEvent where not (...))",
                )),
                "let" => Err(PqlError::unsupported(
                    token.span.start,
                    "let",
                    "write the expression where the variable is used",
                )),
                _ => self.parse_predicate(),
            },
            _ => self.parse_predicate(),
        }
    }

    /// `( condition )`, `( select ... )` optionally counted, and the refused lambda notation.
    fn parse_parenthesized(&mut self) -> Result<Expr, PqlError> {
        if let (TokenKind::Ident(name), TokenKind::RParen, TokenKind::Arrow) =
            (self.peek_at(1), self.peek_at(2), self.peek_at(3))
        {
            return Err(PqlError::unsupported(
                self.peek().span.start,
                &format!("({name}) =>"),
                "leave out the lambda and write field paths directly, e.g. homeAddress.countryCode = \"US\"",
            ));
        }
        let open = self.advance().span;
        self.enter(open.start)?;
        let selects = matches!(self.peek_at(0), TokenKind::Ident(word) if word == "select");
        let inner = self.parse_or()?;
        self.expect(TokenKind::RParen, "')' to close the '(' opened before")?;
        self.leave();
        match inner {
            Expr::EventExists { events, span } if selects && self.peek().kind == TokenKind::Dot => {
                self.parse_count(events, span)
            }
            inner => Ok(inner),
        }
    }

    // ---- event conditions ----------------------------------------------------------------

    fn refuse_nested_events(&self, at: Position, construct: &str) -> Result<(), PqlError> {
        if self.context == Context::Profile {
            return Ok(());
        }
        Err(PqlError::unsupported(
            at,
            construct,
            "an xEvent condition cannot contain another one; combine them outside with and / or",
        ))
    }

    /// Parses an event filter with `context` as the meaning of bare paths.
    fn parse_event_filter(&mut self, context: Context, at: Position) -> Result<Box<Expr>, PqlError> {
        self.enter(at)?;
        let outer = std::mem::replace(&mut self.context, context);
        let filter = self.parse_or();
        self.context = outer;
        self.leave();
        Ok(Box::new(filter?))
    }

    /// `VAR from xEvent`, after `select` or `exists`; returns the variable.
    fn parse_event_source(&mut self, keyword: &str) -> Result<String, PqlError> {
        let variable = match self.peek().kind.clone() {
            TokenKind::Ident(name) if !RESERVED.contains(&name.as_str()) => {
                self.advance();
                name
            }
            _ => {
                return Err(self.unexpected(&format!(
                    "a variable name after '{keyword}', e.g. {keyword} X from xEvent"
                )));
            }
        };
        self.expect_word("from", &format!("'from' in {keyword} {variable} from xEvent"))?;
        if !self.at_word("xEvent") {
            let token = self.peek();
            return Err(PqlError::unsupported(
                token.span.start,
                &format!("{keyword} ... from {}", token.describe().trim_matches('\'')),
                format!("{keyword} reads xEvent only (the profile's experience events)"),
            ));
        }
        self.advance();
        Ok(variable)
    }

    fn parse_select(&mut self) -> Result<Expr, PqlError> {
        let keyword = self.advance().span;
        self.refuse_nested_events(keyword.start, "select")?;
        let variable = self.parse_event_source("select")?;
        let mut end = self.tokens[self.index - 1].span;
        let filter = match self.eat_word("where") {
            Some(_) => {
                let filter = self.parse_event_filter(Context::EventVariable(variable), keyword.start)?;
                end = filter.span();
                Some(filter)
            }
            None => None,
        };
        let span = keyword.to(end);
        Ok(Expr::EventExists {
            events: EventSelection { filter, span },
            span,
        })
    }

    fn parse_exists(&mut self) -> Result<Expr, PqlError> {
        let keyword = self.advance().span;
        self.refuse_nested_events(keyword.start, "exists")?;
        let variable = self.parse_event_source("exists")?;
        let mut end = self.tokens[self.index - 1].span;
        let filter = if self.eat_word("where").is_some() || self.peek().kind == TokenKind::Colon {
            if self.peek().kind == TokenKind::Colon {
                self.advance();
            }
            let filter = self.parse_event_filter(Context::EventVariable(variable), keyword.start)?;
            end = filter.span();
            Some(filter)
        } else {
            None
        };
        if self.peek().kind == TokenKind::Comma {
            return Err(PqlError::unsupported(
                self.peek().span.start,
                ", (a second from list)",
                "exists reads one variable from xEvent",
            ));
        }
        let span = keyword.to(end);
        Ok(Expr::EventExists {
            events: EventSelection { filter, span },
            span,
        })
    }

    fn parse_xevent(&mut self) -> Result<Expr, PqlError> {
        let keyword = self.advance().span;
        self.refuse_nested_events(keyword.start, "xEvent")?;
        let events = self.parse_xevent_selection(keyword)?;
        let span = events.span;
        if self.peek().kind == TokenKind::Dot {
            return self.parse_count(events, span);
        }
        if let Some(op) = self.compare_op() {
            return Err(PqlError::at(
                self.peek().span.start,
                format!(
                    "xEvent is a list of events and cannot be compared with '{}'; count them: xEvent[...].count() {} N",
                    op.as_str(),
                    op.as_str()
                ),
            ));
        }
        Ok(Expr::EventExists { events, span })
    }

    /// The optional `[filter]` after `xEvent` (already consumed, at `keyword`).
    fn parse_xevent_selection(&mut self, keyword: Span) -> Result<EventSelection, PqlError> {
        if self.peek().kind != TokenKind::LBracket {
            return Ok(EventSelection {
                filter: None,
                span: keyword,
            });
        }
        let open = self.advance().span;
        let filter = self.parse_event_filter(Context::EventItem, open.start)?;
        let close = self.expect(TokenKind::RBracket, "']' to close the xEvent filter")?;
        Ok(EventSelection {
            filter: Some(filter),
            span: keyword.to(close),
        })
    }

    /// `.count() OP N` after an event selection.
    fn parse_count(&mut self, events: EventSelection, start: Span) -> Result<Expr, PqlError> {
        self.advance();
        let method = self.peek().clone();
        match &method.kind {
            TokenKind::Ident(name) if name == "count" => {}
            TokenKind::Ident(name) => {
                return Err(PqlError::unsupported(
                    method.span.start,
                    name,
                    "the only function on an xEvent selection is count(), e.g. xEvent[...].count() > 2",
                ));
            }
            _ => return Err(self.unexpected("count() after '.'")),
        }
        self.advance();
        self.expect(TokenKind::LParen, "'(' after count")?;
        self.expect(TokenKind::RParen, "')': count() takes no arguments")?;
        let op = self
            .compare_op()
            .ok_or_else(|| self.unexpected("a comparison after count(), e.g. count() > 2"))?;
        self.advance();
        let (count, count_span) = self.parse_event_count()?;
        Ok(Expr::EventCount {
            events,
            op,
            count,
            span: start.to(count_span),
        })
    }

    /// A whole number of events.
    fn parse_event_count(&mut self) -> Result<(u64, Span), PqlError> {
        let token = self.peek().clone();
        match &token.kind {
            TokenKind::Number(text) if !text.contains('.') => {
                let count = text.parse::<u64>().map_err(|_| {
                    PqlError::at(token.span.start, format!("{text} is too large for a number of events"))
                })?;
                self.advance();
                Ok((count, token.span))
            }
            TokenKind::Number(_) | TokenKind::Minus => Err(PqlError::at(
                token.span.start,
                "a number of events is a whole number, 0 or more",
            )),
            _ => Err(self.unexpected("a number of events")),
        }
    }

    /// `3 < xEvent[...].count()`.
    fn is_count_on_the_right(&self) -> bool {
        let compares = matches!(
            self.peek_at(1),
            TokenKind::Eq | TokenKind::NotEq | TokenKind::Lt | TokenKind::LtEq | TokenKind::Gt | TokenKind::GtEq
        );
        compares && matches!(self.peek_at(2), TokenKind::Ident(word) if word == "xEvent")
    }

    fn parse_count_on_the_right(&mut self) -> Result<Expr, PqlError> {
        let (count, count_span) = self.parse_event_count()?;
        let op = self.compare_op().expect("checked by is_count_on_the_right");
        self.advance();
        let keyword = self.advance().span;
        self.refuse_nested_events(keyword.start, "xEvent")?;
        let events = self.parse_xevent_selection(keyword)?;
        if self.peek().kind != TokenKind::Dot {
            return Err(self.unexpected(&format!(
                "'.count()' to count the events: {count} {} xEvent[...].count()",
                op.as_str()
            )));
        }
        self.advance();
        self.expect_word("count", "count() after '.'")?;
        self.expect(TokenKind::LParen, "'(' after count")?;
        let close = self.expect(TokenKind::RParen, "')': count() takes no arguments")?;
        Ok(Expr::EventCount {
            events,
            op: op.flipped(),
            count,
            span: count_span.to(close),
        })
    }

    fn parse_in_segment(&mut self) -> Result<Expr, PqlError> {
        let keyword = self.advance().span;
        if self.context != Context::Profile {
            return Err(PqlError::unsupported(
                keyword.start,
                "inSegment inside an xEvent condition",
                "put it outside the event condition: (select X from xEvent where ...) and inSegment(\"...\")",
            ));
        }
        self.expect(TokenKind::LParen, "'(' after inSegment")?;
        let token = self.peek().clone();
        let TokenKind::Str(segment_id) = &token.kind else {
            return Err(self.unexpected("the segment id as a string, e.g. inSegment(\"<segment id>\")"));
        };
        if segment_id.trim().is_empty() {
            return Err(PqlError::at(token.span.start, "the segment id is empty"));
        }
        self.advance();
        let close = self.expect(TokenKind::RParen, "')': inSegment takes one segment id")?;
        Ok(Expr::InSegment {
            segment_id: segment_id.clone(),
            span: keyword.to(close),
        })
    }
}

/// One operand as is, several joined by `make`.
fn joined(mut operands: Vec<Expr>, make: impl FnOnce(Vec<Expr>, Span) -> Expr) -> Expr {
    if operands.len() == 1 {
        return operands.pop().expect("one operand");
    }
    let span = operands[0].span().to(operands[operands.len() - 1].span());
    make(operands, span)
}

// ---- predicates on fields -----------------------------------------------------------------

impl Parser<'_> {
    fn parse_predicate(&mut self) -> Result<Expr, PqlError> {
        match self.parse_operand()? {
            Operand::Field(field) => self.parse_field_predicate(field),
            Operand::Value(literal) => self.parse_value_first(literal),
        }
    }

    /// `3 < person.age`: the same comparison as `person.age > 3`.
    fn parse_value_first(&mut self, literal: Literal) -> Result<Expr, PqlError> {
        let op = self
            .compare_op()
            .ok_or_else(|| self.unexpected("a comparison (=, !=, <, <=, >, >=) after the value"))?;
        self.advance();
        let right = self.parse_operand()?;
        let Operand::Field(field) = right else {
            return Err(PqlError::at(
                literal.span.start,
                "both sides of this comparison are values; compare a field with a value",
            ));
        };
        check_value_fits(&field, op, &literal)?;
        let span = literal.span.to(field.span);
        Ok(Expr::Compare {
            left: Operand::Field(field),
            op: op.flipped(),
            right: Operand::Value(literal),
            span,
        })
    }

    fn parse_field_predicate(&mut self, field: FieldRef) -> Result<Expr, PqlError> {
        if let Some(op) = self.compare_op() {
            self.advance();
            let right = self.parse_operand()?;
            check_comparable(&field, op, &right)?;
            let span = field.span.to(right.span());
            return Ok(Expr::Compare {
                left: Operand::Field(field),
                op,
                right,
                span,
            });
        }
        let token = self.peek().clone();
        match &token.kind {
            TokenKind::Dot => self.parse_method(field),
            TokenKind::Ident(word) if word == "in" || word == "notIn" => self.parse_in_list(field, word == "notIn"),
            TokenKind::Ident(word) if word == "like" => self.parse_like(field),
            TokenKind::Ident(word) if word == "occurs" => self.parse_occurs(field),
            TokenKind::Ident(word) if word.eq_ignore_ascii_case("not") => Err(PqlError::unsupported(
                token.span.start,
                &format!("{word} {}", describe_kind(self.peek_at(1))),
                "write notIn for \"not in a list\", or not (...) around a condition",
            )),
            TokenKind::Ident(word) if word == "between" => Err(PqlError::unsupported(
                token.span.start,
                "between",
                format!("for dates write {} occurs between date(...) and date(...)", field.path),
            )),
            _ => Err(PqlError::at(
                token.span.start,
                format!(
                    "expected a comparison (=, !=, <, <=, >, >=), in, notIn, like, occurs or a function after '{}', found {}",
                    field.path,
                    token.describe()
                ),
            )),
        }
    }

    fn parse_in_list(&mut self, field: FieldRef, negated: bool) -> Result<Expr, PqlError> {
        self.advance();
        self.expect(
            TokenKind::LBracket,
            "'[' to start the list of values, e.g. in [\"US\", \"CA\"]",
        )?;
        let mut values = Vec::new();
        if self.peek().kind == TokenKind::RBracket {
            return Err(PqlError::at(
                self.peek().span.start,
                "the list is empty; give at least one value",
            ));
        }
        loop {
            let literal = self.parse_literal_operand()?;
            check_value_fits(&field, CompareOp::Eq, &literal)?;
            values.push(literal);
            if self.peek().kind != TokenKind::Comma {
                break;
            }
            self.advance();
        }
        let close = self.expect(TokenKind::RBracket, "',' or ']' in the list of values")?;
        let span = field.span.to(close);
        Ok(Expr::In {
            field,
            values,
            negated,
            span,
        })
    }

    fn parse_like(&mut self, field: FieldRef) -> Result<Expr, PqlError> {
        let keyword = self.advance().span;
        require_string_field(&field, keyword.start, "like")?;
        let (pattern, pattern_span) = self.parse_string_argument("a pattern string after like, e.g. like \"%es%\"")?;
        let span = field.span.to(pattern_span);
        Ok(Expr::Text {
            field,
            function: TextFunction::Like,
            pattern,
            case_sensitive: true,
            span,
        })
    }

    fn parse_string_argument(&mut self, expected: &str) -> Result<(String, Span), PqlError> {
        let token = self.peek().clone();
        match token.kind {
            TokenKind::Str(text) => {
                self.advance();
                Ok((text, token.span))
            }
            _ => Err(self.unexpected(expected)),
        }
    }

    /// `field.isNull()`, `field.startsWith("x", false)`, ...
    fn parse_method(&mut self, field: FieldRef) -> Result<Expr, PqlError> {
        self.advance();
        let token = self.peek().clone();
        let TokenKind::Ident(name) = &token.kind else {
            return Err(self.unexpected("a function name after '.'"));
        };
        let function = match name.as_str() {
            "isNull" | "isNotNull" => return self.parse_null_check(field, name == "isNotNull"),
            "startsWith" => TextFunction::StartsWith,
            "endsWith" => TextFunction::EndsWith,
            "contains" => TextFunction::Contains,
            "equals" => TextFunction::Equals,
            "matches" => TextFunction::Matches,
            refused => return Err(refused_method(refused, &field, token.span.start)),
        };
        self.advance();
        require_string_field(&field, token.span.start, function.name())?;
        self.expect(TokenKind::LParen, &format!("'(' after {}", function.name()))?;
        let (pattern, pattern_span) =
            self.parse_string_argument(&format!("a string argument to {}", function.name()))?;
        if function == TextFunction::Matches {
            check_regex(&pattern, pattern_span.start)?;
        }
        let case_sensitive = self.parse_case_flag(function)?;
        let close = self.expect(TokenKind::RParen, &format!("')' to close {}(...)", function.name()))?;
        let span = field.span.to(close);
        Ok(Expr::Text {
            field,
            function,
            pattern,
            case_sensitive,
            span,
        })
    }

    /// The optional second argument of the string functions: `true` (the default) compares case
    /// sensitively, `false` ignores case. `matches` has none: its pattern can say `(?i)`.
    fn parse_case_flag(&mut self, function: TextFunction) -> Result<bool, PqlError> {
        if self.peek().kind != TokenKind::Comma {
            return Ok(true);
        }
        let comma = self.advance().span;
        if function == TextFunction::Matches {
            return Err(PqlError::at(
                comma.start,
                "matches takes one argument; to ignore case start the pattern with (?i)",
            ));
        }
        match self.peek().kind {
            TokenKind::Ident(ref word) if word == "true" || word == "false" => {
                let case_sensitive = word == "true";
                self.advance();
                Ok(case_sensitive)
            }
            _ => Err(self.unexpected("true (case sensitive) or false (ignore case)")),
        }
    }

    fn parse_null_check(&mut self, field: FieldRef, negated: bool) -> Result<Expr, PqlError> {
        self.advance();
        self.expect(TokenKind::LParen, "'(' after the function name")?;
        let close = self.expect(TokenKind::RParen, "')': this function takes no arguments")?;
        let span = field.span.to(close);
        Ok(Expr::IsNull { field, negated, span })
    }
}

fn describe_kind(kind: &TokenKind) -> String {
    match kind {
        TokenKind::Ident(name) => name.clone(),
        _ => "...".to_owned(),
    }
}

/// The message for a function this subset does not have, with the spelling that it does have.
fn refused_method(name: &str, field: &FieldRef, at: Position) -> PqlError {
    let path = &field.path;
    let fix = match name {
        "doesNotStartWith" => format!("write not ({path}.startsWith(\"...\"))"),
        "doesNotEndWith" => format!("write not ({path}.endsWith(\"...\"))"),
        "doesNotContain" => format!("write not ({path}.contains(\"...\"))"),
        "notEqualTo" => format!("write {path} != \"...\""),
        "count" | "sum" | "average" | "min" | "max" => {
            "aggregations are supported over xEvent only: xEvent[...].count() > N".to_owned()
        }
        _ => FUNCTIONS_HINT.to_owned(),
    };
    PqlError::unsupported(at, name, fix)
}

fn require_string_field(field: &FieldRef, at: Position, function: &str) -> Result<(), PqlError> {
    if field.ty == FieldType::String {
        return Ok(());
    }
    Err(PqlError::at(
        at,
        format!(
            "{function} applies to strings, and '{}' is {}",
            field.path,
            with_article(field.ty.as_str())
        ),
    ))
}

fn with_article(word: &str) -> String {
    let article = if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {word}")
}

/// Refuses a pattern the regular-expression engine would not run as written (PQL's `matches`
/// follows Java; look-around and back-references, for example, have no equivalent here).
fn check_regex(pattern: &str, at: Position) -> Result<(), PqlError> {
    let built = regex::RegexBuilder::new(pattern).size_limit(REGEX_SIZE_LIMIT).build();
    match built {
        Ok(_) => Ok(()),
        Err(error) => {
            let text = error.to_string();
            let reason = text
                .lines()
                .find_map(|line| line.trim().strip_prefix("error: "))
                .unwrap_or(text.lines().last().unwrap_or("invalid pattern"))
                .to_owned();
            Err(PqlError::at(
                at,
                format!(
                    "this regular expression cannot be used: {reason} (look-around and back-references are not supported)"
                ),
            ))
        }
    }
}

// ---- operands: fields and literals ----------------------------------------------------------

impl Parser<'_> {
    fn parse_operand(&mut self) -> Result<Operand, PqlError> {
        let token = self.peek().clone();
        match &token.kind {
            TokenKind::Ident(word) => self.parse_word_operand(word, token.span),
            TokenKind::Str(_) | TokenKind::Number(_) | TokenKind::Minus => {
                Ok(Operand::Value(self.parse_literal_operand()?))
            }
            TokenKind::Parameter(name) => Err(PqlError::unsupported(
                token.span.start,
                name,
                "write the field path directly, e.g. homeAddress.countryCode",
            )),
            TokenKind::Arithmetic(op) => Err(PqlError::unsupported(
                token.span.start,
                &op.to_string(),
                "arithmetic is not part of this subset; compare a field with a value",
            )),
            _ => Err(self.unexpected("a condition: a field, a value, xEvent, select or inSegment")),
        }
    }

    fn parse_word_operand(&mut self, word: &str, span: Span) -> Result<Operand, PqlError> {
        let calls = self.peek_at(1) == &TokenKind::LParen;
        match word {
            "true" | "false" => Ok(Operand::Value(self.parse_literal_operand()?)),
            "date" if calls => Ok(Operand::Value(self.parse_literal_operand()?)),
            "null" => Err(PqlError::unsupported(
                span.start,
                "null",
                "test for a missing value with field.isNull() or field.isNotNull()",
            )),
            "now" | "today" | "yesterday" | "tomorrow" => Err(PqlError::unsupported(
                span.start,
                &format!("{word} as a value"),
                format!("compare times with occurs, e.g. X.timestamp occurs before {word}"),
            )),
            _ if calls => Err(PqlError::unsupported(span.start, word, FUNCTIONS_HINT)),
            _ if RESERVED.contains(&word) || word.eq_ignore_ascii_case("and") || word.eq_ignore_ascii_case("or") => {
                Err(self.unexpected("a condition: a field, a value, xEvent, select or inSegment"))
            }
            _ => Ok(Operand::Field(self.parse_field()?)),
        }
    }

    /// A literal: string, number (optionally negative), boolean or date.
    fn parse_literal_operand(&mut self) -> Result<Literal, PqlError> {
        let token = self.peek().clone();
        let value = match &token.kind {
            TokenKind::Str(text) => LiteralValue::String(text.clone()),
            TokenKind::Minus => return self.parse_negative_number(),
            TokenKind::Number(text) => number_value(text, token.span.start, false)?,
            TokenKind::Ident(word) if word == "true" || word == "false" => LiteralValue::Boolean(word == "true"),
            TokenKind::Ident(word) if word == "date" && self.peek_at(1) == &TokenKind::LParen => {
                return self.parse_date_literal();
            }
            _ => return Err(self.unexpected("a value: a string, a number, true, false or date(...)")),
        };
        self.advance();
        Ok(Literal {
            value,
            span: token.span,
        })
    }

    fn parse_negative_number(&mut self) -> Result<Literal, PqlError> {
        let minus = self.advance().span;
        let token = self.peek().clone();
        let TokenKind::Number(text) = &token.kind else {
            return Err(PqlError::unsupported(
                minus.start,
                "-",
                "a minus sign is only accepted right before a number; arithmetic is not part of this subset",
            ));
        };
        let value = number_value(text, minus.start, true)?;
        self.advance();
        Ok(Literal {
            value,
            span: minus.to(token.span),
        })
    }

    /// `date(2020, 3, 14)`, `date("2020-03-14")` or `date("2020-03-14T10:00:00Z")`.
    fn parse_date_literal(&mut self) -> Result<Literal, PqlError> {
        let keyword = self.advance().span;
        self.expect(TokenKind::LParen, "'(' after date, e.g. date(2020, 3, 14)")?;
        let argument = self.peek().clone();
        let value = match &argument.kind {
            TokenKind::Str(text) => {
                self.advance();
                date_from_text(text, argument.span.start)?
            }
            TokenKind::Number(_) => self.parse_date_parts()?,
            _ => return Err(self.unexpected("date(year, month, day) or date(\"2020-03-14\")")),
        };
        let close = self.expect(TokenKind::RParen, "')' to close date(...)")?;
        Ok(Literal {
            value,
            span: keyword.to(close),
        })
    }

    /// `year, month, day` of `date(...)`.
    fn parse_date_parts(&mut self) -> Result<LiteralValue, PqlError> {
        let start = self.peek().span.start;
        let mut parts = Vec::with_capacity(3);
        for index in 0..3 {
            if index > 0 {
                self.expect(TokenKind::Comma, "',' between year, month and day")?;
            }
            let token = self.peek().clone();
            let part = match &token.kind {
                TokenKind::Number(text) => text.parse::<i16>().ok(),
                _ => None,
            };
            let Some(part) = part else {
                return Err(self.unexpected("a whole number: date(year, month, day)"));
            };
            self.advance();
            parts.push(part);
        }
        let (year, month, day) = (parts[0], parts[1], parts[2]);
        let month = i8::try_from(month).unwrap_or(0);
        let day = i8::try_from(day).unwrap_or(0);
        Date::new(year, month, day).map(LiteralValue::Date).map_err(|_| {
            PqlError::at(
                start,
                format!("date({year}, {month}, {day}) is not a day of the calendar"),
            )
        })
    }

    /// A field path at the current token, resolved in the current context.
    fn parse_field(&mut self) -> Result<FieldRef, PqlError> {
        let segments = self.parse_path_segments();
        match self.context.clone() {
            Context::Profile => self.resolve_in(FieldScope::Profile, &segments, 0),
            Context::EventItem => self.resolve_event_item(&segments),
            Context::EventVariable(variable) => self.resolve_event_variable(&variable, &segments),
        }
    }

    /// `a.b.c`, stopping before a `.name(` that calls a function.
    fn parse_path_segments(&mut self) -> Vec<Segment> {
        let mut segments = Vec::new();
        loop {
            let token = self.advance();
            let TokenKind::Ident(name) = token.kind else {
                unreachable!("paths start at an identifier and continue only after one");
            };
            segments.push(Segment { name, span: token.span });
            let continues = self.peek().kind == TokenKind::Dot
                && matches!(self.peek_at(1), TokenKind::Ident(_))
                && self.peek_at(2) != &TokenKind::LParen;
            if !continues {
                return segments;
            }
            self.advance();
        }
    }

    /// Resolves `segments[skip..]` in `scope`; errors point at the segment at fault.
    fn resolve_in(&self, scope: FieldScope, segments: &[Segment], skip: usize) -> Result<FieldRef, PqlError> {
        let names: Vec<&str> = segments[skip..].iter().map(|s| s.name.as_str()).collect();
        let span = segments[0].span.to(segments[segments.len() - 1].span);
        match resolve(self.schemas.of(scope), &names) {
            Ok(ty) => Ok(FieldRef {
                scope,
                path: names.join("."),
                ty,
                span,
            }),
            Err(problem) => {
                let at = problem_segment(&problem);
                Err(PqlError::at(
                    segments[skip + at].span.start,
                    problem_message(&problem, &names, scope),
                ))
            }
        }
    }

    fn resolves(&self, scope: FieldScope, segments: &[Segment]) -> bool {
        let names: Vec<&str> = segments.iter().map(|s| s.name.as_str()).collect();
        resolve(self.schemas.of(scope), &names).is_ok()
    }

    fn resolve_event_item(&self, segments: &[Segment]) -> Result<FieldRef, PqlError> {
        let event = self.resolve_in(FieldScope::Event, segments, 0);
        if event.is_err() && self.resolves(FieldScope::Profile, segments) {
            return Err(profile_field_in_event_filter(segments));
        }
        event
    }

    fn resolve_event_variable(&self, variable: &str, segments: &[Segment]) -> Result<FieldRef, PqlError> {
        if segments[0].name == variable {
            if segments.len() == 1 {
                return Err(PqlError::at(
                    segments[0].span.start,
                    format!("'{variable}' is the whole event; name one of its fields, e.g. {variable}.eventType"),
                ));
            }
            return self.resolve_in(FieldScope::Event, segments, 1);
        }
        if self.resolves(FieldScope::Profile, segments) {
            return Err(profile_field_in_event_filter(segments));
        }
        let path = joined_path(segments);
        if self.resolves(FieldScope::Event, segments) {
            return Err(PqlError::at(
                segments[0].span.start,
                format!("write '{variable}.{path}' to read the field of the event"),
            ));
        }
        let error = self
            .resolve_in(FieldScope::Event, segments, 0)
            .expect_err("checked above");
        Err(PqlError::at(
            error.position,
            format!("{}; event fields are written {variable}.<path>", error.message),
        ))
    }
}

fn joined_path(segments: &[Segment]) -> String {
    segments.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(".")
}

/// Event filters read the event only: a profile condition inside one would have to be joined
/// onto every event, and it means the same written outside.
fn profile_field_in_event_filter(segments: &[Segment]) -> PqlError {
    let path = joined_path(segments);
    PqlError::unsupported(
        segments[0].span.start,
        &format!("{path} (a profile field) inside an xEvent condition"),
        format!("move it outside: {path} ... and (select X from xEvent where ...)"),
    )
}

fn problem_segment(problem: &PathProblem) -> usize {
    match problem {
        PathProblem::Unknown { segment, .. }
        | PathProblem::InsideScalar { segment, .. }
        | PathProblem::InsideArray { segment }
        | PathProblem::InsideMap { segment } => *segment,
    }
}

fn number_value(text: &str, at: Position, negative: bool) -> Result<LiteralValue, PqlError> {
    let signed = if negative { format!("-{text}") } else { text.to_owned() };
    if text.contains('.') {
        return signed
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(LiteralValue::Number)
            .ok_or_else(|| PqlError::at(at, format!("{signed} is not a number PQL can hold")));
    }
    signed
        .parse::<i64>()
        .map(LiteralValue::Integer)
        .map_err(|_| PqlError::at(at, format!("{signed} is too large for an integer")))
}

fn date_from_text(text: &str, at: Position) -> Result<LiteralValue, PqlError> {
    if let Some(days) = parse_date(text) {
        let epoch = jiff::civil::date(1970, 1, 1);
        return epoch
            .checked_add(jiff::Span::new().days(i64::from(days)))
            .map(LiteralValue::Date)
            .map_err(|_| PqlError::at(at, format!("\"{text}\" is out of range")));
    }
    parse_date_time(text)
        .and_then(|micros| Timestamp::from_microsecond(micros).ok())
        .map(LiteralValue::DateTime)
        .ok_or_else(|| {
            PqlError::at(
                at,
                format!(
                    "\"{text}\" is not a date (\"2020-03-14\") or an RFC 3339 date-time (\"2020-03-14T10:00:00Z\")"
                ),
            )
        })
}

// ---- types ----------------------------------------------------------------------------------

/// What a literal is, for messages.
fn literal_type(value: &LiteralValue) -> &'static str {
    match value {
        LiteralValue::String(_) => "string",
        LiteralValue::Integer(_) => "integer",
        LiteralValue::Number(_) => "number",
        LiteralValue::Boolean(_) => "boolean",
        LiteralValue::Date(_) => "date",
        LiteralValue::DateTime(_) => "date-time",
    }
}

/// How to write a value for a field of type `ty`.
fn value_example(ty: FieldType) -> &'static str {
    match ty {
        FieldType::String => "a string in double quotes, e.g. \"US\"",
        FieldType::Integer | FieldType::Number => "a number, e.g. 42 or 3.5",
        FieldType::Boolean => "true or false",
        FieldType::Date => "a date, e.g. date(2020, 3, 14)",
        FieldType::DateTime => "date(\"2020-03-14T10:00:00Z\") or date(2020, 3, 14)",
        FieldType::Object | FieldType::Array | FieldType::Map => "nothing: test it with isNull() / isNotNull()",
    }
}

fn literal_fits(ty: FieldType, value: &LiteralValue) -> bool {
    match value {
        LiteralValue::String(_) => ty == FieldType::String,
        LiteralValue::Integer(_) | LiteralValue::Number(_) => ty.is_numeric(),
        LiteralValue::Boolean(_) => ty == FieldType::Boolean,
        LiteralValue::Date(_) => ty.is_temporal(),
        LiteralValue::DateTime(_) => ty == FieldType::DateTime,
    }
}

fn require_scalar(field: &FieldRef) -> Result<(), PqlError> {
    if field.ty.is_scalar() {
        return Ok(());
    }
    Err(PqlError::at(
        field.span.start,
        format!(
            "'{}' is {} and cannot be compared as a value; compare one of its fields, or test it with isNull() / isNotNull()",
            field.path,
            with_article(field.ty.as_str())
        ),
    ))
}

fn require_orderable(field: &FieldRef, op: CompareOp) -> Result<(), PqlError> {
    if op.is_ordering() && field.ty == FieldType::Boolean {
        return Err(PqlError::at(
            field.span.start,
            format!(
                "'{}' is a boolean: compare it with = or !=, not '{}'",
                field.path,
                op.as_str()
            ),
        ));
    }
    Ok(())
}

fn check_value_fits(field: &FieldRef, op: CompareOp, literal: &Literal) -> Result<(), PqlError> {
    require_scalar(field)?;
    require_orderable(field, op)?;
    if literal_fits(field.ty, &literal.value) {
        return Ok(());
    }
    Err(PqlError::at(
        literal.span.start,
        format!(
            "'{}' is {} but this value is {}; write {}",
            field.path,
            with_article(field.ty.as_str()),
            with_article(literal_type(&literal.value)),
            value_example(field.ty)
        ),
    ))
}

fn check_comparable(left: &FieldRef, op: CompareOp, right: &Operand) -> Result<(), PqlError> {
    let other = match right {
        Operand::Value(literal) => return check_value_fits(left, op, literal),
        Operand::Field(other) => other,
    };
    require_scalar(left)?;
    require_scalar(other)?;
    require_orderable(left, op)?;
    let compatible = left.ty == other.ty
        || (left.ty.is_numeric() && other.ty.is_numeric())
        || (left.ty.is_temporal() && other.ty.is_temporal());
    if compatible {
        return Ok(());
    }
    Err(PqlError::at(
        other.span.start,
        format!(
            "'{}' is {} and '{}' is {}; they cannot be compared",
            left.path,
            with_article(left.ty.as_str()),
            other.path,
            with_article(other.ty.as_str())
        ),
    ))
}

// ---- occurs -----------------------------------------------------------------------------

impl Parser<'_> {
    fn parse_occurs(&mut self, field: FieldRef) -> Result<Expr, PqlError> {
        let keyword = self.advance().span;
        if !field.ty.is_temporal() {
            return Err(PqlError::at(
                keyword.start,
                format!(
                    "occurs applies to dates and date-times, and '{}' is {}",
                    field.path,
                    with_article(field.ty.as_str())
                ),
            ));
        }
        let window = self.parse_window()?;
        let end = self.tokens[self.index - 1].span;
        let span = field.span.to(end);
        Ok(Expr::Occurs { field, window, span })
    }

    fn parse_window(&mut self) -> Result<TimeWindow, PqlError> {
        if let Some(op) = self.compare_op() {
            self.advance();
            return self.parse_distance(op);
        }
        let token = self.peek().clone();
        let word = match &token.kind {
            TokenKind::Ident(word) => word.clone(),
            TokenKind::Number(_) => {
                return Err(PqlError::at(
                    token.span.start,
                    "say how the distance compares, e.g. occurs <= 7 days before now",
                ));
            }
            _ => return Err(self.unexpected(WINDOW_FORMS)),
        };
        match word.as_str() {
            "before" | "after" => {
                self.advance();
                let anchor = self.parse_anchor()?;
                Ok(if word == "before" {
                    TimeWindow::Before(anchor)
                } else {
                    TimeWindow::After(anchor)
                })
            }
            "between" => self.parse_between(),
            "on" => {
                self.advance();
                self.parse_day()
            }
            "today" | "yesterday" | "tomorrow" | "date" => self.parse_day(),
            "this" | "last" | "next" => self.parse_period(&word),
            "now" => Err(PqlError::at(
                token.span.start,
                "'occurs now' names no window; write occurs before now, occurs after now or occurs <= N days before now",
            )),
            _ => Err(self.unexpected(WINDOW_FORMS)),
        }
    }

    /// `OP N UNIT before|after|from ANCHOR`, after the operator.
    fn parse_distance(&mut self, op: CompareOp) -> Result<TimeWindow, PqlError> {
        let token = self.peek().clone();
        let amount = match &token.kind {
            TokenKind::Number(text) if !text.contains('.') => text.parse::<u32>().ok(),
            _ => None,
        }
        .ok_or_else(|| {
            PqlError::at(
                token.span.start,
                format!("expected a whole number of time units, found {}", token.describe()),
            )
        })?;
        self.advance();
        let unit = self.parse_unit()?;
        let direction = match self.peek().kind.clone() {
            TokenKind::Ident(word) if word == "before" => TimeDirection::Before,
            TokenKind::Ident(word) if word == "after" || word == "from" => TimeDirection::After,
            _ => return Err(self.unexpected("before, after or from, e.g. occurs <= 7 days before now")),
        };
        self.advance();
        let anchor = self.parse_anchor()?;
        Ok(TimeWindow::Distance {
            op,
            amount,
            unit,
            direction,
            anchor,
        })
    }

    fn parse_unit(&mut self) -> Result<TimeUnit, PqlError> {
        let unit = match &self.peek().kind {
            TokenKind::Ident(word) => TimeUnit::from_word(word),
            _ => None,
        };
        let unit = unit.ok_or_else(|| {
            self.unexpected("a time unit: milliseconds, seconds, minutes, hours, days, weeks, months, years, decades, centuries or millennia")
        })?;
        self.advance();
        Ok(unit)
    }

    fn parse_between(&mut self) -> Result<TimeWindow, PqlError> {
        self.advance();
        let (start, start_span) = self.parse_literal_anchor()?;
        self.expect_word(
            "and",
            "'and' between the two ends: occurs between date(...) and date(...)",
        )?;
        let (end, _) = self.parse_literal_anchor()?;
        if anchor_instant(start, false) > anchor_instant(end, true) {
            return Err(PqlError::at(
                start_span.start,
                "this window is empty: its start is after its end; put the earlier time first",
            ));
        }
        Ok(TimeWindow::Between { start, end })
    }

    /// A date or date-time literal, for `between`.
    fn parse_literal_anchor(&mut self) -> Result<(TimeAnchor, Span), PqlError> {
        if !self.at_word("date") {
            return Err(self.unexpected("a date: date(2020, 3, 14) or date(\"2020-03-14T10:00:00Z\")"));
        }
        let literal = self.parse_date_literal()?;
        Ok((literal_anchor(&literal.value), literal.span))
    }

    fn parse_anchor(&mut self) -> Result<TimeAnchor, PqlError> {
        let token = self.peek().clone();
        let anchor = match &token.kind {
            TokenKind::Ident(word) if word == "now" => TimeAnchor::Now,
            TokenKind::Ident(word) if word == "today" => TimeAnchor::Today,
            TokenKind::Ident(word) if word == "yesterday" => TimeAnchor::Yesterday,
            TokenKind::Ident(word) if word == "tomorrow" => TimeAnchor::Tomorrow,
            TokenKind::Ident(word) if word == "date" => return self.parse_literal_anchor().map(|(anchor, _)| anchor),
            TokenKind::Ident(word) => {
                return Err(PqlError::unsupported(
                    token.span.start,
                    &format!("occurs relative to {word}"),
                    "measure from now, today, yesterday, tomorrow or a date(...)",
                ));
            }
            _ => return Err(self.unexpected("now, today, yesterday, tomorrow or date(...)")),
        };
        self.advance();
        Ok(anchor)
    }

    /// `today`, `yesterday`, `tomorrow` or a date: the whole day.
    fn parse_day(&mut self) -> Result<TimeWindow, PqlError> {
        let at = self.peek().span.start;
        let anchor = self.parse_anchor()?;
        if !anchor.is_day() {
            return Err(PqlError::at(
                at,
                "occurs on names a day: today, yesterday, tomorrow or date(year, month, day)",
            ));
        }
        Ok(TimeWindow::On(anchor))
    }

    fn parse_period(&mut self, word: &str) -> Result<TimeWindow, PqlError> {
        self.advance();
        let which = match word {
            "this" => RelativePeriod::This,
            "last" => RelativePeriod::Last,
            _ => RelativePeriod::Next,
        };
        let at = self.peek().span.start;
        let unit = self.parse_unit()?;
        if !unit.is_calendar_period() {
            return Err(PqlError::unsupported(
                at,
                &format!("{word} {}", self.tokens[self.index - 1].describe().trim_matches('\'')),
                format!("{word} takes day, week, month or year; for other units write occurs <= N <unit> before now"),
            ));
        }
        Ok(TimeWindow::Period { which, unit })
    }
}

const WINDOW_FORMS: &str = "a time window after occurs: before/after now, <= 7 days before now, \
     between date(...) and date(...), on date(...), today, last month";

fn literal_anchor(value: &LiteralValue) -> TimeAnchor {
    match value {
        LiteralValue::Date(date) => TimeAnchor::Date(*date),
        LiteralValue::DateTime(instant) => TimeAnchor::DateTime(*instant),
        _ => unreachable!("date(...) yields dates and date-times only"),
    }
}

/// The instant a literal anchor stands for, to order `between` ends: a date starts its day, and
/// as the end of a window (`is_end`) it stands for the start of the next day.
fn anchor_instant(anchor: TimeAnchor, is_end: bool) -> Option<Timestamp> {
    match anchor {
        TimeAnchor::Date(date) => {
            let day = if is_end { date.tomorrow().ok()? } else { date };
            day.to_zoned(jiff::tz::TimeZone::UTC).ok().map(|z| z.timestamp())
        }
        TimeAnchor::DateTime(instant) => Some(instant),
        _ => None,
    }
}
