//! NCRONTAB schedules as used by Azure Functions timer triggers.
//!
//! An expression has exactly six whitespace-separated fields:
//!
//! ```text
//! {second} {minute} {hour} {day} {month} {day-of-week}
//!   0-59     0-59    0-23  1-31  1-12      0-6 (0 = Sunday)
//! ```
//!
//! This is the format NCrontab (<https://github.com/atifaziz/NCrontab>) parses with
//! `ParseOptions { IncludingSeconds = true }`, which is what the Functions host uses for
//! `TimerTrigger` schedules. Each field is a comma-separated list of elements:
//!
//! | element  | meaning                                              |
//! |----------|------------------------------------------------------|
//! | `*`      | every value of the field                             |
//! | `n`      | the single value `n`                                 |
//! | `a-b`    | every value from `a` to `b` inclusive                |
//! | `*/n`    | every `n`th value, starting at the field's minimum   |
//! | `a-b/n`  | every `n`th value from `a` up to `b`                 |
//! | `a/n`    | every `n`th value from `a` up to the field's maximum |
//!
//! Month and day-of-week values may also be given by name, case-insensitively.
//!
//! # NCrontab semantics (decided by reading NCrontab's source)
//!
//! * **Day-of-month and day-of-week are combined with AND.** NCrontab picks the next day from
//!   the day-of-month set and then, only at the very end, checks
//!   `_daysOfWeek.Contains(nextTime.DayOfWeek)`; if that fails it retries from the end of that
//!   day. So a date fires only when *both* fields match: `0 0 9 13 * 5` fires only on a
//!   Friday the 13th. This differs from Vixie cron, which ORs the two fields when both are
//!   restricted.
//! * **Day-of-week is 0-6 with 0 = Sunday; 7 is rejected.** NCrontab's day-of-week field has
//!   `MinValue = 0, MaxValue = 6` and reports 7 as "higher than the maximum allowable value".
//! * **Names** are matched the way NCrontab matches them: the token must be a case-insensitive
//!   prefix of the full English name, and the first name in calendar order wins. So `jan`,
//!   `Jan`, `JANUARY` and `janu` are all January and `mon`/`MONDAY` are Monday; a short
//!   ambiguous prefix such as `t` means Tuesday (not Thursday) and `ju` means June, exactly as
//!   on Azure. Prefer the usual three-letter abbreviations.
//! * **`a/n`** means from `a` to the field's maximum in steps of `n` (NCrontab calls its
//!   accumulator with `(value, MaxValue, every)`).
//! * **Schedules that can never fire** (e.g. `0 0 0 31 2 *`) parse successfully, as in
//!   NCrontab; [`Schedule::next_after`] returns `None` for them.
//! * Occurrences are whole seconds: [`Schedule::next_after`] returns the first whole second
//!   strictly after the given instant (sub-second parts of the input are ignored, as NCrontab
//!   starts its search at `baseTime.Second + 1`).
//!
//! # Deliberately stricter than NCrontab
//!
//! Where NCrontab silently accepts something that is almost certainly a mistake, this module
//! rejects it with an error instead:
//!
//! * **Five-field expressions.** Azure Functions documents six fields; a five-field (classic
//!   cron) expression is rejected with a message saying that six fields are needed. (Recent
//!   versions of the WebJobs timer extension would fall back to a five-field parse.)
//! * **Step 0** (`*/0`): NCrontab clamps the step to 1; we reject it.
//! * **Reversed ranges** (`22-2`): NCrontab silently swaps the bounds (so `22-2` means `2-22`,
//!   not a wrap-around past midnight); we reject them because either reading surprises someone.
//!
//! Fields are separated by any ASCII whitespace (NCrontab splits on spaces only), so a stray
//! tab or trailing newline from an app setting is tolerated.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, TimeZone, Timelike, Utc};

