use std::collections::BTreeMap;
use std::error::Error as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::time::OffsetDateTime;
use azure_servicebus::{
    NAMESPACE_SETTING, REST_CONNECTION_SETTING, RetryPolicy, SCOPE, SenderOptions, ServiceBusSender,
};
use chrono::{TimeZone, Utc};
use ports::{BusSender, OutgoingMessage, PortError, PropertyValue};

use crate::fake::{BATCH_CONTENT_TYPE, FakeServiceBus, KEY, KEY_NAME, Reply};

const TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.eyJhdWQiOiJzYiJ9.test-bearer-token";

/// Retries fast enough for tests, with the production shape.
fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(5),
        max_wait: Duration::from_secs(2),
    }
}

fn options(fake: &FakeServiceBus) -> SenderOptions {
    SenderOptions {
        retry: quick_retry(),
        http_client: Some(fake.pki.client()),
        ..SenderOptions::default()
    }
}

fn sas_sender(fake: &FakeServiceBus) -> ServiceBusSender {
    ServiceBusSender::with_connection_string(&fake.connection_string(), options(fake))
        .expect("sender")
}

/// A credential that hands out one fixed token and counts how often it is asked.
#[derive(Debug)]
struct StaticCredential {
    lifetime: azure_core::time::Duration,
    calls: AtomicUsize,
}

