//! 019's delivery reports (DLR), pulled and pushed.
//!
//! - Pull, the `dlr` operation: `POST {base}/api` with
//!   `{"dlr":{"user":{"username"},"transactions":{"external_id":[…]},"from","to"}}`, dates as
//!   `dd/mm/yy hh:mm`, at most 1,000 ids and a window of at most one week per request. The
//!   answer carries the request `status` (0: the report was produced) and one transaction per
//!   id 019 has a report for: `external_id`, `status` (the DLR scale below), `he_message`,
//!   `en_message`, `phone`, `date`. The JSON layout of the list is not documented, so every
//!   layout seen is read: an array, `{"transaction": object | array}`, or one object.
//! - Push: 019 can POST the same fields, form-encoded, to a URL set up with them. The push
//!   is not signed, so the URL carries the `code` derived from the token (as Event Grid
//!   receipts do), and a push without the right code is refused.
//!
//! The DLR scale (019's errors-and-status table): 0 and 102 delivered; -1 (sent, no
//! confirmation) and 2 (no confirmation within the carrier's window) sent, outcome unknown;
//! 7 (no balance), 16 (not allowed at this hour), 18 (illegal message), 998 (no permission)
//! and 999 (unknown error) are 019 not sending; everything else (1, 3-6, 14, 15, 17, 101,
//! 103-132, 201, 747…) is the carrier not delivering.

use chrono::{DateTime, TimeDelta, Utc};
use integration_kit::{DeliveryState, PendingReceipt, Receipt};
use serde_json::{Value, json};

use super::number;

/// The most ids one `dlr` request may carry.
pub const MAX_IDS: usize = 1000;

/// The state a DLR status means.
pub fn state(status: i64) -> DeliveryState {
    match status {
        0 | 102 => DeliveryState::Delivered,
        -1 | 2 => DeliveryState::Sent,
        7 | 16 | 18 | 998 | 999 => DeliveryState::Failed,
        _ => DeliveryState::Undelivered,
    }
}

/// The `dlr` request for `pending` (at most [`MAX_IDS`]).
pub fn request(username: &str, pending: &[PendingReceipt], now: DateTime<Utc>) -> Value {
    let (from, to) = window(pending, now);
    let ids: Vec<&str> = pending.iter().map(|p| p.message_id.as_str()).collect();
    json!({
        "dlr": {
            "user": {"username": username},
            "transactions": {"external_id": ids},
            "from": from,
            "to": to,
        }
    })
}

/// The dates of a request: from a little before the oldest send to a little after now, at
/// most a week. 019 does not say which time zone its dates are in; the three-hour margins
/// cover Israel's offset from UTC either way.
fn window(pending: &[PendingReceipt], now: DateTime<Utc>) -> (String, String) {
    let margin = TimeDelta::hours(3);
    let to = now + margin;
    let oldest = pending.iter().map(|p| p.sent_at).min().unwrap_or(now);
    let from = (oldest - margin).max(to - TimeDelta::days(7) + TimeDelta::minutes(1));
    let fmt = |t: DateTime<Utc>| t.format("%d/%m/%y %H:%M").to_string();
    (fmt(from), fmt(to))
}

/// The receipts in a `dlr` answer whose request status was 0 (the classifier has refused the
/// others); `None` when it is not a DLR answer at all.
pub fn read(body: &[u8]) -> Option<Vec<Receipt>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let fields = v.get("dlr").filter(|d| d.is_object()).unwrap_or(&v);
    number(&fields["status"])?;
    let list = match &fields["transactions"] {
        Value::Null => return Some(Vec::new()),
        Value::Array(items) => items.iter().collect::<Vec<_>>(),
        Value::Object(m) => match m.get("transaction") {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(item @ Value::Object(_)) => vec![item],
            Some(_) => return None,
            None => vec![&fields["transactions"]],
        },
        // An empty report is sometimes an empty string in XML-shaped JSON.
        Value::String(s) if s.trim().is_empty() => return Some(Vec::new()),
        _ => return None,
    };
    list.into_iter()
        .map(|t| {
            let id = match &t["external_id"] {
                Value::String(s) if !s.is_empty() => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            };
            Some(receipt(id, number(&t["status"])?, t["en_message"].as_str()))
        })
        .collect()
}

/// The receipts of one pushed report (form fields named as in the pulled answer).
pub fn read_push(body: &[u8]) -> Option<Vec<Receipt>> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let id = get("external_id").filter(|s| !s.is_empty())?;
    let status = get("status")?.trim().parse().ok()?;
    Some(vec![receipt(id.to_owned(), status, get("en_message"))])
}

fn receipt(message_id: String, status: i64, words: Option<&str>) -> Receipt {
    // 019's own gloss, kept short: it is for people reading the run.
    let detail = match words.map(str::trim).filter(|w| !w.is_empty()) {
        Some(w) => format!("{status}: {}", w.chars().take(80).collect::<String>()),
        None => status.to_string(),
    };
    Receipt {
        message_id,
        state: state(status),
        detail: Some(detail),
    }
}

#[cfg(test)]
mod tests {
    use proptest::strategy::Strategy as _;

    use super::*;