/// How many years [`Schedule::next_after`] searches before giving up.
///
/// The proleptic Gregorian calendar repeats exactly every 400 years (146 097 days, which is a
/// whole number of weeks), so if a schedule has no occurrence within 400 years of the start it
/// never has one. In practice [`Schedule::next_after`] first checks whether any
/// (month, day-of-month) pair of the schedule exists at all and returns `None` immediately if
/// not; this bound only guarantees termination.
const SEARCH_YEARS: i32 = 400;

/// The six fields of an NCRONTAB expression, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// Seconds, 0-59.
    Second,
    /// Minutes, 0-59.
    Minute,
    /// Hours, 0-23.
    Hour,
    /// Day of month, 1-31.
    DayOfMonth,
    /// Month, 1-12 or `jan`-`dec`.
    Month,
    /// Day of week, 0-6 (0 = Sunday) or `sun`-`sat`.
    DayOfWeek,
}

impl Field {
    fn spec(self) -> &'static FieldSpec {
        match self {
            Field::Second => &SECOND,
            Field::Minute => &MINUTE,
            Field::Hour => &HOUR,
            Field::DayOfMonth => &DAY_OF_MONTH,
            Field::Month => &MONTH,
            Field::DayOfWeek => &DAY_OF_WEEK,
        }
    }

    /// The smallest value the field accepts.
    pub fn min(self) -> u32 {
        self.spec().min
    }

    /// The largest value the field accepts.
    pub fn max(self) -> u32 {
        self.spec().max
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Second => "second",
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
        })
    }
}

/// Why an NCRONTAB expression was rejected.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    /// The expression is empty or only whitespace.
    #[error(
        "schedule expression is empty; six fields are needed: \
         {{second}} {{minute}} {{hour}} {{day}} {{month}} {{day-of-week}}"
    )]
    Empty,
    /// The expression does not have exactly six fields.
    #[error(
        "schedule expression has {found} field(s) but six are needed: \
         {{second}} {{minute}} {{hour}} {{day}} {{month}} {{day-of-week}}{}",
        field_count_hint(.found)
    )]
    WrongFieldCount {
        /// How many fields were found.
        found: usize,
    },
    /// A list element, range bound or step is missing, e.g. `1,,2`, `1-` or `*/`.
    #[error("{field} field: empty value in `{token}`")]
    EmptyValue {
        /// The offending field.
        field: Field,
        /// The whole text of the field.
        token: String,
    },
    /// A value is neither a number nor (where allowed) a name, e.g. `-5` or `5x`.
    #[error("{field} field: `{text}` is not a valid value; expected {}", expected(.field))]
    InvalidValue {
        /// The offending field.
        field: Field,
        /// The value text.
        text: String,
    },
    /// A month or day-of-week name matches no known name.
    #[error("{field} field: unknown name `{text}`; expected {}", expected(.field))]
    UnknownName {
        /// The offending field.
        field: Field,
        /// The name text.
        text: String,
    },
    /// A number lies outside the field's range.
    #[error(
        "{field} field: value {value} is out of range; allowed values are {min}-{max}{}",
        out_of_range_hint(.field, .value)
    )]
    OutOfRange {
        /// The offending field.
        field: Field,
        /// The number as written.
        value: String,
        /// The field's minimum.
        min: u32,
        /// The field's maximum.
        max: u32,
    },
    /// A range whose start is after its end, e.g. `22-2`.
    #[error(
        "{field} field: range `{token}` is reversed ({start} is after {end}); \
         ranges must go from low to high and do not wrap around"
    )]
    ReversedRange {
        /// The offending field.
        field: Field,
        /// The range element as written.
        token: String,
        /// The range start.
        start: u32,
        /// The range end.
        end: u32,
    },
    /// A step that is not a whole number, e.g. `*/x`.
    #[error("{field} field: step in `{token}` must be a whole number of at least 1")]
    InvalidStep {
        /// The offending field.
        field: Field,
        /// The element as written.
        token: String,
    },
    /// A step of zero, e.g. `*/0`.
    #[error("{field} field: step in `{token}` must be at least 1, not 0")]
    ZeroStep {
        /// The offending field.
        field: Field,
        /// The element as written.
        token: String,
    },
}

