//! The typed tree a PQL text parses into.
//!
//! Every node keeps the [`Span`] it was read from. Every field reference is already resolved
//! against the union schema: it knows whether it reads the profile or the event being filtered,
//! and its XDM type, so whoever compiles the tree (segment evaluation) never re-interprets text.
//! `and` and `or` are n-ary ([`Expr::And`], [`Expr::Or`]) so that long chains stay flat.

use jiff::Timestamp;
use jiff::civil::Date;

use super::span::Span;

/// A condition over one profile (and its events).
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `a and b and c`: every operand holds. Always two operands or more.
    And { operands: Vec<Expr>, span: Span },
    /// `a or b or c`: some operand holds. Always two operands or more.
    Or { operands: Vec<Expr>, span: Span },
    /// `not (a)`, `not a`, `!(a)`.
    Not { operand: Box<Expr>, span: Span },
    /// `field = value`, `value < field`, `field = other.field`; never two literals. The operand
    /// types are compatible (see the module docs of [`super`]).
    Compare {
        left: Operand,
        op: CompareOp,
        right: Operand,
        span: Span,
    },
    /// `field in [v, ...]` and (`negated`) `field notIn [v, ...]`; at least one value, each of the
    /// field's type.
    In {
        field: FieldRef,
        values: Vec<Literal>,
        negated: bool,
        span: Span,
    },
    /// `field.isNull()` and (`negated`) `field.isNotNull()`.
    IsNull { field: FieldRef, negated: bool, span: Span },
    /// A string field tested against a pattern: `startsWith`, `endsWith`, `contains`, `equals`
    /// (each with an optional case-sensitivity flag), `like` and `matches`.
    Text {
        field: FieldRef,
        function: TextFunction,
        pattern: String,
        case_sensitive: bool,
        span: Span,
    },
    /// `field occurs ...`: a date or date-time field inside a time window.
    Occurs {
        field: FieldRef,
        window: TimeWindow,
        span: Span,
    },
    /// The profile has at least one event that passes the filter:
    /// `select X from xEvent where ...`, `exists X from xEvent where ...`, `xEvent[...]`.
    EventExists { events: EventSelection, span: Span },
    /// The number of the profile's events that pass the filter, compared with a count:
    /// `xEvent[...].count() > 3`.
    EventCount {
        events: EventSelection,
        op: CompareOp,
        count: u64,
        span: Span,
    },
    /// `inSegment("id")`: the profile is a current member (`realized` or `existing`) of the
    /// audience `id`, in any namespace of its `segmentMembership`.
    InSegment { segment_id: String, span: Span },
}

impl Expr {
    pub fn span(&self) -> Span {
        match self {
            Self::And { span, .. }
            | Self::Or { span, .. }
            | Self::Not { span, .. }
            | Self::Compare { span, .. }
            | Self::In { span, .. }
            | Self::IsNull { span, .. }
            | Self::Text { span, .. }
            | Self::Occurs { span, .. }
            | Self::EventExists { span, .. }
            | Self::EventCount { span, .. }
            | Self::InSegment { span, .. } => *span,
        }
    }

    /// The direct sub-conditions, event filters included.
    pub fn children(&self) -> Vec<&Expr> {
        match self {
            Self::And { operands, .. } | Self::Or { operands, .. } => operands.iter().collect(),
            Self::Not { operand, .. } => vec![operand],
            Self::EventExists { events, .. } | Self::EventCount { events, .. } => {
                events.filter.as_deref().into_iter().collect()
            }
            _ => Vec::new(),
        }
    }

    /// The audiences `inSegment` names, each once, in the order they are written: a definition
    /// depends on them (they must be evaluated first).
    pub fn segment_dependencies(&self) -> Vec<String> {
        let mut found = Vec::new();
        let mut pending = vec![self];
        while let Some(expr) = pending.pop() {
            if let Self::InSegment { segment_id, .. } = expr
                && !found.contains(segment_id)
            {
                found.push(segment_id.clone());
            }
            // Reversed so that the stack pops children in text order.
            pending.extend(expr.children().into_iter().rev());
        }
        found
    }
}

/// The events an event condition looks at: all of the profile's events, or those that pass
/// `filter` (whose field references all have [`FieldScope::Event`]).
#[derive(Debug, Clone, PartialEq)]
pub struct EventSelection {
    pub filter: Option<Box<Expr>>,
    pub span: Span,
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Field(FieldRef),
    Value(Literal),
}

impl Operand {
    pub fn span(&self) -> Span {
        match self {
            Self::Field(field) => field.span,
            Self::Value(literal) => literal.span,
        }
    }
}

/// Whose field a reference reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldScope {
    /// The merged profile (paths of the profile union schema).
    Profile,
    /// The event an event filter is looking at (paths of the experience-event union schema).
    Event,
}

/// The type of a referenced field, from the union schema. Objects, arrays and maps appear only
/// under `isNull` / `isNotNull`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    String,
    Integer,
    Number,
    Boolean,
    DateTime,
    Date,
    Object,
    Array,
    Map,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::DateTime => "date-time",
            Self::Date => "date",
            Self::Object => "object",
            Self::Array => "array",
            Self::Map => "map",
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, Self::Integer | Self::Number)
    }

    pub fn is_temporal(self) -> bool {
        matches!(self, Self::Date | Self::DateTime)
    }

    /// Whether values of this type are single values that can be compared.
    pub fn is_scalar(self) -> bool {
        !matches!(self, Self::Object | Self::Array | Self::Map)
    }
}

