//! The provider against a fake BILL over real HTTP, answering as BILL's v3 documentation
//! says: `POST /v3/login` (user, password, organization and developer key; a bad pair is
//! `BDC_1101`, a bad developer key `BDC_1102`) opens a session; later calls carry `devKey`
//! and `sessionId` headers, and a session that has ended answers `BDC_1109` ("Session is
//! invalid. Please log in."); errors are lists of `{timestamp, code, severity, category,
//! message}`; payments of bills (dollars) are `SCHEDULED` when made.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use domain::{CredentialKind, FailureClassification};
use integration_kit::testing::{
    Case, FakeVendor, Harness, Perform, Recorded, Reply, assert_no_secret, conformance,
};
use serde_json::{Value, json};

use super::*;

const DEV_KEY: &str = "01ABCDEFGHIJKLMNOPQRSTUV0123456789";
const PASSWORD: &str = "correct-horse-battery-staple";
const ORG: &str = "00801ABCDEFGHIJ";

#[derive(Default)]
struct Org {
    logins: u32,
    /// Sessions that are open.
    sessions: Vec<String>,
    /// Bills by id: (vendor, amount in dollars).
    bills: BTreeMap<String, (String, f64)>,
    payments: BTreeMap<String, Value>,
}

fn error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        json!([{"timestamp": "2026-12-08T05:00:00.000+00:00", "code": code,
                "severity": "ERROR", "category": "DOWNSTREAM", "message": message}]),
    )
}

fn bill(org: Arc<Mutex<Org>>) -> impl Fn(&Recorded, usize) -> Reply + Send + Sync {
    move |r, _| {
        let mut org = org.lock().unwrap();
        let body = r.json();
        if r.path == "/v3/login" {
            if body["devKey"] != DEV_KEY {
                return error(401, "BDC_1102", "Invalid devKey");
            }
            if body["username"] != "ap@example.com"
                || body["password"] != PASSWORD
                || body["organizationId"] != ORG
            {
                return error(401, "BDC_1101", "Incorrect userName or password");
            }
            org.logins += 1;
            let session = format!("!{}!session{:04}", ORG, org.logins);
            org.sessions.push(session.clone());
            return Reply::json(
                200,
                json!({"sessionId": session, "organizationId": ORG, "userId": "006001",
                       "trusted": body["rememberMeId"].is_string()}),
            );
        }
        if r.header("devkey") != Some(DEV_KEY) {
            return error(401, "BDC_1102", "Invalid devKey");
        }
        if !r
            .header("sessionid")
            .is_some_and(|s| org.sessions.iter().any(|open| open == s))
        {
            return error(401, "BDC_1109", "Session is invalid. Please log in.");
        }
        match (r.method.as_str(), r.path.as_str()) {
            ("POST", "/v3/payments") => {
                let Some((vendor, owed)) = body["billId"]
                    .as_str()
                    .and_then(|b| org.bills.get(b).cloned())
                else {
                    return error(400, "BDC_1243", "Invalid bill id");
                };
                let amount = body["amount"].as_f64().unwrap_or(0.0);
                if amount <= 0.0 || amount > owed {
                    return error(
                        400,
                        "BDC_1250",
                        "Payment amount is more than the amount due",
                    );
                }
                if !body["fundingAccount"]["type"].is_string() {
                    return error(400, "BDC_1001", "fundingAccount is required");
                }
                let id = format!("stp01{:010}", org.payments.len() + 1);
                let payment = json!({"id": id, "billId": body["billId"], "vendorId": vendor,
                    "amount": amount, "description": body["description"],
                    "processDate": body.get("processDate").cloned().unwrap_or(json!("2026-12-09")),
                    "fundingAccount": body["fundingAccount"],
                    "status": "SCHEDULED", "singleStatus": "SCHEDULED",
                    "createdTime": "2026-12-08T05:00:00.000+00:00"});
                org.payments.insert(id, payment.clone());
                Reply::json(200, payment)
            }
            ("GET", p) if p.starts_with("/v3/payments/") => {
                match org.payments.get(&p["/v3/payments/".len()..]) {
                    Some(payment) => Reply::json(200, payment.clone()),
                    None => error(404, "BDC_1145", "Payment not found"),
                }
            }
            _ => error(404, "BDC_1000", "Not found"),
        }
    }
}