fn field_count_hint(found: &usize) -> &'static str {
    if *found == 5 {
        "; azure functions ncrontab expressions start with a seconds field, \
         e.g. `0 */5 * * * *` rather than `*/5 * * * *`"
    } else {
        ""
    }
}

fn expected(field: &Field) -> String {
    let spec = field.spec();
    match field {
        Field::Month => format!(
            "a number between {} and {} or a month name such as jan",
            spec.min, spec.max
        ),
        Field::DayOfWeek => format!(
            "a number between {} and {} (0 = sunday) or a day name such as mon",
            spec.min, spec.max
        ),
        _ => format!("a number between {} and {}", spec.min, spec.max),
    }
}

fn out_of_range_hint(field: &Field, value: &str) -> &'static str {
    if *field == Field::DayOfWeek && value.trim_start_matches('0') == "7" {
        " (0 is sunday; 7 is not accepted)"
    } else {
        ""
    }
}

struct FieldSpec {
    field: Field,
    min: u32,
    max: u32,
    /// Full lower-case names for `min..=max`, or empty when the field has no names.
    names: &'static [&'static str],
}

const SECOND: FieldSpec = FieldSpec {
    field: Field::Second,
    min: 0,
    max: 59,
    names: &[],
};
const MINUTE: FieldSpec = FieldSpec {
    field: Field::Minute,
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: FieldSpec = FieldSpec {
    field: Field::Hour,
    min: 0,
    max: 23,
    names: &[],
};
const DAY_OF_MONTH: FieldSpec = FieldSpec {
    field: Field::DayOfMonth,
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: FieldSpec = FieldSpec {
    field: Field::Month,
    min: 1,
    max: 12,
    names: &[
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ],
};
const DAY_OF_WEEK: FieldSpec = FieldSpec {
    field: Field::DayOfWeek,
    min: 0,
    max: 6,
    names: &[
        "sunday",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
    ],
};

/// A set of small integers (0-63).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct Bits(u64);

impl Bits {
    fn insert(&mut self, value: u32) {
        if value < 64 {
            self.0 |= 1 << value;
        }
    }

    fn contains(self, value: u32) -> bool {
        value < 64 && (self.0 >> value) & 1 == 1
    }

    /// The smallest member `>= from`.
    fn next_from(self, from: u32) -> Option<u32> {
        if from >= 64 {
            return None;
        }
        let masked = self.0 & (u64::MAX << from);
        (masked != 0).then(|| masked.trailing_zeros())
    }

    /// The members `>= from`, ascending.
    fn iter_from(self, from: u32) -> impl Iterator<Item = u32> {
        std::iter::successors(self.next_from(from), move |&v| self.next_from(v + 1))
    }
}

/// A parsed NCRONTAB schedule (six fields, including seconds), evaluated in UTC.
///
/// Equality compares the expression text as given as well as the parsed fields.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Schedule {
    expression: String,
    seconds: Bits,
    minutes: Bits,
    hours: Bits,
    days_of_month: Bits,
    months: Bits,
    days_of_week: Bits,
}

impl Schedule {
    /// Parses a six-field NCRONTAB expression such as `0 */5 * * * *`.
    pub fn parse(expr: &str) -> Result<Schedule, ScheduleError> {
        let tokens: Vec<&str> = expr.split_ascii_whitespace().collect();
        if tokens.is_empty() {
            return Err(ScheduleError::Empty);
        }
        let [sec, min, hour, dom, month, dow] = tokens[..] else {
            return Err(ScheduleError::WrongFieldCount {
                found: tokens.len(),
            });
        };
        Ok(Schedule {
            expression: expr.to_owned(),
            seconds: parse_field(&SECOND, sec)?,
            minutes: parse_field(&MINUTE, min)?,
            hours: parse_field(&HOUR, hour)?,
            days_of_month: parse_field(&DAY_OF_MONTH, dom)?,
            months: parse_field(&MONTH, month)?,
            days_of_week: parse_field(&DAY_OF_WEEK, dow)?,
        })
    }

    /// The expression this schedule was parsed from, exactly as given.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// Whether the whole second containing `at` is an occurrence of this schedule (the
    /// sub-second part of `at` is ignored).
    pub fn matches(&self, at: DateTime<Utc>) -> bool {
        self.seconds.contains(at.second())
            && self.minutes.contains(at.minute())
            && self.hours.contains(at.hour())
            && self.days_of_month.contains(at.day())
            && self.months.contains(at.month())
            && self
                .days_of_week
                .contains(at.weekday().num_days_from_sunday())
    }

    /// The first occurrence strictly after `after` (UTC).
    ///
    /// Returns `None` when the schedule can never fire (e.g. `0 0 0 31 2 *`) or the next
    /// occurrence would lie beyond the range `chrono` can represent. The search skips whole
    /// months, days, hours and minutes that cannot match, so it costs at most a few thousand
    /// cheap steps even for the rarest schedules.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.can_ever_fire() {
            return None;
        }
        let start = after
            .naive_utc()
            .with_nanosecond(0)?
            .checked_add_signed(TimeDelta::seconds(1))?;
        let start_date = start.date();
        let start_year = start.year();
        let start_time = (start.hour(), start.minute(), start.second());

        for year in start_year..=start_year.saturating_add(SEARCH_YEARS) {
            let first_month = if year == start_year { start.month() } else { 1 };
            for month in self.months.iter_from(first_month) {
                let first_day = if year == start_year && month == start.month() {
                    start.day()
                } else {
                    1
                };
                let last_day = days_in_month(year, month);
                for day in self
                    .days_of_month
                    .iter_from(first_day)
                    .take_while(|&d| d <= last_day)
                {
                    // Out of chrono's range: nothing later is representable either.
                    let date = NaiveDate::from_ymd_opt(year, month, day)?;
                    if !self
                        .days_of_week
                        .contains(date.weekday().num_days_from_sunday())
                    {
                        continue;
                    }
                    let from = if date == start_date {
                        start_time
                    } else {
                        (0, 0, 0)
                    };
                    if let Some((h, m, s)) = self.next_time_of_day(from) {
                        return Some(Utc.from_utc_datetime(&date.and_hms_opt(h, m, s)?));
                    }
                }
            }
        }
        None
    }

    /// The earliest `(hour, minute, second)` of the schedule that is `>= from` within a day.
    fn next_time_of_day(&self, (h0, m0, s0): (u32, u32, u32)) -> Option<(u32, u32, u32)> {
        for h in self.hours.iter_from(h0) {
            let first_minute = if h == h0 { m0 } else { 0 };
            for m in self.minutes.iter_from(first_minute) {
                let first_second = if h == h0 && m == m0 { s0 } else { 0 };
                if let Some(s) = self.seconds.next_from(first_second) {
                    return Some((h, m, s));
                }
            }
        }
        None
    }

    /// Whether some (month, day-of-month) pair of the schedule exists in some year. Every such
    /// date falls on every day of the week over the 400-year cycle, so this is exact.
    fn can_ever_fire(&self) -> bool {
        self.months
            .iter_from(1)
            .take_while(|&m| m <= 12)
            .any(|month| {
                let longest = if month == 2 {
                    29
                } else {
                    days_in_month(2001, month)
                };
                self.days_of_month
                    .next_from(1)
                    .is_some_and(|d| d <= longest)
            })
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Schedule::parse(s)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

fn is_leap_year(year: i32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn parse_field(spec: &FieldSpec, token: &str) -> Result<Bits, ScheduleError> {
    let mut bits = Bits::default();
    for element in token.split(',') {
        parse_element(spec, token, element, &mut bits)?;
    }
    Ok(bits)
}

fn parse_element(
    spec: &FieldSpec,
    token: &str,
    element: &str,
    bits: &mut Bits,
) -> Result<(), ScheduleError> {
    let field = spec.field;
    let empty = || ScheduleError::EmptyValue {
        field,
        token: token.to_owned(),
    };

    let (base, step) = match element.split_once('/') {
        Some((base, step)) => (base, Some(parse_step(spec, element, step)?)),
        None => (element, None),
    };
    if base.is_empty() {
        return Err(empty());
    }

    let (start, end) = if base == "*" {
        (spec.min, spec.max)
    } else if let Some((first, last)) = base.split_once('-') {
        if first.is_empty() {
            // `-5` is not a negative number here; NCrontab rejects it too.
            return Err(ScheduleError::InvalidValue {
                field,
                text: base.to_owned(),
            });
        }
        if last.is_empty() {
            return Err(empty());
        }
        let (start, end) = (parse_value(spec, first)?, parse_value(spec, last)?);
        if start > end {
            return Err(ScheduleError::ReversedRange {
                field,
                token: element.to_owned(),
                start,
                end,
            });
        }
        (start, end)
    } else {
        let value = parse_value(spec, base)?;
        // `a/n` runs from `a` to the field's maximum, as in NCrontab.
        (value, if step.is_some() { spec.max } else { value })
    };

    let step = step.unwrap_or(1);
    let mut value = start;
    while value <= end {
        bits.insert(value);
        match value.checked_add(step) {
            Some(next) => value = next,
            None => break,
        }
    }
    Ok(())
}

fn parse_step(spec: &FieldSpec, element: &str, step: &str) -> Result<u32, ScheduleError> {
    let field = spec.field;
    if step.is_empty() {
        return Err(ScheduleError::EmptyValue {
            field,
            token: element.to_owned(),
        });
    }
    if !step.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ScheduleError::InvalidStep {
            field,
            token: element.to_owned(),
        });
    }
    match step.parse::<u32>() {
        Ok(0) => Err(ScheduleError::ZeroStep {
            field,
            token: element.to_owned(),
        }),
        Ok(n) => Ok(n),
        // All digits but too large for u32: larger than any field anyway, so it selects just
        // the start value, exactly like any step larger than the field's range.
        Err(_) => Ok(u32::MAX),
    }
}

