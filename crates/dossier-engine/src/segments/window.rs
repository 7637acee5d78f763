//! `occurs` windows turned into ranges of instants (UTC microseconds) once per evaluation, so
//! that a window costs two vectorized comparisons per row, never date arithmetic per row.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, ToSpan, Zoned};

use dossier_model::pql::{CompareOp, RelativePeriod, TimeAnchor, TimeDirection, TimeUnit, TimeWindow};

/// One end of a range: the instant in microseconds and whether it is included.
pub type Bound = Option<(i64, bool)>;

/// `lo .. hi`, an open end where `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub lo: Bound,
    pub hi: Bound,
}

fn utc(ts: Timestamp) -> Zoned {
    ts.to_zoned(TimeZone::UTC)
}

fn micros(z: &Zoned) -> i64 {
    z.timestamp().as_microsecond()
}

fn day_start(date: Date) -> Zoned {
    date.to_zoned(TimeZone::UTC).expect("every civil date starts in UTC")
}

fn anchor(now: Timestamp, anchor: TimeAnchor) -> Zoned {
    let today = utc(now).date();
    match anchor {
        TimeAnchor::Now => utc(now),
        TimeAnchor::Today => day_start(today),
        TimeAnchor::Yesterday => day_start(today.yesterday().unwrap_or(today)),
        TimeAnchor::Tomorrow => day_start(today.tomorrow().unwrap_or(today)),
        TimeAnchor::Date(date) => day_start(date),
        TimeAnchor::DateTime(ts) => utc(ts),
    }
}

fn span_of(amount: i64, unit: TimeUnit) -> Span {
    match unit {
        TimeUnit::Millisecond => amount.milliseconds(),
        TimeUnit::Second => amount.seconds(),
        TimeUnit::Minute => amount.minutes(),
        TimeUnit::Hour => amount.hours(),
        TimeUnit::Day => amount.days(),
        TimeUnit::Week => (amount * 7).days(),
        TimeUnit::Month => amount.months(),
        TimeUnit::Year => amount.years(),
        TimeUnit::Decade => (amount * 10).years(),
        TimeUnit::Century => (amount * 100).years(),
        TimeUnit::Millennium => (amount * 1000).years(),
    }
}

/// `z` moved by `amount` units; saturates at the ends of the supported range.
fn shift(z: &Zoned, amount: i64, unit: TimeUnit) -> Zoned {
    z.checked_add(span_of(amount, unit)).unwrap_or_else(|_| {
        let edge = if amount < 0 { Timestamp::MIN } else { Timestamp::MAX };
        utc(edge)
    })
}

fn range(lo: Option<(&Zoned, bool)>, hi: Option<(&Zoned, bool)>) -> Range {
    Range {
        lo: lo.map(|(z, inc)| (micros(z), inc)),
        hi: hi.map(|(z, inc)| (micros(z), inc)),
    }
}

/// The start of the calendar period of `unit` that contains `z`.
fn period_start(z: &Zoned, unit: TimeUnit) -> Zoned {
    let date = z.date();
    let start = match unit {
        TimeUnit::Week => {
            let back = i64::from(date.weekday().to_monday_zero_offset());
            date.checked_sub(back.days()).unwrap_or(date)
        }
        TimeUnit::Month => date.first_of_month(),
        TimeUnit::Year => date.first_of_year(),
        _ => date,
    };
    day_start(start)
}

