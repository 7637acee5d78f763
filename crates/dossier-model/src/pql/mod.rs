//! Profile Query Language (PQL): the supported subset, parsed into a typed tree.
//!
//! A segment definition's `expression.value` is PQL text (`pql/text`). [`parse`] reads it into
//! an [`Expr`] whose nodes carry their line and column, and whose field paths are checked
//! against the sandbox's union schemas. Anything outside the subset is refused with a
//! [`PqlError`] that points at the construct and names it; nothing is parsed into something that
//! would evaluate differently from what AEP documents.
//!
//! The subset (docs/segments.md has examples of each):
//! - comparisons `=`, `!=`, `<`, `<=`, `>`, `>=` between a field and a value or two fields of
//!   compatible types (strings; numbers; booleans with `=`/`!=`; dates and date-times);
//! - `and`, `or`, `not` / `!`, parentheses;
//! - `field in [...]`, `field notIn [...]`;
//! - `field.isNull()`, `field.isNotNull()` (also on objects, arrays and maps);
//! - on strings `startsWith`, `endsWith`, `contains`, `equals` (optional case flag), `like`,
//!   `matches`;
//! - `field occurs ...`: `before`/`after` an anchor, `OP N unit before|after anchor`, `between`
//!   two date literals, `on` a day, `this|last|next day|week|month|year`; anchors `now`, `today`,
//!   `yesterday`, `tomorrow`, `date(...)`;
//! - events: `select X from xEvent where ...`, `exists X from xEvent where ...`, `xEvent[...]`
//!   (the profile has such an event) and `xEvent[...].count() OP N`;
//! - `inSegment("id")`;
//! - literals: `"strings"`, integers, decimals, `true`, `false`, `date(y, m, d)`,
//!   `date("2020-03-14")`, `date("2020-03-14T10:00:00Z")`.
//!
//! How evaluation reads the tree (so that it can be compiled, not interpreted): a condition on a
//! missing value is false (so `x notIn [...]` is false where `x` is missing, while
//! `not (x in [...])` is true: AEP documents the same difference); `not` negates that two-valued
//! result. Profile conditions are column expressions over built profiles. Event conditions
//! become one aggregation per profile over its events: [`Expr::EventExists`] is "the number of
//! events passing the filter is above 0", [`Expr::EventCount`] compares that number. The times
//! of `occurs` are defined on [`TimeWindow`], in UTC.

mod ast;
mod error;
mod fields;
mod lexer;
mod parser;
mod span;

pub use ast::{
    CompareOp, EventSelection, Expr, FieldRef, FieldScope, FieldType, Literal, LiteralValue, Operand, RelativePeriod,
    TextFunction, TimeAnchor, TimeDirection, TimeUnit, TimeWindow,
};
pub use error::PqlError;
pub use fields::PqlSchemas;
pub use parser::{MAX_DEPTH, parse};
pub use span::{Position, Span};

#[cfg(test)]
mod tests;