fn parse_value(spec: &FieldSpec, text: &str) -> Result<u32, ScheduleError> {
    let field = spec.field;
    let Some(first) = text.bytes().next() else {
        return Err(ScheduleError::InvalidValue {
            field,
            text: text.to_owned(),
        });
    };

    if first.is_ascii_digit() {
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ScheduleError::InvalidValue {
                field,
                text: text.to_owned(),
            });
        }
        return match text.parse::<u32>() {
            Ok(value) if (spec.min..=spec.max).contains(&value) => Ok(value),
            _ => Err(ScheduleError::OutOfRange {
                field,
                value: text.to_owned(),
                min: spec.min,
                max: spec.max,
            }),
        };
    }

    if spec.names.is_empty() || !first.is_ascii_alphabetic() {
        return Err(ScheduleError::InvalidValue {
            field,
            text: text.to_owned(),
        });
    }
    // NCrontab: `CompareInfo.IsPrefix(name, text, IgnoreCase)`, first match in order wins.
    spec.names
        .iter()
        .zip(spec.min..)
        .find(|(name, _)| {
            name.len() >= text.len()
                && name.as_bytes()[..text.len()].eq_ignore_ascii_case(text.as_bytes())
        })
        .map(|(_, value)| value)
        .ok_or_else(|| ScheduleError::UnknownName {
            field,
            text: text.to_owned(),
        })
}

#[cfg(test)]
mod tests;