impl StaticCredential {
    fn new(lifetime_secs: i64) -> Arc<StaticCredential> {
        Arc::new(StaticCredential {
            lifetime: azure_core::time::Duration::seconds(lifetime_secs),
            calls: AtomicUsize::new(0),
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl TokenCredential for StaticCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        assert_eq!(scopes, [SCOPE], "the Service Bus scope");
        self.calls.fetch_add(1, Ordering::SeqCst);
        // A real credential makes a request: concurrent callers overlap here.
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(AccessToken::new(
            TOKEN.to_owned(),
            OffsetDateTime::now_utc() + self.lifetime,
        ))
    }
}

fn entra_sender(fake: &FakeServiceBus, credential: Arc<StaticCredential>) -> ServiceBusSender {
    ServiceBusSender::with_credential(&fake.namespace(), credential, options(fake)).expect("sender")
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sas_params(authorization: &str) -> BTreeMap<String, String> {
    let token = authorization
        .strip_prefix("SharedAccessSignature ")
        .expect("a SAS token");
    form_urlencoded::parse(token.as_bytes())
        .into_owned()
        .collect()
}

#[tokio::test]
async fn one_message_goes_with_every_header_and_a_valid_signature() {
    let fake = FakeServiceBus::start(None).await;
    let sender = sas_sender(&fake);
    let message = OutgoingMessage {
        time_to_live: Some(Duration::from_secs(90)),
        ..OutgoingMessage::new("evt-1", &b"{\"hello\":\"world\"}"[..])
            .content_type("application/cloudevents+json; charset=utf-8")
            .subject("provider.created")
            .correlation_id("corr-7")
            .session_id("lane-3")
            .property("type", "provider.created")
            .property("attempt", PropertyValue::Int(2))
            .property("replay", PropertyValue::Bool(false))
            .scheduled_at(Utc.with_ymd_and_hms(2026, 11, 27, 4, 53, 51).unwrap())
    };

    sender
        .send("webhook-deliveries", vec![message])
        .await
        .expect("send");

    assert_eq!(sender.http_requests(), 1, "one message is one request");
    let requests = fake.requests();
    let [r] = requests.as_slice() else {
        panic!("one request expected: {requests:?}")
    };
    r.auth.clone().expect("the fake recomputed the signature");
    assert_eq!(r.entity, "webhook-deliveries");
    assert_eq!(&r.body[..], b"{\"hello\":\"world\"}", "the body as given");
    assert_eq!(
        r.header("content-type"),
        Some("application/cloudevents+json; charset=utf-8")
    );
    assert_eq!(
        r.broker_properties(),
        serde_json::json!({
            "MessageId": "evt-1",
            "SessionId": "lane-3",
            "CorrelationId": "corr-7",
            "Label": "provider.created",
            "ScheduledEnqueueTimeUtc": "Fri, 27 Nov 2026 04:53:51 GMT",
            "TimeToLive": 90.0
        })
    );
    assert_eq!(
        r.header("type"),
        Some("\"provider.created\""),
        "strings quoted"
    );
    assert_eq!(r.header("attempt"), Some("2"), "integers bare");
    assert_eq!(r.header("replay"), Some("false"), "booleans bare");

    // The SAS token, checked here as well as by the fake: scope, key name, expiry.
    let sas = sas_params(r.header("authorization").unwrap());
    assert_eq!(
        sas["sr"],
        format!("https://{}/webhook-deliveries", fake.addr)
    );
    assert_eq!(sas["skn"], KEY_NAME);
    let se: u64 = sas["se"].parse().unwrap();
    assert!(
        (now_secs() + 3500..=now_secs() + 3600).contains(&se),
        "an hour's token"
    );
    // Exactly the headers the REST API defines. HTTP's own (`accept`, `content-length`, and
    // `accept-encoding` when a crate in the build turns on reqwest's decompression) are left
    // out; over HTTP/2 the host is the `:authority` pseudo-header, not a header.
    let mut names: Vec<&str> = r
        .headers
        .keys()
        .map(|k| k.as_str())
        .filter(|k| !["accept", "accept-encoding", "content-length"].contains(k))
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "attempt",
            "authorization",
            "brokerproperties",
            "content-type",
            "replay",
            "type"
        ]
    );
}

#[tokio::test]
async fn several_messages_go_as_one_batch() {
    let fake = FakeServiceBus::start(None).await;
    let sender = sas_sender(&fake);
    let messages = vec![
        OutgoingMessage::new("a", "first ✓")
            .content_type("text/plain")
            .subject("s")
            .property("tenantId", "t-1")
            .property("ratio", PropertyValue::Float(0.25)),
        OutgoingMessage::new("b", vec![0u8, 159, 146, 150])
            .scheduled_at(Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap()),
        OutgoingMessage::new("c", "{}").session_id("s-9"),
    ];

    sender
        .send("integration-events", messages)
        .await
        .expect("send");

    assert_eq!(sender.http_requests(), 1, "a batch is one request");
    let requests = fake.requests();
    let r = &requests[0];
    r.auth.clone().expect("valid signature");
    assert_eq!(r.header("content-type"), Some(BATCH_CONTENT_TYPE));
    assert_eq!(
        r.header("brokerproperties"),
        None,
        "per message, in the body"
    );
    assert_eq!(
        r.batch(),
        serde_json::json!([
            {
                "Body": "first ✓",
                "BrokerProperties": {"MessageId": "a", "Label": "s", "ContentType": "text/plain"},
                "UserProperties": {"tenantId": "t-1", "ratio": 0.25}
            },
            {
                "Body": "AJ+Slg==",
                "IsBodyBase64": true,
                "BrokerProperties": {"MessageId": "b", "ScheduledEnqueueTimeUtc": "Wed, 02 Jan 2030 03:04:05 GMT"}
            },
            {
                "Body": "{}",
                "BrokerProperties": {"MessageId": "c", "SessionId": "s-9"}
            }
        ])
    );
}

#[tokio::test]
async fn a_mixed_case_property_sends_one_message_as_a_batch_of_one() {
    // Header names arrive lower-cased; `tenantId` must arrive as `tenantId`.
    let fake = FakeServiceBus::start(None).await;
    let sender = sas_sender(&fake);
    let message = OutgoingMessage::new("m", "{}")
        .content_type("application/json")
        .property("tenantId", "t-1");
    sender.send("q", vec![message]).await.expect("send");
    let r = &fake.requests()[0];
    assert_eq!(r.header("content-type"), Some(BATCH_CONTENT_TYPE));
    assert_eq!(r.header("tenantid"), None);
    assert_eq!(r.batch()[0]["UserProperties"]["tenantId"], "t-1");
    assert_eq!(
        r.batch()[0]["BrokerProperties"]["ContentType"],
        "application/json"
    );
}

#[tokio::test]
async fn entra_tokens_are_cached_until_near_expiry() {
    let fake = FakeServiceBus::start(Some(TOKEN)).await;
    let credential = StaticCredential::new(3600);
    let sender = entra_sender(&fake, credential.clone());
    for i in 0..3 {
        sender
            .send("q", vec![OutgoingMessage::new(format!("m{i}"), "x")])
            .await
            .expect("send");
    }
    assert_eq!(credential.calls(), 1, "one token for three sends");
    for r in fake.requests() {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        r.auth.clone().expect("the fake accepted the token");
    }

    // A token with less than five minutes left is renewed before use.
    let short = StaticCredential::new(120);
    let sender = entra_sender(&fake, short.clone());
    for i in 0..2 {
        sender
            .send("q", vec![OutgoingMessage::new(format!("s{i}"), "x")])
            .await
            .expect("send");
    }
    assert_eq!(short.calls(), 2, "a nearly expired token is not reused");
}

#[tokio::test]
async fn concurrent_sends_share_one_token_request() {
    let fake = FakeServiceBus::start(Some(TOKEN)).await;
    let credential = StaticCredential::new(3600);
    let sender = Arc::new(entra_sender(&fake, credential.clone()));
    let sends: Vec<_> = (0..8)
        .map(|i| {
            let sender = sender.clone();
            tokio::spawn(async move {
                sender
                    .send("q", vec![OutgoingMessage::new(format!("c{i}"), "x")])
                    .await
            })
        })
        .collect();
    for send in sends {
        send.await.unwrap().expect("send");
    }
    assert_eq!(
        credential.calls(),
        1,
        "the first caller fetches, the others wait for it"
    );
    assert_eq!(sender.http_requests(), 8);
}

#[tokio::test]
async fn a_refused_token_is_not_reused() {
    let fake = FakeServiceBus::start(Some(TOKEN)).await;
    let credential = StaticCredential::new(3600);
    let sender = entra_sender(&fake, credential.clone());
    fake.script(Reply::detail(401, "40100: Unauthorized: token revoked"));
    let r = sender.send("q", vec![OutgoingMessage::new("m", "x")]).await;
    assert!(matches!(r, Err(PortError::Unauthenticated)), "{r:?}");
    assert_eq!(sender.http_requests(), 1, "401 is not retried");
    sender
        .send("q", vec![OutgoingMessage::new("m", "x")])
        .await
        .expect("the next send gets a new token");
    assert_eq!(credential.calls(), 2);
}

#[tokio::test]
async fn a_wrong_key_is_unauthenticated() {
    let fake = FakeServiceBus::start(None).await;
    let wrong = fake
        .connection_string()
        .replace(KEY, "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=");
    let sender = ServiceBusSender::with_connection_string(&wrong, options(&fake)).unwrap();
    let r = sender.send("q", vec![OutgoingMessage::new("m", "x")]).await;
    assert!(matches!(r, Err(PortError::Unauthenticated)), "{r:?}");
    let seen = fake.requests();
    assert_eq!(
        seen[0].auth.as_ref().unwrap_err(),
        "the signature does not match",
        "the fake really checks signatures"
    );
}

#[tokio::test]
async fn error_statuses_map_to_port_errors_without_retrying() {
    type Check = fn(&PortError) -> bool;
    let cases: [(Reply, Check); 8] = [
        (
            Reply::detail(400, "The BrokerProperties header is malformed"),
            |e| matches!(e, PortError::Invalid(m) if m.contains("400") && m.contains("malformed")),
        ),
        (Reply::status(401), |e| {
            matches!(e, PortError::Unauthenticated)
        }),
        (
            Reply::detail(403, "The message size exceeds the limit of 262144 bytes"),
            |e| matches!(e, PortError::Invalid(m) if m.contains("too large")),
        ),
        (Reply::detail(403, "40300: Quota exceeded"), |e| {
            matches!(e, PortError::Backend { .. })
                && e.is_transient()
                && std::error::Error::source(e)
                    .is_some_and(|s| s.to_string().contains("HTTP 403: 40300: Quota exceeded"))
        }),
        (Reply::status(404), |e| matches!(e, PortError::NotFound)),
        (Reply::status(410), |e| matches!(e, PortError::NotFound)),
        (
            Reply::status(413),
            |e| matches!(e, PortError::Invalid(m) if m.contains("larger")),
        ),
        (Reply::status(500), |e| {
            matches!(
                e,
                PortError::Backend {
                    backend: "service-bus",
                    ..
                }
            )
        }),
    ];
    let fake = FakeServiceBus::start(None).await;
    let sender = sas_sender(&fake);
    for (reply, check) in cases {
        let status = reply.status;
        let before = sender.http_requests();
        fake.script(reply);
        let err = sender
            .send("q", vec![OutgoingMessage::new("m", "x")])
            .await
            .expect_err("scripted failure");
        assert!(check(&err), "HTTP {status} became {err:?}");
        assert_eq!(
            sender.http_requests() - before,
            1,
            "HTTP {status} is not retried"
        );
    }
}

#[tokio::test]
async fn throttling_waits_for_retry_after_then_succeeds() {
    let fake = FakeServiceBus::start(None).await;
    let sender = sas_sender(&fake);
    fake.script(Reply::status(429).header("retry-after", "1"));
    sender
        .send("q", vec![OutgoingMessage::new("m-1", "x")])
        .await
        .expect("the retry succeeds");
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(sender.http_requests(), 2, "the getter counts the retry");
    let waited = requests[1].at - requests[0].at;
    assert!(
        waited >= Duration::from_secs(1),
        "Retry-After: 1 honoured, waited {waited:?}"
    );
    // The retry is the same message: duplicate detection keys on this id.
    assert_eq!(
        requests[0].broker_properties()["MessageId"],
        requests[1].broker_properties()["MessageId"]
    );
}

#[tokio::test]
async fn busy_answers_are_retried_a_bounded_number_of_times() {
    let fake = FakeServiceBus::start(None).await;
    let sender = sas_sender(&fake);
    for _ in 0..4 {
        fake.script(Reply::status(503).header("retry-after-ms", "20"));
    }
    let r = sender.send("q", vec![OutgoingMessage::new("m", "x")]).await;
    assert!(
        matches!(r, Err(PortError::Throttled { retry_after: Some(d) }) if d == Duration::from_millis(20)),
        "{r:?}"
    );
    assert_eq!(sender.http_requests(), 4, "max_attempts");
}

#[tokio::test]
async fn a_long_retry_after_is_handed_to_the_caller_not_slept() {
    let fake = FakeServiceBus::start(None).await;
    let sender = sas_sender(&fake);
    fake.script(Reply::status(429).header("retry-after", "120"));
    let started = std::time::Instant::now();
    let r = sender.send("q", vec![OutgoingMessage::new("m", "x")]).await;
    assert!(
        matches!(r, Err(PortError::Throttled { retry_after: Some(d) }) if d == Duration::from_secs(120)),
        "{r:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(sender.http_requests(), 1);
}

#[tokio::test]
async fn a_timed_out_send_is_retried_with_the_same_message_id() {
    let fake = FakeServiceBus::start(None).await;
    let client = fake
        .pki
        .client_builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let sender = ServiceBusSender::with_connection_string(
        &fake.connection_string(),
        SenderOptions {
            http_client: Some(client),
            ..options(&fake)
        },
    )
    .unwrap();
    fake.script(Reply {
        delay: Duration::from_millis(600),
        ..Reply::status(201)
    });
    sender
        .send("q", vec![OutgoingMessage::new("dup-1", "x")])
        .await
        .expect("the retry succeeds");
    let requests = fake.requests();
    assert_eq!(requests.len(), 2, "the timed-out request and its retry");
    for r in &requests {
        assert_eq!(r.broker_properties()["MessageId"], "dup-1");
    }
}

#[tokio::test]
async fn an_unreachable_namespace_is_retried_then_reported() {
    let pki = crate::tls::pki();
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sender = ServiceBusSender::with_connection_string(
        &format!("Endpoint=sb://127.0.0.1:{port}/;SharedAccessKeyName=k;SharedAccessKey={KEY}"),
        SenderOptions {
            retry: quick_retry(),
            http_client: Some(pki.client()),
            ..SenderOptions::default()
        },
    )
    .unwrap();
    let err = sender
        .send("q", vec![OutgoingMessage::new("m", "x")])
        .await
        .expect_err("nothing listens");
    assert!(
        matches!(err, PortError::Backend { .. }) && err.is_transient(),
        "{err:?}"
    );
    assert!(
        err.source().unwrap().to_string().contains("cannot connect"),
        "{err:?}"
    );
    assert_eq!(sender.http_requests(), 4);
}

#[tokio::test]
async fn bad_input_is_refused_without_a_request() {
    let fake = FakeServiceBus::start(None).await;
    let sender = sas_sender(&fake);
    for entity in ["", "q/../admin", "q?x=1", "q messages"] {
        let r = sender
            .send(entity, vec![OutgoingMessage::new("m", "x")])
            .await;
        assert!(matches!(r, Err(PortError::Invalid(_))), "{entity:?}: {r:?}");
    }
    let r = sender.send("q", vec![OutgoingMessage::new("", "x")]).await;
    assert!(matches!(r, Err(PortError::Invalid(_))));
    sender
        .send("q", vec![])
        .await
        .expect("nothing to send is fine");
    assert_eq!(sender.http_requests(), 0);
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn keys_and_tokens_never_reach_errors_or_logs() {
    let (_guard, captured) = standins::logs::capture();
    let fake = FakeServiceBus::start(Some(TOKEN)).await;
    let sas = sas_sender(&fake);
    let credential = StaticCredential::new(3600);
    let entra = entra_sender(&fake, credential);
    let mut errors = Vec::new();
    for sender in [&sas, &entra] {
        for status in [400, 401, 403, 500, 503] {
            // The fake echoes the Authorization header and the key into the error body.
            fake.script(Reply {
                echo_authorization: true,
                ..Reply::status(status)
            });
            if status == 503 {
                for _ in 0..3 {
                    fake.script(Reply {
                        echo_authorization: true,
                        ..Reply::status(status)
                    });
                }
            }
            let err = sender
                .send("q", vec![OutgoingMessage::new("m", "x")])
                .await
                .expect_err("scripted failure");
            let mut text = format!("{err} {err:?}");
            let mut source = err.source();
            while let Some(s) = source {
                text.push_str(&format!(" {s} {s:?}"));
                source = s.source();
            }
            errors.push(text);
        }
        errors.push(format!("{sender:?}"));
    }
    let signatures: Vec<String> = fake
        .requests()
        .iter()
        .filter_map(|r| r.header("authorization").map(str::to_owned))
        .filter(|a| a.starts_with("SharedAccessSignature "))
        .map(|a| sas_params(&a))
        .filter_map(|p| p.get("sig").cloned())
        .collect();
    assert!(!signatures.is_empty());
    let logged = captured.text();
    assert!(
        logged.contains("service bus"),
        "the capture works: {logged}"
    );
    for text in errors.iter().chain([&logged]) {
        assert!(!text.contains(KEY), "the key leaked: {text}");
        assert!(!text.contains(TOKEN), "the token leaked: {text}");
        for sig in &signatures {
            assert!(!text.contains(sig.as_str()), "a signature leaked: {text}");
            let encoded: String = form_urlencoded::byte_serialize(sig.as_bytes()).collect();
            assert!(!text.contains(&encoded), "a signature leaked: {text}");
        }
    }
}

#[tokio::test]
async fn from_settings_builds_the_sender_the_settings_choose() {
    let fake = FakeServiceBus::start(Some(TOKEN)).await;
    let settings: BTreeMap<String, String> =
        [(REST_CONNECTION_SETTING.to_owned(), fake.connection_string())].into();
    let sender = ServiceBusSender::from_settings_with(&settings, options(&fake))
        .unwrap()
        .expect("the REST connection chooses Service Bus");
    sender
        .send("q", vec![OutgoingMessage::new("m", "x")])
        .await
        .expect("SAS send through the settings");

    let credential = StaticCredential::new(3600);
    let settings: BTreeMap<String, String> =
        [(NAMESPACE_SETTING.to_owned(), fake.namespace())].into();
    let sender = ServiceBusSender::from_settings_with(
        &settings,
        SenderOptions {
            credential: Some(credential.clone()),
            ..options(&fake)
        },
    )
    .unwrap()
    .expect("the namespace chooses Service Bus");
    sender
        .send("q", vec![OutgoingMessage::new("m", "x")])
        .await
        .expect("Entra send through the settings");
    assert_eq!(credential.calls(), 1);
    for r in fake.requests() {
        r.auth.expect("both accepted");
    }
    assert!(
        ServiceBusSender::from_settings(&BTreeMap::new())
            .unwrap()
            .is_none()
    );
}