    proptest::proptest! {
        /// 019's pulled answers and pushed reports, whatever their bytes (or whatever a
        /// transaction holds in an answer of the right shape), are read or refused without
        /// a panic, and every receipt read names a message.
        #[test]
        fn reports_of_any_shape_are_read_without_panic(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
            id in proptest::prop_oneof![
                "\\PC{0,30}".prop_map(serde_json::Value::from),
                proptest::num::i64::ANY.prop_map(serde_json::Value::from),
                proptest::strategy::Just(serde_json::Value::Null),
            ],
            status in proptest::prop_oneof![
                proptest::num::i64::ANY.prop_map(serde_json::Value::from),
                "\\PC{0,10}".prop_map(serde_json::Value::from),
            ],
            words in "\\PC{0,200}",
        ) {
            let shaped = serde_json::to_vec(&serde_json::json!({"dlr": {"status": 0,
                "transactions": {"transaction": [{"external_id": id, "status": status, "en_message": words}]}}}))
            .unwrap();
            let push = format!(
                "external_id={}&status={}&en_message={}",
                id.as_str().unwrap_or_default(),
                status,
                words
            );
            for body in [&bytes[..], &shaped[..], push.as_bytes()] {
                for receipts in [read(body), read_push(body)].into_iter().flatten() {
                    for r in receipts {
                        proptest::prop_assert!(!r.message_id.is_empty());
                        proptest::prop_assert!(r.detail.as_ref().is_none_or(|d| d.chars().count() <= 110));
                    }
                }
            }
        }
    }

    fn pending(id: &str, sent_at: DateTime<Utc>) -> PendingReceipt {
        PendingReceipt {
            message_id: id.into(),
            sent_at,
        }
    }

    #[test]
    fn the_scale_has_four_buckets() {
        for s in [0, 102] {
            assert_eq!(state(s), DeliveryState::Delivered, "{s}");
        }
        for s in [-1, 2] {
            assert_eq!(state(s), DeliveryState::Sent, "{s}");
        }
        for s in [7, 16, 18, 998, 999] {
            assert_eq!(state(s), DeliveryState::Failed, "{s}");
        }
        for s in [1, 3, 4, 5, 6, 14, 15, 17, 101, 103, 104, 108, 132, 201, 747] {
            assert_eq!(state(s), DeliveryState::Undelivered, "{s}");
        }
    }

    #[test]
    fn the_window_covers_the_oldest_send_and_never_exceeds_a_week() {
        let now = DateTime::parse_from_rfc3339("2026-11-27T10:30:00Z")
            .unwrap()
            .to_utc();
        let body = request(
            "me",
            &[
                pending("a", now - TimeDelta::minutes(10)),
                pending("b", now - TimeDelta::hours(1)),
            ],
            now,
        );
        assert_eq!(
            body,
            json!({"dlr": {
                "user": {"username": "me"},
                "transactions": {"external_id": ["a", "b"]},
                "from": "27/11/26 06:30",
                "to": "27/11/26 13:30",
            }})
        );
        let old = request("me", &[pending("c", now - TimeDelta::days(8))], now);
        assert_eq!(old["dlr"]["from"], "20/11/26 13:31", "{old}");
    }

    #[test]
    fn every_layout_of_the_list_is_read() {
        let one = json!({"external_id": "r1", "status": "102", "en_message": "Delivered"});
        let two = json!({"external_id": 42, "status": 4, "he_message": "נכשל סלולר"});
        for body in [
            json!({"status": 0, "transactions": [one, two]}),
            json!({"status": "0", "transactions": {"transaction": [one, two]}}),
            json!({"dlr": {"status": 0, "message": "", "transactions": [one, two]}}),
        ] {
            let got = read(body.to_string().as_bytes()).unwrap();
            assert_eq!(got.len(), 2, "{body}");
            assert_eq!(got[0].message_id, "r1");
            assert_eq!(got[0].state, DeliveryState::Delivered);
            assert_eq!(got[0].detail.as_deref(), Some("102: Delivered"));
            assert_eq!(got[1].message_id, "42");
            assert_eq!(got[1].state, DeliveryState::Undelivered);
            assert_eq!(got[1].detail.as_deref(), Some("4"));
        }
        for body in [
            json!({"status": 0, "transactions": {"transaction": one}}),
            json!({"status": 0, "transactions": one}),
        ] {
            assert_eq!(
                read(body.to_string().as_bytes()).unwrap().len(),
                1,
                "{body}"
            );
        }
        for body in [
            json!({"status": 0}),
            json!({"status": 0, "transactions": []}),
            json!({"status": 0, "transactions": ""}),
        ] {
            assert_eq!(read(body.to_string().as_bytes()), Some(vec![]), "{body}");
        }
        // Not a DLR answer, or a transaction without its id or status.
        for body in [
            json!({"transactions": [one]}),
            json!({"status": 0, "transactions": [{"status": 0}]}),
            json!({"status": 0, "transactions": [{"external_id": "x"}]}),
            json!({"status": 0, "transactions": 5}),
        ] {
            assert_eq!(read(body.to_string().as_bytes()), None, "{body}");
        }
        assert_eq!(read(b"<dlr/>"), None);
    }

    #[test]
    fn a_push_is_read_from_its_form_fields() {
        let got = read_push(
            b"external_id=run-1&status=103&he_message=%D7%A4%D7%92&en_message=Expired&phone=0501234567&date=27%2F11%2F26+12%3A00",
        )
        .unwrap();
        assert_eq!(
            got,
            vec![Receipt {
                message_id: "run-1".into(),
                state: DeliveryState::Undelivered,
                detail: Some("103: Expired".into()),
            }]
        );
        assert_eq!(read_push(b"status=0"), None);
        assert_eq!(read_push(b"external_id=x&status=delivered"), None);
    }
}
