//! Each construct of the subset into its tree, each refusal at its place, and a property test
//! that no input makes the parser panic.

use proptest::prelude::*;

use super::*;
use crate::xdm::{XdmField, XdmSchema, XdmType};

fn profile_schema() -> XdmSchema {
    let mut profile = XdmSchema::builtin_profile();
    profile.fields.push(XdmField::new(
        "workAddress",
        XdmType::Object(vec![
            XdmField::new("stateProvince", XdmType::String),
            XdmField::new("country", XdmType::String),
        ]),
    ));
    profile.fields.push(XdmField::new(
        "loyalty",
        XdmType::Object(vec![
            XdmField::new("points", XdmType::Integer),
            XdmField::new("score", XdmType::Number),
            XdmField::new("tier", XdmType::String),
            XdmField::new("member", XdmType::Boolean),
            XdmField::new("joined", XdmType::DateTime),
            XdmField::new("tags", XdmType::Array(Box::new(XdmType::String))),
        ]),
    ));
    profile
}

fn with_schemas<T>(use_them: impl FnOnce(PqlSchemas<'_>) -> T) -> T {
    let profile = profile_schema();
    let event = XdmSchema::builtin_experience_event();
    use_them(PqlSchemas {
        profile: &profile,
        event: &event,
    })
}

fn parse_ok(text: &str) -> Expr {
    with_schemas(|schemas| parse(text, schemas)).unwrap_or_else(|error| panic!("{text}: {error}"))
}

fn parse_err(text: &str) -> PqlError {
    with_schemas(|schemas| parse(text, schemas)).expect_err(text)
}

// ---- a compact rendering of trees, spans left out, to state expectations in one line ----------

fn field(field: &FieldRef) -> String {
    let scope = match field.scope {
        FieldScope::Profile => "p",
        FieldScope::Event => "e",
    };
    format!("{scope}.{}:{}", field.path, field.ty.as_str())
}

fn literal(literal: &Literal) -> String {
    match &literal.value {
        LiteralValue::String(text) => format!("{text:?}"),
        LiteralValue::Integer(n) => n.to_string(),
        LiteralValue::Number(n) => format!("{n:?}"),
        LiteralValue::Boolean(b) => b.to_string(),
        LiteralValue::Date(date) => format!("date({date})"),
        LiteralValue::DateTime(instant) => format!("ts({instant})"),
    }
}

fn operand(operand: &Operand) -> String {
    match operand {
        Operand::Field(f) => field(f),
        Operand::Value(v) => literal(v),
    }
}

fn selection(events: &EventSelection) -> String {
    match &events.filter {
        Some(filter) => format!("xEvent[{}]", render(filter)),
        None => "xEvent".to_owned(),
    }
}

fn all(operands: &[Expr]) -> String {
    operands.iter().map(render).collect::<Vec<_>>().join(" ")
}

fn render(expr: &Expr) -> String {
    match expr {
        Expr::And { operands, .. } => format!("(and {})", all(operands)),
        Expr::Or { operands, .. } => format!("(or {})", all(operands)),
        Expr::Not { operand, .. } => format!("(not {})", render(operand)),
        Expr::Compare { left, op, right, .. } => {
            format!("({} {} {})", op.as_str(), operand(left), operand(right))
        }
        Expr::In {
            field: f,
            values,
            negated,
            ..
        } => {
            let values: Vec<String> = values.iter().map(literal).collect();
            let name = if *negated { "notIn" } else { "in" };
            format!("({name} {} [{}])", field(f), values.join(", "))
        }
        Expr::IsNull { field: f, negated, .. } => {
            format!("({} {})", if *negated { "isNotNull" } else { "isNull" }, field(f))
        }
        Expr::Text {
            field: f,
            function,
            pattern,
            case_sensitive,
            ..
        } => {
            let case = if *case_sensitive { "" } else { " ignoring-case" };
            format!("({} {} {pattern:?}{case})", function.name(), field(f))
        }
        Expr::Occurs { field: f, window, .. } => format!("(occurs {} {window:?})", field(f)),
        Expr::EventExists { events, .. } => format!("(exists {})", selection(events)),
        Expr::EventCount { events, op, count, .. } => {
            format!("(count {} {} {count})", selection(events), op.as_str())
        }
        Expr::InSegment { segment_id, .. } => format!("(inSegment {segment_id:?})"),
    }
}

fn assert_parses(cases: &[(&str, &str)]) {
    for (text, expected) in cases {
        assert_eq!(render(&parse_ok(text)), *expected, "{text}");
    }
}

// ---- the constructs ---------------------------------------------------------------------------

#[test]
fn comparisons_of_every_operator_and_type() {
    assert_parses(&[
        (
            "homeAddress.countryCode = \"CA\"",
            "(= p.homeAddress.countryCode:string \"CA\")",
        ),
        ("loyalty.points != 3", "(!= p.loyalty.points:integer 3)"),
        ("loyalty.points < -2", "(< p.loyalty.points:integer -2)"),
        ("loyalty.score <= 2.5", "(<= p.loyalty.score:number 2.5)"),
        ("loyalty.score > 7", "(> p.loyalty.score:number 7)"),
        ("loyalty.points >= 1.5", "(>= p.loyalty.points:integer 1.5)"),
        ("loyalty.member = true", "(= p.loyalty.member:boolean true)"),
        (
            "person.birthDate < date(2000, 1, 31)",
            "(< p.person.birthDate:date date(2000-01-31))",
        ),
        (
            "person.birthDate >= date(\"1990-06-01\")",
            "(>= p.person.birthDate:date date(1990-06-01))",
        ),
        (
            "loyalty.joined > date(\"2024-01-01T10:00:00+02:00\")",
            "(> p.loyalty.joined:date-time ts(2024-01-01T08:00:00Z))",
        ),
        (
            "loyalty.joined > date(2024, 1, 1)",
            "(> p.loyalty.joined:date-time date(2024-01-01))",
        ),
        (
            "homeAddress.stateProvince = workAddress.stateProvince",
            "(= p.homeAddress.stateProvince:string p.workAddress.stateProvince:string)",
        ),
        ("3 < loyalty.points", "(> p.loyalty.points:integer 3)"),
        ("\"gold\" = loyalty.tier", "(= p.loyalty.tier:string \"gold\")"),
    ]);
}

#[test]
fn boolean_structure_is_flat_and_binds_as_usual() {
    assert_parses(&[
        (
            "loyalty.points > 1 and loyalty.points < 9 and loyalty.member = true",
            "(and (> p.loyalty.points:integer 1) (< p.loyalty.points:integer 9) (= p.loyalty.member:boolean true))",
        ),
        (
            "loyalty.tier = \"a\" or loyalty.tier = \"b\" and loyalty.points > 1",
            "(or (= p.loyalty.tier:string \"a\") (and (= p.loyalty.tier:string \"b\") (> p.loyalty.points:integer 1)))",
        ),
        (
            "(loyalty.tier = \"a\" OR loyalty.tier = \"b\") AND NOT loyalty.points > 1",
            "(and (or (= p.loyalty.tier:string \"a\") (= p.loyalty.tier:string \"b\")) (not (> p.loyalty.points:integer 1)))",
        ),
        (
            "not (homeAddress.countryCode = \"CA\")",
            "(not (= p.homeAddress.countryCode:string \"CA\"))",
        ),
        ("!(loyalty.member = false)", "(not (= p.loyalty.member:boolean false))"),
    ]);
}

#[test]
fn lists_and_null_checks() {
    assert_parses(&[
        (
            "homeAddress.countryCode in [\"US\", \"CA\"]",
            "(in p.homeAddress.countryCode:string [\"US\", \"CA\"])",
        ),
        (
            "loyalty.points notIn [3, 6, 9]",
            "(notIn p.loyalty.points:integer [3, 6, 9])",
        ),
        ("homeAddress.isNull()", "(isNull p.homeAddress:object)"),
        ("loyalty.tags.isNotNull()", "(isNotNull p.loyalty.tags:array)"),
        ("identityMap.isNotNull()", "(isNotNull p.identityMap:map)"),
    ]);
}

#[test]
fn string_functions() {
    assert_parses(&[
        (
            "person.name.firstName.startsWith(\"Joe\")",
            "(startsWith p.person.name.firstName:string \"Joe\")",
        ),
        (
            "personalEmail.address.endsWith(\".com\", false)",
            "(endsWith p.personalEmail.address:string \".com\" ignoring-case)",
        ),
        (
            "personalEmail.address.contains(\"2010@gm\", true)",
            "(contains p.personalEmail.address:string \"2010@gm\")",
        ),
        (
            "loyalty.tier.equals(\"Gold\", false)",
            "(equals p.loyalty.tier:string \"Gold\" ignoring-case)",
        ),
        (
            "homeAddress.city like \"%es%\"",
            "(like p.homeAddress.city:string \"%es%\")",
        ),
        (
            "person.name.firstName.matches(\"(?i)^John\\d*\")",
            "(matches p.person.name.firstName:string \"(?i)^John\\\\d*\")",
        ),
    ]);
}

#[test]
fn occurs_windows() {
    assert_parses(&[
        (
            "loyalty.joined occurs before now",
            "(occurs p.loyalty.joined:date-time Before(Now))",
        ),
        (
            "loyalty.joined occurs after today",
            "(occurs p.loyalty.joined:date-time After(Today))",
        ),
        (
            "person.birthDate occurs on date(2019, 12, 31)",
            "(occurs p.person.birthDate:date On(Date(2019-12-31)))",
        ),
        (
            "loyalty.joined occurs yesterday",
            "(occurs p.loyalty.joined:date-time On(Yesterday))",
        ),
        (
            "loyalty.joined occurs <= 7 days before now",
            "(occurs p.loyalty.joined:date-time Distance { op: LtEq, amount: 7, unit: Day, direction: Before, anchor: Now })",
        ),
        (
            "person.birthDate occurs = 3 days before today",
            "(occurs p.person.birthDate:date Distance { op: Eq, amount: 3, unit: Day, direction: Before, anchor: Today })",
        ),
        (
            "loyalty.joined occurs > 2 centuries from tomorrow",
            "(occurs p.loyalty.joined:date-time Distance { op: Gt, amount: 2, unit: Century, direction: After, anchor: Tomorrow })",
        ),
        (
            "loyalty.joined occurs between date(2015, 1, 8) and date(2017, 7, 1)",
            "(occurs p.loyalty.joined:date-time Between { start: Date(2015-01-08), end: Date(2017-07-01) })",
        ),
        (
            "loyalty.joined occurs last month",
            "(occurs p.loyalty.joined:date-time Period { which: Last, unit: Month })",
        ),
        (
            "loyalty.joined occurs this week",
            "(occurs p.loyalty.joined:date-time Period { which: This, unit: Week })",
        ),
    ]);
}

#[test]
fn event_conditions() {
    assert_parses(&[
        (
            "select X from xEvent where X.eventType = \"commerce.purchases\"",
            "(exists xEvent[(= e.eventType:string \"commerce.purchases\")])",
        ),
        (
            "select var1 from xEvent where var1.web.webPageDetails.name = \"home\" and var1.timestamp occurs <= 3 days before now",
            "(exists xEvent[(and (= e.web.webPageDetails.name:string \"home\") (occurs e.timestamp:date-time Distance { op: LtEq, amount: 3, unit: Day, direction: Before, anchor: Now }))])",
        ),
        ("select X from xEvent", "(exists xEvent)"),
        (
            "exists E from xEvent where E.commerce.order.priceTotal > 50",
            "(exists xEvent[(> e.commerce.order.priceTotal:number 50)])",
        ),
        (
            "exists E from xEvent: E.eventType = \"x\"",
            "(exists xEvent[(= e.eventType:string \"x\")])",
        ),
        (
            "xEvent[eventType = \"commerce.productViews\"]",
            "(exists xEvent[(= e.eventType:string \"commerce.productViews\")])",
        ),
        (
            "xEvent[eventType.equals(\"commerce.purchases\", false)].count() >= 3",
            "(count xEvent[(equals e.eventType:string \"commerce.purchases\" ignoring-case)] >= 3)",
        ),
        ("xEvent.count() = 0", "(count xEvent = 0)"),
        (
            "2 < xEvent[timestamp occurs last week].count()",
            "(count xEvent[(occurs e.timestamp:date-time Period { which: Last, unit: Week })] > 2)",
        ),
        (
            "(select X from xEvent where X.eventType = \"a\").count() > 1 and loyalty.member = true",
            "(and (count xEvent[(= e.eventType:string \"a\")] > 1) (= p.loyalty.member:boolean true))",
        ),
        (
            "homeAddress.countryCode = \"US\" and (select X from xEvent where X.eventType = \"a\")",
            "(and (= p.homeAddress.countryCode:string \"US\") (exists xEvent[(= e.eventType:string \"a\")]))",
        ),
    ]);
}

#[test]
fn in_segment_and_dependencies() {
    let expr =
        parse_ok("inSegment(\"b1\") and (inSegment(\"a2\") or not inSegment(\"b1\")) and xEvent[eventType = \"x\"]");
    assert_eq!(
        render(&expr),
        "(and (inSegment \"b1\") (or (inSegment \"a2\") (not (inSegment \"b1\"))) (exists xEvent[(= e.eventType:string \"x\")]))"
    );
    assert_eq!(expr.segment_dependencies(), ["b1", "a2"]);
    assert!(parse_ok("loyalty.points > 1").segment_dependencies().is_empty());
}

#[test]
fn nodes_keep_their_lines_and_columns() {
    let text = "loyalty.points > 1\n  and select X from xEvent\n    where X.eventType = \"a\"";
    let Expr::And { operands, span } = parse_ok(text) else {
        panic!("an and");
    };
    assert_eq!((span.start, span.end.offset), (Position::START, text.len()));
    let Expr::Compare { left, right, .. } = &operands[0] else {
        panic!("a comparison");
    };
    assert_eq!(left.span().slice(text), "loyalty.points");
    assert_eq!((right.span().start.line, right.span().start.column), (1, 18));
    let Expr::EventExists { events, span } = &operands[1] else {
        panic!("an event condition");
    };
    assert_eq!((span.start.line, span.start.column), (2, 7));
    let filter = events.filter.as_deref().unwrap();
    assert_eq!((filter.span().start.line, filter.span().start.column), (3, 11));
    assert_eq!(filter.span().slice(text), "X.eventType = \"a\"");
}

// ---- refusals -----------------------------------------------------------------------------------

#[test]
fn refusals_point_at_the_construct() {
    let cases: &[(&str, u32, u32, &str)] = &[
        ("", 1, 1, "the expression is empty"),
        (
            "loyalty.points > 3 foo(1)",
            1,
            20,
            "unexpected 'foo' after a complete condition",
        ),
        (
            "loyalty.points > 3 and foo(1)",
            1,
            24,
            "'foo' is not supported; the functions of this subset",
        ),
        (
            "person.nmae.firstName = \"x\"",
            1,
            8,
            "there is no field 'nmae' in 'person' of the profile union schema; its fields are name, birthDate, gender",
        ),
        ("nope = 1", 1, 1, "there is no field 'nope' in the profile union schema"),
        ("identities.id = \"x\"", 1, 12, "'identities' is an array"),
        ("identityMap.Email.isNull()", 1, 13, "'identityMap' is a map"),
        (
            "loyalty.tier = 3",
            1,
            16,
            "'loyalty.tier' is a string but this value is an integer",
        ),
        (
            "loyalty.points = \"3\"",
            1,
            18,
            "'loyalty.points' is an integer but this value is a string",
        ),
        (
            "person.birthDate = date(\"2020-01-01T00:00:00Z\")",
            1,
            20,
            "'person.birthDate' is a date but this value is a date-time",
        ),
        (
            "loyalty.member > true",
            1,
            1,
            "'loyalty.member' is a boolean: compare it with = or !=, not '>'",
        ),
        (
            "person.name = \"x\"",
            1,
            1,
            "'person.name' is an object and cannot be compared",
        ),
        ("loyalty.tier = loyalty.points", 1, 16, "they cannot be compared"),
        ("3 = 4", 1, 1, "both sides of this comparison are values"),
        (
            "loyalty.points.startsWith(\"1\")",
            1,
            16,
            "startsWith applies to strings",
        ),
        (
            "loyalty.tier.doesNotStartWith(\"g\")",
            1,
            14,
            "'doesNotStartWith' is not supported; write not (loyalty.tier.startsWith(\"...\"))",
        ),
        (
            "loyalty.tier.matches(\"(?<=a)b\")",
            1,
            22,
            "this regular expression cannot be used",
        ),
        (
            "loyalty.tier.matches(\"a\", false)",
            1,
            25,
            "matches takes one argument",
        ),
        ("loyalty.tier in []", 1, 18, "the list is empty"),
        (
            "loyalty.tier not in [\"a\"]",
            1,
            14,
            "'not in' is not supported; write notIn",
        ),
        ("loyalty.tier = null", 1, 16, "'null' is not supported"),
        (
            "loyalty.tier.occurs",
            1,
            14,
            "'loyalty.tier' is a string and has no field 'occurs'",
        ),
        (
            "loyalty.tier occurs before now",
            1,
            14,
            "occurs applies to dates and date-times",
        ),
        ("loyalty.joined occurs now", 1, 23, "'occurs now' names no window"),
        (
            "loyalty.joined occurs 3 days before now",
            1,
            23,
            "say how the distance compares",
        ),
        ("loyalty.joined occurs <= 3 fortnights before now", 1, 28, "a time unit"),
        (
            "loyalty.joined occurs <= 3 days before X.timestamp",
            1,
            40,
            "'occurs relative to X' is not supported",
        ),
        ("loyalty.joined occurs last hour", 1, 28, "'last hour' is not supported"),
        ("loyalty.joined occurs on now", 1, 26, "occurs on names a day"),
        (
            "loyalty.joined occurs between date(2020, 2, 1) and date(2020, 1, 1)",
            1,
            31,
            "this window is empty",
        ),
        (
            "loyalty.joined > date(2021, 2, 29)",
            1,
            23,
            "is not a day of the calendar",
        ),
        ("loyalty.joined > date(\"yesterday\")", 1, 23, "is not a date"),
        ("loyalty.joined < now", 1, 18, "'now as a value' is not supported"),
        ("xEvent > 3", 1, 8, "xEvent is a list of events and cannot be compared"),
        ("xEvent[eventType = \"a\"].count() > 1.5", 1, 35, "a whole number"),
        ("xEvent.sum() > 1", 1, 8, "'sum' is not supported"),
        (
            "xEvent[homeAddress.city = \"x\"]",
            1,
            8,
            "'homeAddress.city (a profile field) inside an xEvent condition' is not supported",
        ),
        (
            "select X from xEvent where eventType = \"a\"",
            1,
            28,
            "write 'X.eventType'",
        ),
        (
            "select X from xEvent where homeAddress.city = \"a\"",
            1,
            28,
            "(a profile field) inside an xEvent condition",
        ),
        (
            "select X from xEvent where X.nope = 1",
            1,
            30,
            "there is no field 'nope' in the experience event union schema",
        ),
        ("select X from xEvent where X = 1", 1, 28, "'X' is the whole event"),
        (
            "select X from xEvent where X.productListItems.SKU = \"a\"",
            1,
            47,
            "'productListItems' is an array",
        ),
        (
            "select X from person.orders where X.a = 1",
            1,
            15,
            "'select ... from person' is not supported",
        ),
        (
            "select X from xEvent where X.eventType = \"a\" and inSegment(\"s\")",
            1,
            50,
            "inSegment inside an xEvent condition",
        ),
        (
            "xEvent[xEvent[eventType = \"a\"]]",
            1,
            8,
            "'xEvent' is not supported; an xEvent condition cannot contain another one",
        ),
        (
            "exists E from xEvent where E.eventType = \"a\", I from E.productListItems",
            1,
            45,
            "a second from list",
        ),
        (
            "forall E from xEvent where E.eventType = \"a\"",
            1,
            1,
            "'forall' is not supported",
        ),
        (
            "chain(xEvent, timestamp, [A: WHAT(eventType = \"a\")])",
            1,
            1,
            "'chain' is not supported",
        ),
        ("let S = 1 in S > 2", 1, 1, "'let' is not supported"),
        ("$1.homeAddress.city = \"x\"", 1, 1, "'$1' is not supported"),
        (
            "(Profile) => Profile.homeAddress.city = \"x\"",
            1,
            1,
            "'(Profile) =>' is not supported",
        ),
        ("loyalty.points + 1 > 2", 1, 16, "expected a comparison"),
        ("loyalty.points > 1 +", 1, 20, "unexpected '+'"),
        ("inSegment(\"\")", 1, 11, "the segment id is empty"),
        ("inSegment(\"a\", \"b\")", 1, 14, "inSegment takes one segment id"),
        ("loyalty.member", 1, 15, "expected a comparison"),
        ("(loyalty.points > 1", 1, 20, "')' to close"),
        ("loyalty.points > 1 and", 1, 23, "expected a condition"),
        ("loyalty.points > 99999999999999999999", 1, 18, "too large"),
        (
            "loyalty.tier = \"a\"\n  and\n  loyalty.tier ~ \"b\"",
            3,
            16,
            "'~' has no meaning",
        ),
    ];
    // Every mismatch is reported at once, so one run shows the whole table's state.
    let mut mismatches = Vec::new();
    for (text, line, column, words) in cases {
        let error = parse_err(text);
        let place = (error.position.line, error.position.column);
        if !error.message.contains(words) || place != (*line, *column) {
            mismatches.push(format!("{text:?}: expected {line}:{column} {words:?}, got {error}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn the_error_names_its_place_first() {
    let error = parse_err("loyalty.points > 3 and foo(1)");
    assert!(
        error
            .to_string()
            .starts_with("at line 1, column 24: 'foo' is not supported; "),
        "{error}"
    );
}

#[test]
fn nesting_is_bounded() {
    let deep = format!("{}loyalty.points > 1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    parse_ok(&deep);
    let too_deep = format!(
        "{}loyalty.points > 1{}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    assert!(parse_err(&too_deep).message.contains("nests more than"));
    let nots = format!("{}loyalty.points > 1", "not ".repeat(10_000));
    assert!(parse_err(&nots).message.contains("nests more than"));
    let long_chain = vec!["loyalty.points > 1"; 20_000].join(" and ");
    let Expr::And { operands, .. } = parse_ok(&long_chain) else {
        panic!("an and");
    };
    assert_eq!(operands.len(), 20_000);
}

// ---- property: no input makes the parser panic ------------------------------------------------

/// Valid expressions covering every construct, the seeds of the mutation strategy.
const VALID: &[&str] = &[
    "homeAddress.countryCode = \"CA\" and loyalty.points >= 10",
    "not (loyalty.tier in [\"gold\", \"silver\"]) or loyalty.member = true",
    "person.name.firstName.startsWith(\"Jo\", false) and homeAddress.city like \"%es_\"",
    "person.name.lastName.matches(\"^[A-Z]\\\\w+$\") and loyalty.tags.isNotNull()",
    "loyalty.joined occurs <= 30 days before now and person.birthDate occurs between date(1990, 1, 1) and date(\"1999-12-31\")",
    "select X from xEvent where X.eventType = \"commerce.purchases\" and X.timestamp occurs last month",
    "xEvent[commerce.order.priceTotal > 100.5].count() >= 2 and inSegment(\"3da8bad9-29fb-40e0-b39e-f80322e964de\")",
    "(exists E from xEvent: E.web.webPageDetails.name.contains(\"shoe\")) or loyalty.joined occurs on yesterday",
    "(select X from xEvent where X.eventType notIn [\"a\", \"b\"]).count() = 0",
    "3 < xEvent[timestamp occurs > 2 weeks after date(\"2024-01-01T00:00:00Z\")].count()",
];

/// Pieces of PQL to assemble at random: most random token strings are wrong in many ways, which
/// is what reaches the error paths.
const TOKENS: &[&str] = &[
    "loyalty",
    "points",
    "tier",
    ".",
    "person",
    "name",
    "xEvent",
    "select",
    "X",
    "from",
    "where",
    "exists",
    "and",
    "or",
    "not",
    "!",
    "(",
    ")",
    "[",
    "]",
    ",",
    ":",
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "in",
    "notIn",
    "like",
    "occurs",
    "before",
    "after",
    "between",
    "now",
    "today",
    "last",
    "month",
    "days",
    "7",
    "-",
    "3.5",
    "\"a\"",
    "\"%x\"",
    "date",
    "inSegment",
    "count",
    "isNull",
    "startsWith",
    "matches",
    "true",
    "false",
    "$1",
    "=>",
    "\n",
    "é",
    "\"",
    "\\",
    "#",
    "timestamp",
    "eventType",
    "on",
    "week",
];

fn check_invariants(text: &str) {
    let result = with_schemas(|schemas| parse(text, schemas));
    match result {
        Ok(expr) => check_spans(&expr, text),
        Err(error) => {
            let offset = error.position.offset;
            assert!(
                offset <= text.len() && text.is_char_boundary(offset),
                "{text:?}: {error:?}"
            );
            assert_eq!(Position::of_offset(text, offset), error.position, "{text:?}");
            assert!(!error.message.is_empty());
        }
    }
}

fn check_spans(expr: &Expr, text: &str) {
    let span = expr.span();
    assert!(
        span.start.offset <= span.end.offset && span.end.offset <= text.len(),
        "{text:?}"
    );
    assert_eq!(Position::of_offset(text, span.start.offset), span.start, "{text:?}");
    for child in expr.children() {
        check_spans(child, text);
    }
}

fn mutated(seed: &str, cut: usize, length: usize, insert: &str) -> String {
    let chars: Vec<char> = seed.chars().collect();
    let cut = cut % (chars.len() + 1);
    let end = (cut + length).min(chars.len());
    let mut text: String = chars[..cut].iter().collect();
    text.push_str(insert);
    text.extend(&chars[end..]);
    text
}

#[test]
fn every_seed_is_valid() {
    for seed in VALID {
        parse_ok(seed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,80}") {
        check_invariants(&text);
    }

    #[test]
    fn token_soup_never_panics(pieces in prop::collection::vec(prop::sample::select(TOKENS), 0..40)) {
        check_invariants(&pieces.join(" "));
        check_invariants(&pieces.concat());
    }

    #[test]
    fn mutated_valid_expressions_never_panic(
        seed in prop::sample::select(VALID),
        cut in 0usize..200,
        length in 0usize..12,
        insert in prop::sample::select(TOKENS),
    ) {
        check_invariants(&mutated(seed, cut, length, insert));
        check_invariants(&mutated(seed, cut, length, ""));
        let chars: Vec<char> = seed.chars().collect();
        let truncated: String = chars[..cut % (chars.len() + 1)].iter().collect();
        check_invariants(&truncated);
    }
}
