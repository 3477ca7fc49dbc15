use super::*;

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};
use proptest::prelude::*;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .expect("valid test instant")
}

fn sched(expr: &str) -> Schedule {
    Schedule::parse(expr).unwrap_or_else(|e| panic!("`{expr}` should parse: {e}"))
}

/// The values of one field, read back from the parsed schedule.
fn values(bits: Bits) -> Vec<u32> {
    bits.iter_from(0).collect()
}

fn next(expr: &str, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    sched(expr).next_after(after)
}

/// The first `n` occurrences after `after`.
fn take(expr: &str, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    let s = sched(expr);
    std::iter::successors(s.next_after(after), |t| s.next_after(*t))
        .take(n)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Parsing: accepted syntax
// ---------------------------------------------------------------------------------------------

#[test]
fn star_selects_whole_range() {
    let s = sched("* * * * * *");
    assert_eq!(values(s.seconds), (0..=59).collect::<Vec<_>>());
    assert_eq!(values(s.minutes), (0..=59).collect::<Vec<_>>());
    assert_eq!(values(s.hours), (0..=23).collect::<Vec<_>>());
    assert_eq!(values(s.days_of_month), (1..=31).collect::<Vec<_>>());
    assert_eq!(values(s.months), (1..=12).collect::<Vec<_>>());
    assert_eq!(values(s.days_of_week), (0..=6).collect::<Vec<_>>());
}

#[test]
fn numbers_ranges_and_lists() {
    let s = sched("5 0-3 1,2,23 10-12,20 12 0");
    assert_eq!(values(s.seconds), vec![5]);
    assert_eq!(values(s.minutes), vec![0, 1, 2, 3]);
    assert_eq!(values(s.hours), vec![1, 2, 23]);
    assert_eq!(values(s.days_of_month), vec![10, 11, 12, 20]);
    assert_eq!(values(s.months), vec![12]);
    assert_eq!(values(s.days_of_week), vec![0]);
}

#[test]
fn leading_zeros_are_accepted() {
    let s = sched("00 05 09 01 01 00");
    assert_eq!(values(s.minutes), vec![5]);
    assert_eq!(values(s.hours), vec![9]);
}

#[test]
fn steps() {
    let s = sched("*/15 10-30/10 5/6 */10 2/5 */2");
    assert_eq!(values(s.seconds), vec![0, 15, 30, 45]);
    assert_eq!(values(s.minutes), vec![10, 20, 30]);
    // `a/n` runs to the field's maximum.
    assert_eq!(values(s.hours), vec![5, 11, 17, 23]);
    // `*/n` starts at the field's minimum (1 for days of month).
    assert_eq!(values(s.days_of_month), vec![1, 11, 21, 31]);
    assert_eq!(values(s.months), vec![2, 7, 12]);
    assert_eq!(values(s.days_of_week), vec![0, 2, 4, 6]);
}

#[test]
fn step_larger_than_range_selects_start_only() {
    let s = sched("*/100 7/99 0 1 1 *");
    assert_eq!(values(s.seconds), vec![0]);
    assert_eq!(values(s.minutes), vec![7]);
    let s = sched("*/99999999999999 * * * * *");
    assert_eq!(values(s.seconds), vec![0]);
}

#[test]
fn overlapping_list_elements_union() {
    let s = sched("0-10/5,3,*/20 * * * * *");
    assert_eq!(values(s.seconds), vec![0, 3, 5, 10, 20, 40]);
}

#[test]
fn month_names_case_insensitive() {
    let s = sched("0 0 0 1 jan,FEB,Mar,aPr,MAY,jun,JUL,aug,Sep,oct,NOV,dec *");
    assert_eq!(values(s.months), (1..=12).collect::<Vec<_>>());
    let s = sched("0 0 0 1 JAN-MAR *");
    assert_eq!(values(s.months), vec![1, 2, 3]);
    let s = sched("0 0 0 1 January,september *");
    assert_eq!(values(s.months), vec![1, 9]);
    let s = sched("0 0 0 1 jan-dec/3 *");
    assert_eq!(values(s.months), vec![1, 4, 7, 10]);
}

#[test]
fn day_names_case_insensitive() {
    let s = sched("0 0 0 * * sun,MON,Tue,wed,THU,fri,SAT");
    assert_eq!(values(s.days_of_week), (0..=6).collect::<Vec<_>>());
    let s = sched("0 0 0 * * MON-FRI");
    assert_eq!(values(s.days_of_week), vec![1, 2, 3, 4, 5]);
    let s = sched("0 0 0 * * Saturday,sunday");
    assert_eq!(values(s.days_of_week), vec![0, 6]);
}

#[test]
fn names_match_by_prefix_like_ncrontab() {
    // NCrontab: first name (in calendar order) that starts with the token wins.
    assert_eq!(values(sched("0 0 0 * * t").days_of_week), vec![2]); // Tuesday, not Thursday
    assert_eq!(values(sched("0 0 0 * * th").days_of_week), vec![4]);
    assert_eq!(values(sched("0 0 0 1 ju *").months), vec![6]); // June, not July
    assert_eq!(values(sched("0 0 0 1 janu *").months), vec![1]);
}

#[test]
fn names_and_numbers_mix() {
    let s = sched("0 0 0 1 1-mar,dec * ");
    assert_eq!(values(s.months), vec![1, 2, 3, 12]);
}

#[test]
fn whitespace_between_fields_is_flexible() {
    let s = sched("  0\t*/5  *\n* * *\n");
    assert_eq!(values(s.minutes), (0..60).step_by(5).collect::<Vec<_>>());
    assert_eq!(s.expression(), "  0\t*/5  *\n* * *\n");
}

#[test]
fn expression_display_and_from_str() {
    let s: Schedule = "0 */5 * * * *".parse().expect("parses");
    assert_eq!(s.expression(), "0 */5 * * * *");
    assert_eq!(s.to_string(), "0 */5 * * * *");
    assert_eq!(s, Schedule::parse("0 */5 * * * *").expect("parses"));
    assert_eq!(s.clone(), s);
}

// ---------------------------------------------------------------------------------------------
// Parsing: errors
// ---------------------------------------------------------------------------------------------

fn err(expr: &str) -> ScheduleError {
    match Schedule::parse(expr) {
        Ok(s) => panic!("`{expr}` should not parse, got {s:?}"),
        Err(e) => e,
    }
}

#[test]
fn empty_expression() {
    assert_eq!(err(""), ScheduleError::Empty);
    assert_eq!(err("   \t\n"), ScheduleError::Empty);
    assert!(err("").to_string().contains("six fields"));
}

#[test]
fn wrong_field_count() {
    assert_eq!(err("*"), ScheduleError::WrongFieldCount { found: 1 });
    assert_eq!(
        err("* * * * * * *"),
        ScheduleError::WrongFieldCount { found: 7 }
    );
    let five = err("*/5 * * * *");
    assert_eq!(five, ScheduleError::WrongFieldCount { found: 5 });
    let msg = five.to_string();
    assert!(msg.contains("six are needed"), "{msg}");
    assert!(msg.contains("seconds"), "{msg}");
    assert_eq!(msg, msg.to_lowercase());
}

#[test]
fn out_of_range_values() {
    let cases = [
        ("60 * * * * *", Field::Second, "60", 0, 59),
        ("* 60 * * * *", Field::Minute, "60", 0, 59),
        ("* * 24 * * *", Field::Hour, "24", 0, 23),
        ("* * * 0 * *", Field::DayOfMonth, "0", 1, 31),
        ("* * * 32 * *", Field::DayOfMonth, "32", 1, 31),
        ("* * * * 0 *", Field::Month, "0", 1, 12),
        ("* * * * 13 *", Field::Month, "13", 1, 12),
        ("* * * * * 7", Field::DayOfWeek, "7", 0, 6),
        ("* * * * * 1-7", Field::DayOfWeek, "7", 0, 6),
        ("5-70 * * * * *", Field::Second, "70", 0, 59),
        (
            "99999999999999999999 * * * * *",
            Field::Second,
            "99999999999999999999",
            0,
            59,
        ),
    ];
    for (expr, field, value, min, max) in cases {
        assert_eq!(
            err(expr),
            ScheduleError::OutOfRange {
                field,
                value: value.to_owned(),
                min,
                max
            },
            "{expr}"
        );
    }
    let msg = err("0 0 0 * * 7").to_string();
    assert_eq!(
        msg,
        "day-of-week field: value 7 is out of range; allowed values are 0-6 \
         (0 is sunday; 7 is not accepted)"
    );
    assert_eq!(
        err("0 0 0 * 13 *").to_string(),
        "month field: value 13 is out of range; allowed values are 1-12"
    );
}

#[test]
fn zero_step() {
    assert_eq!(
        err("*/0 * * * * *"),
        ScheduleError::ZeroStep {
            field: Field::Second,
            token: "*/0".to_owned()
        }
    );
    assert_eq!(
        err("0 1-5/00 * * * *"),
        ScheduleError::ZeroStep {
            field: Field::Minute,
            token: "1-5/00".to_owned()
        }
    );
    assert_eq!(
        err("0 0 */0 * * *").to_string(),
        "hour field: step in `*/0` must be at least 1, not 0"
    );
}

#[test]
fn bad_steps() {
    for (expr, token) in [
        ("*/x * * * * *", "*/x"),
        ("*/-1 * * * * *", "*/-1"),
        ("*/5/2 * * * * *", "*/5/2"),
        ("*/1.5 * * * * *", "*/1.5"),
    ] {
        assert_eq!(
            err(expr),
            ScheduleError::InvalidStep {
                field: Field::Second,
                token: token.to_owned()
            },
            "{expr}"
        );
    }
    assert_eq!(
        err("*/ * * * * *"),
        ScheduleError::EmptyValue {
            field: Field::Second,
            token: "*/".to_owned()
        }
    );
}

#[test]
fn reversed_range() {
    assert_eq!(
        err("0 0 22-2 * * *"),
        ScheduleError::ReversedRange {
            field: Field::Hour,
            token: "22-2".to_owned(),
            start: 22,
            end: 2
        }
    );
    assert_eq!(
        err("0 0 0 * * FRI-MON/2"),
        ScheduleError::ReversedRange {
            field: Field::DayOfWeek,
            token: "FRI-MON/2".to_owned(),
            start: 5,
            end: 1
        }
    );
    let msg = err("0 0 22-2 * * *").to_string();
    assert!(
        msg.starts_with("hour field: range `22-2` is reversed"),
        "{msg}"
    );
}

#[test]
fn unknown_names() {
    assert_eq!(
        err("0 0 0 1 foo *"),
        ScheduleError::UnknownName {
            field: Field::Month,
            text: "foo".to_owned()
        }
    );
    assert_eq!(
        err("0 0 0 * * MONDAYS"),
        ScheduleError::UnknownName {
            field: Field::DayOfWeek,
            text: "MONDAYS".to_owned()
        }
    );
    assert_eq!(
        err("0 0 0 * * mon-xyz"),
        ScheduleError::UnknownName {
            field: Field::DayOfWeek,
            text: "xyz".to_owned()
        }
    );
    // Names are only allowed in the month and day-of-week fields.
    assert_eq!(
        err("0 0 jan * * *"),
        ScheduleError::InvalidValue {
            field: Field::Hour,
            text: "jan".to_owned()
        }
    );
    assert_eq!(
        err("0 0 0 1 foo *").to_string(),
        "month field: unknown name `foo`; expected a number between 1 and 12 \
         or a month name such as jan"
    );
}

#[test]
fn invalid_values() {
    for (expr, field, text) in [
        ("5x * * * * *", Field::Second, "5x"),
        ("* -5 * * * *", Field::Minute, "-5"),
        ("* * 1-2-3 * * *", Field::Hour, "2-3"),
        ("* * * *-5 * *", Field::DayOfMonth, "*"),
        ("* * * * ? *", Field::Month, "?"),
        ("* * * * * L", Field::DayOfWeek, "L"),
        ("* * * * * 1#2", Field::DayOfWeek, "1#2"),
        ("** * * * * *", Field::Second, "**"),
        ("é * * * * *", Field::Second, "é"),
    ] {
        let e = err(expr);
        match &e {
            ScheduleError::InvalidValue { field: f, text: t }
            | ScheduleError::UnknownName { field: f, text: t } => {
                assert_eq!((*f, t.as_str()), (field, text), "{expr}");
            }
            other => panic!("{expr}: unexpected error {other:?}"),
        }
    }
}

#[test]
fn empty_values() {
    for (expr, field, token) in [
        ("1,,2 * * * * *", Field::Second, "1,,2"),
        (", * * * * *", Field::Second, ","),
        ("* 1, * * * *", Field::Minute, "1,"),
        ("* * 1- * * *", Field::Hour, "1-"),
        ("* * * /5 * *", Field::DayOfMonth, "/5"),
    ] {
        assert_eq!(
            err(expr),
            ScheduleError::EmptyValue {
                field,
                token: token.to_owned()
            }
        );
    }
}

#[test]
fn error_messages_are_lower_case_and_name_the_field() {
    for expr in [
        "",
        "* * *",
        "60 * * * * *",
        "*/0 * * * * *",
        "0 0 5-1 * * *",
        "0 0 0 * FOO *",
        "0 0 0 * * 1,,2",
        "0 0 x * * *",
        "0 */q * * * *",
    ] {
        let msg = err(expr).to_string();
        let first = msg.chars().next().expect("non-empty message");
        assert!(!first.is_uppercase(), "{msg}");
        assert!(!msg.contains("Sunday") && !msg.contains("Month"), "{msg}");
    }
    assert!(err("0 0 x * * *").to_string().starts_with("hour field: "));
    assert!(
        err("0 0 0 x * *")
            .to_string()
            .starts_with("day-of-month field: ")
    );
}

// ---------------------------------------------------------------------------------------------
// Next occurrences
// ---------------------------------------------------------------------------------------------

#[test]
fn every_five_minutes() {
    assert_eq!(
        next("0 */5 * * * *", utc(2024, 3, 4, 10, 3, 7)),
        Some(utc(2024, 3, 4, 10, 5, 0))
    );
    // Strictly after: an instant exactly on an occurrence yields the following one.
    assert_eq!(
        next("0 */5 * * * *", utc(2024, 3, 4, 10, 5, 0)),
        Some(utc(2024, 3, 4, 10, 10, 0))
    );
    // Hour roll-over.
    assert_eq!(
        next("0 */5 * * * *", utc(2024, 3, 4, 10, 55, 1)),
        Some(utc(2024, 3, 4, 11, 0, 0))
    );
}

#[test]
fn every_fifteen_seconds() {
    assert_eq!(
        take("*/15 * * * * *", utc(2024, 12, 31, 23, 59, 20), 4),
        vec![
            utc(2024, 12, 31, 23, 59, 30),
            utc(2024, 12, 31, 23, 59, 45),
            utc(2025, 1, 1, 0, 0, 0),
            utc(2025, 1, 1, 0, 0, 15),
        ]
    );
}

#[test]
fn sub_second_input_is_ignored() {
    let after = utc(2024, 1, 1, 0, 0, 0) + TimeDelta::milliseconds(500);
    assert_eq!(next("* * * * * *", after), Some(utc(2024, 1, 1, 0, 0, 1)));
    assert_eq!(next("0 * * * * *", after), Some(utc(2024, 1, 1, 0, 1, 0)));
    let before = utc(2024, 1, 1, 0, 0, 0) - TimeDelta::milliseconds(1);
    assert_eq!(next("0 * * * * *", before), Some(utc(2024, 1, 1, 0, 0, 0)));
}

#[test]
fn weekdays_skip_the_weekend() {
    // 2024-03-08 is a Friday.
    assert_eq!(utc(2024, 3, 8, 0, 0, 0).weekday(), chrono::Weekday::Fri);
    let expected = Some(utc(2024, 3, 11, 9, 30, 0)); // Monday
    assert_eq!(next("0 30 9 * * 1-5", utc(2024, 3, 8, 9, 30, 0)), expected);
    assert_eq!(next("0 30 9 * * 1-5", utc(2024, 3, 9, 12, 0, 0)), expected);
    assert_eq!(
        next("0 30 9 * * MON-FRI", utc(2024, 3, 10, 23, 59, 59)),
        expected
    );
    // Friday morning, before 9:30 -> same day.
    assert_eq!(
        next("0 30 9 * * 1-5", utc(2024, 3, 8, 9, 29, 59)),
        Some(utc(2024, 3, 8, 9, 30, 0))
    );
}

#[test]
fn yearly_rolls_over() {
    assert_eq!(
        next("0 0 0 1 1 *", utc(2024, 1, 1, 0, 0, 0)),
        Some(utc(2025, 1, 1, 0, 0, 0))
    );
    assert_eq!(
        next("0 0 0 1 1 *", utc(2024, 6, 15, 12, 0, 0)),
        Some(utc(2025, 1, 1, 0, 0, 0))
    );
    assert_eq!(
        next("0 0 0 1 1 *", utc(2024, 12, 31, 23, 59, 59)),
        Some(utc(2025, 1, 1, 0, 0, 0))
    );
    assert_eq!(
        next("0 0 0 1 JAN *", utc(2023, 12, 31, 23, 59, 58)),
        Some(utc(2024, 1, 1, 0, 0, 0))
    );
}

#[test]
fn day_names() {
    // 2024-03-04 is a Monday.
    assert_eq!(
        take("0 0 12 * * sun,wed", utc(2024, 3, 4, 0, 0, 0), 3),
        vec![
            utc(2024, 3, 6, 12, 0, 0),
            utc(2024, 3, 10, 12, 0, 0),
            utc(2024, 3, 13, 12, 0, 0)
        ]
    );
    assert_eq!(
        next("0 0 0 * * Sunday", utc(2024, 3, 4, 0, 0, 0)),
        Some(utc(2024, 3, 10, 0, 0, 0))
    );
    assert_eq!(
        next("0 0 0 * * 0", utc(2024, 3, 4, 0, 0, 0)),
        Some(utc(2024, 3, 10, 0, 0, 0))
    );
}

#[test]
fn leap_day() {
    assert_eq!(
        next("0 0 0 29 2 *", utc(2024, 3, 1, 0, 0, 0)),
        Some(utc(2028, 2, 29, 0, 0, 0))
    );
    assert_eq!(
        next("0 0 0 29 2 *", utc(2023, 1, 1, 0, 0, 0)),
        Some(utc(2024, 2, 29, 0, 0, 0))
    );
    // 2100 is not a leap year.
    assert_eq!(
        next("0 0 0 29 FEB *", utc(2097, 1, 1, 0, 0, 0)),
        Some(utc(2104, 2, 29, 0, 0, 0))
    );
    // 2000 is.
    assert_eq!(
        next("0 0 0 29 2 *", utc(1999, 1, 1, 0, 0, 0)),
        Some(utc(2000, 2, 29, 0, 0, 0))
    );
    // A Feb 29 that is a Monday: 2016, then 2044.
    assert_eq!(
        next("0 0 0 29 2 1", utc(2016, 3, 1, 0, 0, 0)),
        Some(utc(2044, 2, 29, 0, 0, 0))
    );
}

#[test]
fn short_months_are_skipped() {
    assert_eq!(
        take("0 0 0 31 * *", utc(2024, 1, 31, 0, 0, 0), 3),
        vec![
            utc(2024, 3, 31, 0, 0, 0),
            utc(2024, 5, 31, 0, 0, 0),
            utc(2024, 7, 31, 0, 0, 0)
        ]
    );
    assert_eq!(
        take("0 0 0 15,31 * *", utc(2000, 1, 1, 0, 0, 0), 5),
        vec![
            utc(2000, 1, 15, 0, 0, 0),
            utc(2000, 1, 31, 0, 0, 0),
            utc(2000, 2, 15, 0, 0, 0),
            utc(2000, 3, 15, 0, 0, 0),
            utc(2000, 3, 31, 0, 0, 0),
        ]
    );
}

/// NCrontab requires BOTH day-of-month and day-of-week to match (unlike Vixie cron's OR).
#[test]
fn day_of_month_and_day_of_week_are_anded() {
    // Friday the 13th: 2024-09-13, then 2024-12-13, then 2025-06-13.
    assert_eq!(
        take("0 0 9 13 * 5", utc(2024, 1, 1, 0, 0, 0), 4),
        vec![
            utc(2024, 9, 13, 9, 0, 0),
            utc(2024, 12, 13, 9, 0, 0),
            utc(2025, 6, 13, 9, 0, 0),
            utc(2026, 2, 13, 9, 0, 0),
        ]
    );
    // With OR semantics this would fire on 2024-01-02 (the 2nd) or 2024-01-07 (a Sunday).
    assert_eq!(
        next("0 0 0 2 * SUN", utc(2024, 1, 1, 0, 0, 0)),
        Some(utc(2024, 6, 2, 0, 0, 0))
    );
    // A restricted day-of-week with `*` day-of-month is just the weekday.
    assert_eq!(
        next("0 0 0 * * SUN", utc(2024, 1, 1, 0, 0, 0)),
        Some(utc(2024, 1, 7, 0, 0, 0))
    );
}

#[test]
fn impossible_schedules_return_none_quickly() {
    let start = std::time::Instant::now();
    for expr in [
        "0 0 0 31 2 *",
        "0 0 0 30 2 *",
        "0 0 0 30,31 2 *",
        "* * * 31 4,6,9,11 *",
    ] {
        let s = sched(expr);
        assert_eq!(s.next_after(utc(2024, 1, 1, 0, 0, 0)), None, "{expr}");
        assert!(!s.matches(utc(2024, 2, 29, 0, 0, 0)));
    }
    assert!(start.elapsed() < std::time::Duration::from_secs(1));
}

#[test]
fn rare_but_possible_schedules_terminate_fast() {
    let start = std::time::Instant::now();
    // Feb 29 on a Sunday only: 2004, 2032, 2060, 2088, 2116 (2100 is not leap) ...
    let s = sched("59 59 23 29 2 0");
    let got: Vec<_> =
        std::iter::successors(s.next_after(utc(2000, 1, 1, 0, 0, 0)), |t| s.next_after(*t))
            .take(6)
            .map(|t| t.year())
            .collect();
    assert_eq!(got, vec![2004, 2032, 2060, 2088, 2128, 2156]);
    assert!(start.elapsed() < std::time::Duration::from_secs(1));
}

#[test]
fn end_of_representable_time_is_none_not_panic() {
    let s = sched("* * * * * *");
    assert_eq!(s.next_after(DateTime::<Utc>::MAX_UTC), None);
    let just_before = DateTime::<Utc>::MAX_UTC - TimeDelta::seconds(2);
    let got = s.next_after(just_before).expect("one more second fits");
    assert!(got > just_before);
    assert_eq!(
        sched("0 0 0 1 1 *").next_after(DateTime::<Utc>::MAX_UTC - TimeDelta::days(2)),
        None
    );
    assert!(
        sched("* * * * * *")
            .next_after(DateTime::<Utc>::MIN_UTC)
            .is_some()
    );
}

#[test]
fn matches_checks_every_field() {
    let s = sched("30 15 10 4 3 1"); // 2024-03-04 is a Monday
    assert!(s.matches(utc(2024, 3, 4, 10, 15, 30)));
    assert!(s.matches(utc(2024, 3, 4, 10, 15, 30) + TimeDelta::milliseconds(999)));
    assert!(!s.matches(utc(2024, 3, 4, 10, 15, 31)));
    assert!(!s.matches(utc(2024, 3, 4, 10, 16, 30)));
    assert!(!s.matches(utc(2024, 3, 4, 11, 15, 30)));
    assert!(!s.matches(utc(2025, 3, 4, 10, 15, 30))); // a Tuesday
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

/// One list element of a field, generated structurally so the tests have an oracle that does
/// not share code with the parser.
#[derive(Clone, Debug)]
enum Elem {
    Star,
    StarStep(u32),
    Value(u32),
    Range(u32, u32),
    RangeStep(u32, u32, u32),
    ValueStep(u32, u32),
    /// A value written as a name (three letters or full), in upper or lower case.
    Name(u32, bool, bool),
}

impl Elem {
    fn render(&self, field: Field) -> String {
        match *self {
            Elem::Star => "*".to_owned(),
            Elem::StarStep(n) => format!("*/{n}"),
            Elem::Value(v) => v.to_string(),
            Elem::Range(a, b) => format!("{a}-{b}"),
            Elem::RangeStep(a, b, n) => format!("{a}-{b}/{n}"),
            Elem::ValueStep(a, n) => format!("{a}/{n}"),
            Elem::Name(v, full, upper) => {
                let spec = field.spec();
                let name = spec.names[(v - spec.min) as usize];
                let name = if full { name } else { &name[..3] };
                if upper {
                    name.to_uppercase()
                } else {
                    name.to_owned()
                }
            }
        }
    }

    fn contains(&self, field: Field, x: u32) -> bool {
        let (min, max) = (field.min(), field.max());
        match *self {
            Elem::Star => (min..=max).contains(&x),
            Elem::StarStep(n) => (min..=max).contains(&x) && (x - min).is_multiple_of(n),
            Elem::Value(v) | Elem::Name(v, _, _) => x == v,
            Elem::Range(a, b) => (a..=b).contains(&x),
            Elem::RangeStep(a, b, n) => (a..=b).contains(&x) && (x - a).is_multiple_of(n),
            Elem::ValueStep(a, n) => (a..=max).contains(&x) && (x - a).is_multiple_of(n),
        }
    }
}

const FIELDS: [Field; 6] = [
    Field::Second,
    Field::Minute,
    Field::Hour,
    Field::DayOfMonth,
    Field::Month,
    Field::DayOfWeek,
];

#[derive(Clone, Debug)]
struct Model {
    fields: Vec<Vec<Elem>>,
}

impl Model {
    fn render(&self) -> String {
        FIELDS
            .iter()
            .zip(&self.fields)
            .map(|(f, elems)| {
                elems
                    .iter()
                    .map(|e| e.render(*f))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn matches(&self, t: DateTime<Utc>) -> bool {
        let parts = [
            t.second(),
            t.minute(),
            t.hour(),
            t.day(),
            t.month(),
            t.weekday().num_days_from_sunday(),
        ];
        FIELDS
            .iter()
            .zip(&self.fields)
            .zip(parts)
            .all(|((f, elems), x)| elems.iter().any(|e| e.contains(*f, x)))
    }
}

fn elem(field: Field) -> BoxedStrategy<Elem> {
    let (min, max) = (field.min(), field.max());
    let span = max - min + 1;
    let ordered = (min..=max, min..=max).prop_map(|(a, b)| (a.min(b), a.max(b)));
    let mut options = vec![
        Just(Elem::Star).boxed(),
        (1..=span + 2).prop_map(Elem::StarStep).boxed(),
        (min..=max).prop_map(Elem::Value).boxed(),
        ordered.clone().prop_map(|(a, b)| Elem::Range(a, b)).boxed(),
        (ordered, 1..=span)
            .prop_map(|((a, b), n)| Elem::RangeStep(a, b, n))
            .boxed(),
        (min..=max, 1..=span)
            .prop_map(|(a, n)| Elem::ValueStep(a, n))
            .boxed(),
    ];
    if !field.spec().names.is_empty() {
        options.push(
            (min..=max, any::<bool>(), any::<bool>())
                .prop_map(|(v, full, upper)| Elem::Name(v, full, upper))
                .boxed(),
        );
    }
    proptest::strategy::Union::new(options).boxed()
}

fn field_elems(field: Field) -> BoxedStrategy<Vec<Elem>> {
    prop::collection::vec(elem(field), 1..=3).boxed()
}

/// Any valid schedule.
fn model() -> impl Strategy<Value = Model> {
    FIELDS
        .iter()
        .map(|f| field_elems(*f))
        .collect::<Vec<_>>()
        .prop_map(|fields| Model { fields })
}

/// Schedules that fire at least every day (day, month and day-of-week are `*`), so a
/// per-second brute-force scan over a few hours is meaningful.
fn frequent_model() -> impl Strategy<Value = Model> {
    (
        field_elems(Field::Second),
        field_elems(Field::Minute),
        field_elems(Field::Hour),
    )
        .prop_map(|(s, m, h)| Model {
            fields: vec![
                s,
                m,
                h,
                vec![Elem::Star],
                vec![Elem::Star],
                vec![Elem::Star],
            ],
        })
}

/// Schedules firing once a day at a fixed time on a random set of dates, so a per-day scan
/// checks the date logic (month lengths, leap years, the day-of-month AND day-of-week rule).
fn daily_model() -> impl Strategy<Value = Model> {
    (
        (0u32..60, 0u32..60, 0u32..24),
        field_elems(Field::DayOfMonth),
        field_elems(Field::Month),
        field_elems(Field::DayOfWeek),
    )
        .prop_map(|((s, m, h), d, mo, w)| Model {
            fields: vec![
                vec![Elem::Value(s)],
                vec![Elem::Value(m)],
                vec![Elem::Value(h)],
                d,
                mo,
                w,
            ],
        })
}

/// Instants between 1970 and 2100, with a random sub-second part.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..4_102_444_800, 0u32..1_000_000_000)
        .prop_map(|(secs, nanos)| DateTime::<Utc>::from_timestamp(secs, nanos).expect("in range"))
}

/// The first whole second strictly after `t`.
fn first_second_after(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_nanosecond(0).expect("valid") + TimeDelta::seconds(1)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn parse_never_panics_on_arbitrary_strings(s in any::<String>()) {
        let _ = Schedule::parse(&s);
    }

    #[test]
    fn parse_never_panics_on_cron_like_strings(s in "[0-9a-zA-Z*/,\\- \t]{0,40}") {
        if let Ok(schedule) = Schedule::parse(&s) {
            // Whatever parses must also be usable.
            let _ = schedule.next_after(Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap());
        }
    }

    #[test]
    fn parse_never_panics_on_six_cron_like_fields(
        fields in prop::collection::vec("[0-9a-zA-Z*/,\\-]{1,12}", 6)
    ) {
        let _ = Schedule::parse(&fields.join(" "));
    }

    #[test]
    fn generated_schedules_parse_to_the_model(m in model()) {
        let expr = m.render();
        let s = Schedule::parse(&expr).map_err(|e| TestCaseError::fail(format!("{expr}: {e}")))?;
        prop_assert_eq!(s.expression(), expr.as_str());
        let sets = [s.seconds, s.minutes, s.hours, s.days_of_month, s.months, s.days_of_week];
        for ((field, elems), bits) in FIELDS.iter().zip(&m.fields).zip(sets) {
            for x in 0..64 {
                let expected = elems.iter().any(|e| e.contains(*field, x));
                prop_assert_eq!(bits.contains(x), expected, "{} {} in {}", field, x, expr);
            }
        }
    }

    #[test]
    fn next_after_is_a_later_matching_second(m in model(), t in instant(), probes in prop::collection::vec(0.0f64..1.0, 16)) {
        let expr = m.render();
        let s = Schedule::parse(&expr).expect("generated schedules parse");
        match s.next_after(t) {
            Some(r) => {
                prop_assert!(r > t, "{} after {}: {}", expr, t, r);
                prop_assert_eq!(r.nanosecond(), 0);
                prop_assert!(m.matches(r), "{} after {}: {} does not match", expr, t, r);
                // No matching second in between: check the first few seconds exhaustively
                // and sample the rest.
                let first = first_second_after(t);
                let gap = (r - first).num_seconds();
                for k in 0..gap.min(600) {
                    let c = first + TimeDelta::seconds(k);
                    prop_assert!(!m.matches(c), "{} after {}: missed {} before {}", expr, t, c, r);
                }
                for p in probes {
                    let c = first + TimeDelta::seconds((p * gap as f64) as i64);
                    prop_assert!(c >= r || !m.matches(c), "{} after {}: missed {} before {}", expr, t, c, r);
                }
                // Searching from just before the result finds the result itself.
                prop_assert_eq!(s.next_after(r - TimeDelta::seconds(1)), Some(r));
            }
            None => {
                // Only impossible day/month combinations may never fire.
                let possible = (1..=12u32).any(|mo| {
                    let longest = match mo { 2 => 29, 4 | 6 | 9 | 11 => 30, _ => 31 };
                    m.fields[4].iter().any(|e| e.contains(Field::Month, mo))
                        && (1..=longest).any(|d| m.fields[3].iter().any(|e| e.contains(Field::DayOfMonth, d)))
                });
                prop_assert!(!possible, "{} after {}: None for a possible schedule", expr, t);
            }
        }
    }

    #[test]
    fn next_after_agrees_with_per_second_scan(m in frequent_model(), t in instant()) {
        const WINDOW: i64 = 3 * 60 * 60;
        let expr = m.render();
        let s = Schedule::parse(&expr).expect("generated schedules parse");
        let first = first_second_after(t);
        let brute = (0..WINDOW).map(|k| first + TimeDelta::seconds(k)).find(|c| m.matches(*c));
        let got = s.next_after(t);
        match brute {
            Some(b) => prop_assert_eq!(got, Some(b), "{} after {}", expr, t),
            None => prop_assert!(
                got.is_some_and(|g| g >= first + TimeDelta::seconds(WINDOW)),
                "{} after {}: got {:?}", expr, t, got
            ),
        }
    }

    #[test]
    fn next_after_agrees_with_per_day_scan(m in daily_model(), t in instant()) {
        const WINDOW_DAYS: i64 = 4 * 366;
        let expr = m.render();
        let s = Schedule::parse(&expr).expect("generated schedules parse");
        let (sec, min, hour) = match (&m.fields[0][0], &m.fields[1][0], &m.fields[2][0]) {
            (Elem::Value(s), Elem::Value(m), Elem::Value(h)) => (*s, *m, *h),
            _ => unreachable!("daily_model uses fixed times"),
        };
        let day0 = t.date_naive();
        let brute = (0..=WINDOW_DAYS)
            .filter_map(|k| day0.checked_add_signed(TimeDelta::days(k)))
            .filter_map(|d| d.and_hms_opt(hour, min, sec))
            .map(|n| Utc.from_utc_datetime(&n))
            .find(|c| *c > t && m.matches(*c));
        let got = s.next_after(t);
        match brute {
            Some(b) => prop_assert_eq!(got, Some(b), "{} after {}", expr, t),
            None => prop_assert!(
                got.is_none_or(|g| g.date_naive() > day0 + TimeDelta::days(WINDOW_DAYS)),
                "{} after {}: got {:?}", expr, t, got
            ),
        }
    }
}