fn credential() -> Value {
    json!({"username": "ap@example.com", "password": PASSWORD, "apiKey": DEV_KEY,
           "rememberMeId": "remember-device-0123456789"})
}

fn harness(base: &str) -> Harness {
    Harness::new(
        "bill",
        CredentialKind::Basic,
        credential(),
        json!({"baseUrl": base, "organizationId": ORG, "device": "platform",
               "fundingAccount": {"type": "BANK_ACCOUNT", "id": "bac01ABCDEF"}}),
    )
}

fn org_with_bill() -> Arc<Mutex<Org>> {
    let org = Arc::new(Mutex::new(Org::default()));
    org.lock()
        .unwrap()
        .bills
        .insert("00n01BILL0001".into(), ("00901VENDOR01".into(), 300.0));
    org
}

#[tokio::test]
async fn a_bill_is_paid_and_read_in_one_session() {
    let org = org_with_bill();
    let fake = FakeVendor::start(bill(org.clone())).await;
    let h = harness(&fake.base);
    Bill.test_connection(&h.call()).await.expect("signed in");
    let paid = Perform::<PayBill>::perform(
        &Bill,
        &h.call(),
        &json!({"billId": "00n01BILL0001", "amount": 12550, "currency": "USD"}),
    )
    .await
    .expect("paid");
    let id = paid.output["paymentId"].as_str().unwrap().to_owned();
    assert_eq!(paid.output["status"], "processing");
    assert_eq!(paid.vendor_message_id.as_deref(), Some(id.as_str()));
    let sent = fake
        .requests()
        .into_iter()
        .find(|r| r.path == "/v3/payments")
        .unwrap();
    let body = sent.json();
    assert_eq!(body["amount"], 125.5, "dollars, from cents");
    assert_eq!(body["fundingAccount"]["id"], "bac01ABCDEF");
    assert_eq!(
        body["description"],
        format!("run {}", h.idempotency_key.as_deref().unwrap())
    );
    let read = Perform::<GetPayment>::perform(&Bill, &h.call(), &json!({"paymentId": id}))
        .await
        .expect("read");
    assert_eq!(read.output["status"], "processing");
    assert_eq!(read.output["processorStatus"], "SCHEDULED");
    assert_eq!(read.output["amount"], 12550);
    assert_eq!(read.output["currency"], "usd");
    // The sign-in of the connection test served every call after it.
    assert_eq!(org.lock().unwrap().logins, 1);
    let login = fake
        .requests()
        .into_iter()
        .find(|r| r.path == "/v3/login")
        .unwrap();
    assert_eq!(login.json()["rememberMeId"], "remember-device-0123456789");
    assert_eq!(login.json()["device"], "platform");

    // BILL moves the payment on; the read says so.
    org.lock().unwrap().payments.get_mut(&id).unwrap()["singleStatus"] = json!("CLEARED");
    let read = Perform::<GetPayment>::perform(&Bill, &h.call(), &json!({"paymentId": id}))
        .await
        .expect("read");
    assert_eq!(read.output["status"], "succeeded");
    // More than the bill is refused by BILL, with its code.
    let e = Perform::<PayBill>::perform(
        &Bill,
        &h.call(),
        &json!({"billId": "00n01BILL0001", "amount": 90000, "currency": "usd"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Validation);
    assert_eq!(e.failure.vendor_code.as_deref(), Some("BDC_1250"));
    assert!(
        e.failure.message.contains("more than the amount due"),
        "{e:?}"
    );
}

#[tokio::test]
async fn an_ended_session_is_opened_again_once() {
    let org = org_with_bill();
    let fake = FakeVendor::start(bill(org.clone())).await;
    let h = harness(&fake.base);
    Bill.test_connection(&h.call()).await.expect("signed in");
    // BILL ends the session (35 idle minutes): the next call signs in again and succeeds.
    org.lock().unwrap().sessions.clear();
    let paid = Perform::<PayBill>::perform(
        &Bill,
        &h.call(),
        &json!({"billId": "00n01BILL0001", "amount": 100, "currency": "usd"}),
    )
    .await
    .expect("paid after signing in again");
    assert_eq!(paid.output["status"], "processing");
    assert_eq!(org.lock().unwrap().logins, 2);
    assert_eq!(org.lock().unwrap().payments.len(), 1, "one payment");

    // A BILL that refuses every session: one more sign-in, then an auth failure, no loop.
    let refusing = FakeVendor::start(|r, _| {
        if r.path == "/v3/login" {
            Reply::json(
                200,
                json!({"sessionId": "s", "organizationId": ORG, "userId": "006"}),
            )
        } else {
            error(401, "BDC_1109", "Session is invalid. Please log in.")
        }
    })
    .await;
    let e = Perform::<GetPayment>::perform(
        &Bill,
        &harness(&refusing.base).call(),
        &json!({"paymentId": "stp01X"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Auth);
    let logins = refusing
        .requests()
        .iter()
        .filter(|r| r.path == "/v3/login")
        .count();
    assert_eq!(logins, 2);
}

#[tokio::test]
async fn bad_credentials_are_auth_failures_without_the_secrets() {
    let fake = FakeVendor::start(bill(org_with_bill())).await;
    for (field, value, code) in [
        ("password", "wrong-password-123", "BDC_1101"),
        ("apiKey", "wrong-dev-key-0000", "BDC_1102"),
    ] {
        let mut secret = credential();
        secret[field] = json!(value);
        let h = Harness::new(
            "bill",
            CredentialKind::Basic,
            secret,
            json!({"baseUrl": fake.base, "organizationId": ORG,
                   "fundingAccount": {"type": "WALLET"}}),
        );
        let e = Bill.test_connection(&h.call()).await.unwrap_err();
        assert_eq!(e.class(), FailureClassification::Auth, "{field}");
        assert_eq!(e.failure.vendor_code.as_deref(), Some(code));
        assert_no_secret(&e, &[value, PASSWORD, DEV_KEY]);
    }
}

#[tokio::test]
async fn a_payment_is_never_sent_twice_after_an_outage() {
    let fake = FakeVendor::start(|r, _| {
        if r.path == "/v3/login" {
            Reply::json(
                200,
                json!({"sessionId": "s1", "organizationId": ORG, "userId": "006"}),
            )
        } else {
            error(503, "BDC_1001", "Service unavailable")
        }
    })
    .await;
    let e = Perform::<PayBill>::perform(
        &Bill,
        &harness(&fake.base).attempts(3).call(),
        &json!({"billId": "00n01BILL0001", "amount": 100, "currency": "usd"}),
    )
    .await
    .unwrap_err();
    assert!(!e.retryable, "BILL has no idempotency key for payments");
    let posts = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/v3/payments")
        .count();
    assert_eq!(posts, 1);
}

#[test]
fn statuses_are_normalised() {
    let status = |single: &str| {
        read_payment(&json!({"id": "stp01", "amount": 1.5, "singleStatus": single}))
            .unwrap()
            .status
    };
    for (word, expected) in [
        ("SCHEDULED", PaymentStatus::Processing),
        ("SENT", PaymentStatus::Processing),
        ("CLEARED", PaymentStatus::Succeeded),
        ("DELIVERED", PaymentStatus::Succeeded),
        ("VOIDED", PaymentStatus::Canceled),
        ("CANCELED", PaymentStatus::Canceled),
        (
            "FUNDING_FAILED_ACTION_NEEDED",
            PaymentStatus::RequiresAction,
        ),
    ] {
        assert_eq!(status(word), expected, "{word}");
    }
    // `status` when there is no `singleStatus` (BILL spells a cancellation with two Ls there).
    let p = read_payment(&json!({"id": "stp01", "amount": 10.07, "status": "CANCELLED"})).unwrap();
    assert_eq!(p.status, PaymentStatus::Canceled);
    assert_eq!(p.amount, 1007, "dollars to cents without float drift");
    assert!(
        read_payment(&json!({"id": "stp01", "amount": 1, "singleStatus": "EXPLODED"})).is_err()
    );
    assert!(read_payment(&json!({"id": "stp01", "singleStatus": "SENT"})).is_err());
}

#[test]
fn payment_events_ask_for_a_look_at_their_payment() {
    let webhook = |body: Value| {
        let bytes = body.to_string().into_bytes();
        let config = domain::ConnectionConfig::default();
        Bill.webhook(&VendorWebhook {
            event_type: None,
            delivery_id: None,
            content_type: None,
            body: &bytes,
            config: &config,
        })
        .unwrap()
    };
    let looks = webhook(
        json!({"metadata": {"eventId": "e1", "eventType": "payment.updated"},
                               "payment": {"id": "stp01ABC", "status": "SENT"}}),
    );
    assert!(
        matches!(looks.as_slice(), [WebhookEffect::Reconcile { record_id }] if record_id == "stp01ABC"),
        "{looks:?}"
    );
    assert!(
        webhook(json!({"metadata": {"eventType": "bill.updated"}, "bill": {"id": "00n1"}}))
            .is_empty()
    );
    assert!(
        webhook(json!({"metadata": {"eventType": "payment.failed"}, "payment": {"id": "../x"}}))
            .is_empty()
    );
}

#[test]
fn configs_name_the_organization_and_a_funding_account() {
    use integration_kit::ProviderConfig as _;
    let config = |v: Value| serde_json::from_value::<BillConfig>(v).unwrap().check();
    assert!(config(json!({"organizationId": ORG, "fundingAccount": {"type": "WALLET"}})).is_ok());
    let e =
        config(json!({"organizationId": "123", "fundingAccount": {"type": "WALLET"}})).unwrap_err();
    assert_eq!(e.path, "organizationId");
    let e = config(json!({"organizationId": ORG, "fundingAccount": {"type": "BANK_ACCOUNT"}}))
        .unwrap_err();
    assert_eq!(e.path, "fundingAccount/id");
    let e = config(json!({"organizationId": ORG, "fundingAccount": {"type": "GOLD"}})).unwrap_err();
    assert_eq!(e.path, "fundingAccount/type");
}

struct Script;

impl integration_kit::testing::VendorScript for Script {
    fn reply(&self, case: Case, request: &Recorded) -> Result<Reply, &'static str> {
        if request.path == "/v3/login" {
            return Ok(Reply::json(
                200,
                json!({"sessionId": "s1", "organizationId": ORG, "userId": "006"}),
            ));
        }
        Ok(match case {
            Case::Success => Reply::json(
                200,
                json!({"id": "stp01A", "amount": 1.0, "status": "SCHEDULED", "singleStatus": "SCHEDULED"}),
            ),
            Case::Invalid => error(400, "BDC_1243", "Invalid bill id"),
            Case::Unauthorized => error(401, "BDC_1101", "Incorrect userName or password"),
            Case::Throttled => return Err("BILL's limits (BDC_1144, BDC_1322) say no wait"),
            Case::ServerError => error(500, "BDC_1000", "Internal error"),
            Case::Malformed => Reply::text(200, "<html>"),
        })
    }
}

#[tokio::test]
async fn conformance_of_every_operation() {
    let throttled_only = |skipped: Vec<(Case, &'static str)>| {
        assert_eq!(
            skipped.iter().map(|s| s.0).collect::<Vec<_>>(),
            vec![Case::Throttled]
        );
    };
    throttled_only(
        conformance::<PayBill, _, _>(
            &Bill,
            Script,
            harness,
            json!({"billId": "00n01BILL0001", "amount": 100, "currency": "usd"}),
            &[PASSWORD, DEV_KEY],
            false,
        )
        .await,
    );
    throttled_only(
        conformance::<GetPayment, _, _>(
            &Bill,
            Script,
            harness,
            json!({"paymentId": "stp01A"}),
            &[PASSWORD, DEV_KEY],
            true,
        )
        .await,
    );
}
