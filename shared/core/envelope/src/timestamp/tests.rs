use super::*;

#[test]
fn keeps_fractional_precision() {
    for (input, output) in [
        ("2024-05-01T12:30:05Z", "2024-05-01T12:30:05Z"),
        ("2024-05-01T12:30:05.1Z", "2024-05-01T12:30:05.1Z"),
        ("2024-05-01T12:30:05.120Z", "2024-05-01T12:30:05.120Z"),
        ("2024-05-01T12:30:05.000000Z", "2024-05-01T12:30:05.000000Z"),
        (
            "2024-05-01T12:30:05.123456789Z",
            "2024-05-01T12:30:05.123456789Z",
        ),
        ("2024-05-01T14:30:05.5+02:00", "2024-05-01T12:30:05.5Z"),
        ("2024-05-01T12:30:05.5-00:00", "2024-05-01T12:30:05.5Z"),
    ] {
        let t = Timestamp::parse(input).unwrap();
        assert_eq!(t.to_string(), output, "{input}");
        assert_eq!(Timestamp::parse(output).unwrap(), t, "{input}");
    }
}

#[test]
fn rejects_non_rfc3339() {
    for input in [
        "",
        "2024-05-01",
        "2024-05-01T12:30:05",
        "2024-13-01T12:30:05Z",
        "yesterday",
        "2024-05-01T12:30:05.Z",
        "0000-01-01T00:30:00+01:00",
    ] {
        let err = Timestamp::parse(input).unwrap_err();
        assert_eq!(err.attribute(), Some("time"), "{input}");
    }
}

#[test]
fn from_datetime_picks_the_shortest_exact_precision() {
    use chrono::TimeZone;
    let base = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
    let cases = [(0, 0), (5_000_000, 3), (5_000, 6), (5, 9)];
    for (nanos, precision) in cases {
        let t = Timestamp::from(base + chrono::Duration::nanoseconds(nanos));
        assert_eq!(t.precision(), precision);
        assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t);
    }
}

#[test]
fn leap_seconds_round_trip() {
    for input in ["2016-12-31T23:59:60Z", "2016-12-31T23:59:60.25Z"] {
        let t = Timestamp::parse(input).unwrap();
        assert_eq!(t.to_string(), input);
        assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t);
    }
}

#[test]
fn odd_but_accepted_forms_normalise() {
    // chrono accepts lower-case separators; the output is canonical and parses back equal.
    let t = Timestamp::parse("2024-05-01t12:30:05.5z").unwrap();
    assert_eq!(t.to_string(), "2024-05-01T12:30:05.5Z");
    let long = Timestamp::parse("2024-05-01T12:30:05.1234567891234Z");
    if let Ok(t) = long {
        assert_eq!(t.precision(), 9);
        assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t);
    }
}