/// The ranges (a union) of instants that satisfy `window` when evaluated at `now`.
pub fn window_ranges(window: &TimeWindow, now: Timestamp) -> Vec<Range> {
    match window {
        TimeWindow::Before(a) => vec![range(None, Some((&anchor(now, *a), false)))],
        TimeWindow::After(a) => vec![range(Some((&anchor(now, *a), false)), None)],
        TimeWindow::On(a) => {
            let start = anchor(now, *a);
            let end = shift(&start, 1, TimeUnit::Day);
            vec![range(Some((&start, true)), Some((&end, false)))]
        }
        TimeWindow::Between { start, end } => {
            let s = anchor(now, *start);
            let e = anchor(now, *end);
            if end.is_day() {
                let next = shift(&e, 1, TimeUnit::Day);
                vec![range(Some((&s, true)), Some((&next, false)))]
            } else {
                vec![range(Some((&s, true)), Some((&e, true)))]
            }
        }
        TimeWindow::Distance {
            op,
            amount,
            unit,
            direction,
            anchor: a,
        } => {
            let a = anchor(now, *a);
            let n = i64::from(*amount);
            match direction {
                TimeDirection::Before => {
                    let b = shift(&a, -n, *unit);
                    let b1 = shift(&b, -1, *unit);
                    match op {
                        CompareOp::LtEq => vec![range(Some((&b, true)), Some((&a, true)))],
                        CompareOp::Lt => vec![range(Some((&b, false)), Some((&a, true)))],
                        CompareOp::GtEq => vec![range(None, Some((&b, true)))],
                        CompareOp::Gt => vec![range(None, Some((&b, false)))],
                        CompareOp::Eq => vec![range(Some((&b1, false)), Some((&b, true)))],
                        CompareOp::NotEq => vec![
                            range(Some((&b, false)), Some((&a, true))),
                            range(None, Some((&b1, true))),
                        ],
                    }
                }
                TimeDirection::After => {
                    let b = shift(&a, n, *unit);
                    let b1 = shift(&b, 1, *unit);
                    match op {
                        CompareOp::LtEq => vec![range(Some((&a, true)), Some((&b, true)))],
                        CompareOp::Lt => vec![range(Some((&a, true)), Some((&b, false)))],
                        CompareOp::GtEq => vec![range(Some((&b, true)), None)],
                        CompareOp::Gt => vec![range(Some((&b, false)), None)],
                        CompareOp::Eq => vec![range(Some((&b, true)), Some((&b1, false)))],
                        CompareOp::NotEq => vec![
                            range(Some((&a, true)), Some((&b, false))),
                            range(Some((&b1, true)), None),
                        ],
                    }
                }
            }
        }
        TimeWindow::Period { which, unit } => {
            let this = period_start(&utc(now), *unit);
            let start = match which {
                RelativePeriod::This => this,
                RelativePeriod::Last => shift(&this, -1, *unit),
                RelativePeriod::Next => shift(&this, 1, *unit),
            };
            let end = shift(&start, 1, *unit);
            vec![range(Some((&start, true)), Some((&end, false)))]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_microsecond()
    }

    #[test]
    fn windows_are_measured_from_the_evaluation_time() {
        let now: Timestamp = "2024-03-14T10:00:00Z".parse().unwrap();
        let within_week = TimeWindow::Distance {
            op: CompareOp::LtEq,
            amount: 7,
            unit: TimeUnit::Day,
            direction: TimeDirection::Before,
            anchor: TimeAnchor::Now,
        };
        assert_eq!(
            window_ranges(&within_week, now),
            vec![Range {
                lo: Some((at("2024-03-07T10:00:00Z"), true)),
                hi: Some((at("2024-03-14T10:00:00Z"), true)),
            }]
        );
        let last_month = TimeWindow::Period {
            which: RelativePeriod::Last,
            unit: TimeUnit::Month,
        };
        assert_eq!(
            window_ranges(&last_month, now),
            vec![Range {
                lo: Some((at("2024-02-01T00:00:00Z"), true)),
                hi: Some((at("2024-03-01T00:00:00Z"), false)),
            }]
        );
        let this_week = TimeWindow::Period {
            which: RelativePeriod::This,
            unit: TimeUnit::Week,
        };
        // 2024-03-14 is a Thursday; the week starts on Monday the 11th.
        assert_eq!(
            window_ranges(&this_week, now)[0].lo,
            Some((at("2024-03-11T00:00:00Z"), true))
        );
    }
}