/// A field path, resolved: `path` is the dot path inside its scope (for `X.eventType` in
/// `select X from xEvent ...` it is `eventType`).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldRef {
    pub scope: FieldScope,
    pub path: String,
    pub ty: FieldType,
    pub span: Span,
}

/// A literal value with where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Literal {
    pub value: LiteralValue,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LiteralValue {
    String(String),
    Integer(i64),
    Number(f64),
    Boolean(bool),
    /// `date(2020, 3, 14)`, `date("2020-03-14")`.
    Date(Date),
    /// `date("2020-03-14T10:00:00Z")`: an instant (any offset, kept as UTC).
    DateTime(Timestamp),
}

/// `=`, `!=`, `<`, `<=`, `>`, `>=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl CompareOp {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::NotEq => "!=",
            Self::Lt => "<",
            Self::LtEq => "<=",
            Self::Gt => ">",
            Self::GtEq => ">=",
        }
    }

    /// The operator with its operands swapped: `3 < x` is `x > 3`.
    pub fn flipped(self) -> Self {
        match self {
            Self::Lt => Self::Gt,
            Self::LtEq => Self::GtEq,
            Self::Gt => Self::Lt,
            Self::GtEq => Self::LtEq,
            same => same,
        }
    }

    /// Whether the operator orders values (`<`, `<=`, `>`, `>=`) rather than only equating them.
    pub fn is_ordering(self) -> bool {
        !matches!(self, Self::Eq | Self::NotEq)
    }
}

/// The string tests of PQL's string functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextFunction {
    StartsWith,
    EndsWith,
    Contains,
    /// `field.equals("x", false)`: equality, optionally ignoring case (what AEP's segment builder
    /// writes for "equals").
    Equals,
    /// `field like "%x_"`: `%` is any run of characters, `_` exactly one; there is no escape
    /// character.
    Like,
    /// `field.matches("regex")`: the regular expression matches somewhere in the value (anchor it
    /// with `^`/`$`); the syntax is checked at parse time.
    Matches,
}

impl TextFunction {
    pub fn name(self) -> &'static str {
        match self {
            Self::StartsWith => "startsWith",
            Self::EndsWith => "endsWith",
            Self::Contains => "contains",
            Self::Equals => "equals",
            Self::Like => "like",
            Self::Matches => "matches",
        }
    }
}

/// The time window of an `occurs` condition. All times are UTC; a date field counts as the
/// instant its day starts.
#[derive(Debug, Clone, PartialEq)]
pub enum TimeWindow {
    /// `occurs before A`: T < A.
    Before(TimeAnchor),
    /// `occurs after A`: T > A.
    After(TimeAnchor),
    /// `occurs on A` / `occurs A` with a day anchor (`today`, `yesterday`, `tomorrow`, a date):
    /// A <= T < A + 1 day.
    On(TimeAnchor),
    /// `occurs between S and E` with date or date-time literals, both ends inclusive; a date `E`
    /// includes its whole day.
    Between { start: TimeAnchor, end: TimeAnchor },
    /// `occurs OP N UNIT before A` (or `after A`; `from` reads as `after`). With B = A − N units
    /// (before) or A + N units (after), calendar arithmetic for months and years, and T on the
    /// `direction` side of A: `<=` means T is between B and A, `<` the same without B, `>=` T is
    /// B or beyond, `>` beyond B, `=` T is at most one unit beyond B (B inclusive, B ∓ 1 unit
    /// exclusive), `!=` any other T on that side of A.
    Distance {
        op: CompareOp,
        amount: u32,
        unit: TimeUnit,
        direction: TimeDirection,
        anchor: TimeAnchor,
    },
    /// `occurs this|last|next UNIT`: the calendar day, week (Monday to Sunday), month or year
    /// that contains now, the one before it, or the one after it.
    Period { which: RelativePeriod, unit: TimeUnit },
}

/// An instant an `occurs` window is measured from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeAnchor {
    /// The evaluation time.
    Now,
    /// The start of the evaluation day (UTC), as AEP defines `today`.
    Today,
    /// The start of the day before the evaluation day.
    Yesterday,
    /// The start of the day after the evaluation day.
    Tomorrow,
    /// The start of that day (UTC).
    Date(Date),
    DateTime(Timestamp),
}

impl TimeAnchor {
    /// Whether the anchor names the start of a day (so `occurs on` it means "during that day").
    pub fn is_day(self) -> bool {
        !matches!(self, Self::Now | Self::DateTime(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeDirection {
    Before,
    After,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelativePeriod {
    This,
    Last,
    Next,
}

/// PQL's time units; a decade is 10 years, a century 100, a millennium 1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeUnit {
    Millisecond,
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
    Decade,
    Century,
    Millennium,
}

impl TimeUnit {
    /// The unit a word names, singular or plural (`day`, `days`, `century`, `centuries`).
    pub fn from_word(word: &str) -> Option<Self> {
        Some(match word {
            "millisecond" | "milliseconds" => Self::Millisecond,
            "second" | "seconds" => Self::Second,
            "minute" | "minutes" => Self::Minute,
            "hour" | "hours" => Self::Hour,
            "day" | "days" => Self::Day,
            "week" | "weeks" => Self::Week,
            "month" | "months" => Self::Month,
            "year" | "years" => Self::Year,
            "decade" | "decades" => Self::Decade,
            "century" | "centuries" => Self::Century,
            "millennium" | "millennia" => Self::Millennium,
            _ => return None,
        })
    }

    /// Whether `this`/`last`/`next` supports the unit as a calendar period.
    pub fn is_calendar_period(self) -> bool {
        matches!(self, Self::Day | Self::Week | Self::Month | Self::Year)
    }
}
