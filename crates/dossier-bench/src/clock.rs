//! Dates and times as the generator writes them: milliseconds since the Unix epoch in, XDM's
//! `YYYY-MM-DD` and RFC 3339 `YYYY-MM-DDTHH:MM:SS.mmmZ` out.
//!
//! Written by hand (Howard Hinnant's civil-calendar algorithms) because millions of timestamps
//! are formatted per run and the output must never depend on a library's display choices.

use std::fmt::Write;

use rand::Rng;

pub const MILLIS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub const fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let year_of_era = y - era * 400;
    let shifted_month = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The (year, month, day) of a count of days since 1970-01-01.
pub const fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

/// Midnight UTC of a date, in milliseconds since the epoch.
pub const fn millis_at(year: i64, month: i64, day: i64) -> i64 {
    days_from_civil(year, month, day) * MILLIS_PER_DAY
}

/// `YYYY-MM-DD` of the day containing `millis`.
pub fn date(millis: i64) -> String {
    let (year, month, day) = civil_from_days(millis.div_euclid(MILLIS_PER_DAY));
    format!("{year:04}-{month:02}-{day:02}")
}

/// RFC 3339 in UTC with milliseconds, e.g. `2019-09-01T08:15:02.417Z`.
pub fn date_time(millis: i64) -> String {
    let mut text = date(millis);
    let of_day = millis.rem_euclid(MILLIS_PER_DAY);
    let (hour, minute) = (of_day / 3_600_000, of_day / 60_000 % 60);
    let (second, milli) = (of_day / 1000 % 60, of_day % 1000);
    write!(text, "T{hour:02}:{minute:02}:{second:02}.{milli:03}Z").expect("writing to a String");
    text
}

/// A half-open span of time `[start, end)` in milliseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: i64,
    pub end: i64,
}

impl Span {
    pub const fn days(start: (i64, i64, i64), end: (i64, i64, i64)) -> Self {
        Self {
            start: millis_at(start.0, start.1, start.2),
            end: millis_at(end.0, end.1, end.2),
        }
    }

    /// A uniformly drawn instant of the span, to the millisecond.
    pub fn sample(&self, rng: &mut impl Rng) -> i64 {
        rng.random_range(self.start..self.end)
    }

    pub fn contains(&self, millis: i64) -> bool {
        (self.start..self.end).contains(&millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip_across_centuries() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn formats_match_an_independent_implementation() {
        for millis in [0, 1_567_296_000_000, 951_782_400_123, 1_709_164_799_999, -86_400_001] {
            let expected = jiff::Timestamp::from_millisecond(millis).unwrap();
            let parsed: jiff::Timestamp = date_time(millis).parse().unwrap();
            assert_eq!(parsed, expected, "{}", date_time(millis));
            assert_eq!(
                date(millis),
                expected.to_zoned(jiff::tz::TimeZone::UTC).date().to_string()
            );
        }
        assert_eq!(date_time(millis_at(2019, 9, 1) + 1), "2019-09-01T00:00:00.001Z");
    }
}
