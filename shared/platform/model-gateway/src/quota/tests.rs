use std::sync::Arc;

use chrono::TimeZone as _;
use embedded::{Durability, SqliteDocumentStore};

use super::*;

const APP: &str = "openai";

fn store() -> (tempfile::TempDir, Arc<dyn DocumentStore>) {
    let dir = tempfile::tempdir().unwrap();
    let docs = SqliteDocumentStore::open(&dir.path().join("docs.db"), Durability::Normal).unwrap();
    (dir, Arc::new(docs))
}

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 8, 10, 30, 15).unwrap()
}

fn tokens(input: u64, output: u64) -> Tokens {
    Tokens {
        input,
        output,
        cached: 0,
    }
}

fn ask(t: Tokens) -> Ask<'static> {
    Ask {
        subject: "agent-1",
        model: "gpt-4o-mini",
        tokens: t,
    }
}

fn tpm(limit: u64) -> Limits {
    Limits {
        tenant: Rate {
            requests_per_minute: None,
            tokens_per_minute: Some(limit),
        },
        ..Limits::default()
    }
}

/// What the instances leased of a meter's window, as the store has it.
async fn leased(docs: &Arc<dyn DocumentStore>, name: &str, window: &str) -> u64 {
    let meter = Meter {
        tenant: "t1".into(),
        name: name.into(),
        window: window.into(),
    };
    docs.read(APP, "t1", &meter.doc_id())
        .await
        .unwrap()
        .unwrap()
        .body["leased"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_instances_on_one_store_never_admit_past_the_limit() {
    let (_dir, docs) = store();
    let instances: Vec<Arc<Quotas>> = (0..4)
        .map(|_| Arc::new(Quotas::new(docs.clone(), APP)))
        .collect();
    let limits = Arc::new(tpm(10_000));
    let each = tokens(10, 100);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let q = instances[i % 4].clone();
        let limits = limits.clone();
        tasks.push(tokio::spawn(async move {
            q.admit("t1", &limits, &ask(each), at()).await.is_ok()
        }));
    }
    let mut admitted = 0u64;
    for t in tasks {
        admitted += u64::from(t.await.unwrap());
    }
    assert!(
        admitted * each.total() <= 10_000,
        "{admitted} admitted of 110 tokens each"
    );
    // What the slices left unleased at the end is small: most of the budget was usable.
    assert!(admitted >= 75, "only {admitted} admitted");
    let window = format!("m{}", at().timestamp() / 60);
    assert!(leased(&docs, "tenant.tokens", &window).await <= 10_000);
}

#[tokio::test]
async fn settling_returns_the_unused_reserve_and_counts_an_overrun_truthfully() {
    let (_dir, docs) = store();
    let q = Quotas::new(docs.clone(), APP);
    let limits = tpm(1_000);
    let first = q
        .admit("t1", &limits, &ask(tokens(0, 500)), at())
        .await
        .unwrap();
    q.settle(first, tokens(40, 60), 0).await;
    // 400 of the 500 came back: 800 more fit in the 1000.
    let second = q
        .admit("t1", &limits, &ask(tokens(0, 800)), at())
        .await
        .unwrap();
    let refused = q
        .admit("t1", &limits, &ask(tokens(0, 200)), at())
        .await
        .unwrap_err()
        .unwrap();
    assert_eq!(refused.unit, "tokens");
    assert_eq!(refused.limit, 1_000);
    assert_eq!(
        refused.reset_in,
        Duration::from_secs(45),
        "the minute's end"
    );
    // The second used 1,500 instead of 800: the store says so, past the limit.
    q.settle(second, tokens(500, 1_000), 0).await;
    let window = format!("m{}", at().timestamp() / 60);
    assert!(leased(&docs, "tenant.tokens", &window).await >= 1_600);
    assert!(
        q.admit("t1", &limits, &ask(tokens(0, 1)), at())
            .await
            .is_err()
    );
    // The next minute is a new window.
    let later = at() + chrono::TimeDelta::seconds(60);
    assert!(
        q.admit("t1", &limits, &ask(tokens(0, 900)), later)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn every_scope_and_the_spend_budget_refuse_on_their_own() {
    let (_dir, docs) = store();
    let q = Quotas::new(docs, APP);
    let mut limits = Limits {
        spend_per_day: Some(0.01),
        prices: Some(Prices {
            version: "2026-12-01".into(),
            currency: "USD".into(),
            models: [(
                "gpt-4o-mini".to_owned(),
                Price {
                    input_per_million: 0.15,
                    output_per_million: 0.60,
                    cached_input_per_million: Some(0.075),
                },
            )]
            .into(),
        }),
        ..Limits::default()
    };
    limits.check().unwrap();
    // 10,000 output tokens cost 6,000 micro-dollars: one fits in a cent, two do not.
    let big = ask(tokens(0, 10_000));
    assert_eq!(limits.cost_micros("gpt-4o-mini", &big.tokens), Some(6_000));
    let first = q.admit("t1", &limits, &big, at()).await.unwrap();
    assert_eq!(first.reserved_cost_micros, 6_000);
    let refused = q
        .admit("t1", &limits, &big, at())
        .await
        .unwrap_err()
        .unwrap();
    assert_eq!(refused.unit, "spend");
    assert_eq!(refused.scope, "the tenant's daily");
    assert_eq!(
        refused.reset_in,
        Duration::from_secs(13 * 3600 + 29 * 60 + 45)
    );
    // A subject's own rate, apart from the tenant's.
    limits.spend_per_day = None;
    limits.subjects.insert(
        "agent-1".into(),
        Rate {
            requests_per_minute: Some(2),
            tokens_per_minute: None,
        },
    );
    q.admit("t1", &limits, &ask(tokens(1, 1)), at())
        .await
        .unwrap();
    q.admit("t1", &limits, &ask(tokens(1, 1)), at())
        .await
        .unwrap();
    let refused = q
        .admit("t1", &limits, &ask(tokens(1, 1)), at())
        .await
        .unwrap_err()
        .unwrap();
    assert_eq!(
        (refused.unit, refused.scope.as_str()),
        ("requests", "subject agent-1's")
    );
    let other = Ask {
        subject: "agent-2",
        ..ask(tokens(1, 1))
    };
    q.admit("t1", &limits, &other, at()).await.unwrap();
}

#[test]
fn limits_are_checked_and_costs_and_estimates_add_up() {
    let bad = [
        (json!({"tokensPerMinute": 0}), "tokensPerMinute"),
        (json!({"spendPerDay": 5.0}), "spendPerDay"),
        (
            json!({"models": {"m": {"requestsPerMinute": 0}}}),
            "models.m.requestsPerMinute",
        ),
        (
            json!({"prices": {"version": "v1", "currency": "usd", "models": {}}}),
            "prices.currency",
        ),
        (
            json!({"prices": {"version": "v1", "currency": "USD",
                              "models": {"m": {"inputPerMillion": -1.0, "outputPerMillion": 1.0}}}}),
            "prices.models.m",
        ),
    ];
    for (body, field) in bad {
        let limits: Limits = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(limits.check().unwrap_err().0, field, "{body}");
    }
    assert!(serde_json::from_value::<Limits>(json!({"tokensPerMinut": 5})).is_err());
    let limits: Limits = serde_json::from_value(json!({"prices": {"version": "v1", "currency": "EUR",
        "models": {"m": {"inputPerMillion": 2.0, "outputPerMillion": 8.0, "cachedInputPerMillion": 0.5}}}}))
    .unwrap();
    let used = Tokens {
        input: 1_000,
        output: 100,
        cached: 400,
    };
    assert_eq!(
        limits.cost_micros("m", &used),
        Some(600 * 2 + 400 / 2 + 800)
    );
    assert_eq!(limits.cost_micros("other", &used), None);
    let chat = json!({"model": "m", "max_tokens": 50,
                      "messages": [{"role": "user", "content": "hello world!"}]});
    // "user" and "hello world!": 16 bytes, 6 tokens; 4 for the message, 3 for the reply's
    // priming.
    assert_eq!(
        Tokens::estimate(&chat, Shape::Chat, 4096),
        tokens(6 + 4 + 3, 50)
    );
    let embed = json!({"model": "m", "input": ["abc", "abcd"]});
    assert_eq!(
        Tokens::estimate(&embed, Shape::Embeddings, 4096),
        tokens(3 + 1, 0)
    );
}
