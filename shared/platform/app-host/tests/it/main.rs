//! The handler process end to end, in-process: a small app served by `app_host::run` on a
//! free port with the embedded default in a temporary folder.

use std::collections::BTreeMap;
use std::time::Duration;

use app_context::{AppContext, AppRegistration, EVENTS_TOPIC, WEBHOOK_DELIVERIES_QUEUE};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use embedded::{Durability, SqliteBroker};
use functions_runtime::{FunctionApp, FunctionDecl, InvocationResponse};
use ports::{BrokerReceiver, BusSender, Entity, OutgoingMessage, SubscriptionSpec};
use tokio::net::TcpListener;

const SLUG: &str = "probe";
const CONTAINER: &str = "probe";

/// `POST /api/emit` commits one event through the outbox, as every app does; a Service Bus
/// function on `webhook-deliveries` exists so the host would trigger on that queue.
fn build(ctx: &AppContext) -> FunctionApp {
    async fn emit(State(ctx): State<AppContext>) -> StatusCode {
        let event = envelope::Envelope::builder("/integration/probe", "probe.emitted", "t1")
            .id("evt-1")
            .json_data(&serde_json::json!({"n": 1}))
            .expect("an envelope");
        match ctx
            .documents
            .batch(
                CONTAINER,
                "t1",
                vec![outbox::outbox_write(&event, EVENTS_TOPIC)],
            )
            .await
        {
            Ok(_) => {
                ctx.outbox_committed();
                StatusCode::ACCEPTED
            }
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
    FunctionApp::new(SLUG)
        .http_routes(
            axum::Router::new()
                .route("/api/emit", post(emit))
                .with_state(ctx.clone()),
        )
        .http_function(FunctionDecl::http("Emit", "emit", &["post"]))
        .function(
            FunctionDecl::queue("Work", WEBHOOK_DELIVERIES_QUEUE),
            |_| async { Ok(InvocationResponse::default()) },
        )
}

fn registration() -> AppRegistration {
    AppRegistration {
        slug: SLUG,
        build: |ctx| Ok(build(ctx)),
        containers: &[CONTAINER],
        reads: &[],
        subscriptions: || {
            vec![(
                EVENTS_TOPIC.to_owned(),
                SubscriptionSpec {
                    name: SLUG.to_owned(),
                    filter: ports::Filter::All,
                    spec: ports::EntitySpec::default(),
                },
            )]
        },
        has_runs_queue: false,
        catalogue: &[],
    }
}

fn settings(dir: &std::path::Path) -> BTreeMap<String, String> {
    BTreeMap::from([(
        app_host::DATA_DIR_SETTING.to_owned(),
        dir.display().to_string(),
    )])
}

#[tokio::test]
async fn serves_the_app_publishes_its_outbox_and_leaves_queues_to_the_host() {
    let dir = tempfile::tempdir().unwrap();
    // A message already waiting on the queue of the app's Service Bus function, in the
    // broker database of an earlier version.
    {
        let broker = SqliteBroker::open(&dir.path().join("broker.db"), Durability::Normal).unwrap();
        broker
            .ensure_topology(&app_context::platform_topology(
                &[registration()],
                &ports::EntitySpec::default(),
            ))
            .await
            .unwrap();
        broker
            .send(
                WEBHOOK_DELIVERIES_QUEUE,
                vec![OutgoingMessage::new("waiting-1", b"{}".to_vec())],
            )
            .await
            .unwrap();
    }

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let reg = registration();
    let settings = settings(dir.path());
    let host = tokio::spawn(async move {
        app_host::run(&reg, settings, Default::default(), listener, async move {
            let _ = stopped.await;
        })
        .await
    });

    let client = reqwest::Client::new();
    // Readiness: the host polls `GET /` until anything answers.
    let mut ready = None;
    for _ in 0..100 {
        if let Ok(r) = client.get(format!("{base}/")).send().await {
            ready = Some(r.status());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ready, Some(reqwest::StatusCode::OK));
    let emitted = client
        .post(format!("{base}/api/emit"))
        .send()
        .await
        .unwrap();
    assert_eq!(emitted.status(), reqwest::StatusCode::ACCEPTED);
    // The invocation route of the Service Bus function is served (the host would call it).
    let invoked = client
        .post(format!("{base}/Work"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(invoked.status(), reqwest::StatusCode::BAD_REQUEST);

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), host)
        .await
        .expect("the handler stops on shutdown")
        .unwrap()
        .unwrap();

    // The broker now lives in `documents.db`, beside the documents; the message waiting in
    // the earlier version's `broker.db` was imported, and that file renamed.
    assert!(!dir.path().join("broker.db").exists());
    assert!(dir.path().join("broker.db.imported").is_file());
    let broker = SqliteBroker::open(&dir.path().join("documents.db"), Durability::Normal).unwrap();
    // Loads the entities (additive: nothing is reset).
    broker
        .ensure_topology(&app_context::platform_topology(
            &[registration()],
            &ports::EntitySpec::default(),
        ))
        .await
        .unwrap();
    let published = broker
        .receive(&Entity::subscription(EVENTS_TOPIC, SLUG), 10)
        .await
        .unwrap();
    assert_eq!(published.len(), 1, "the committed event was published");
    assert_eq!(published[0].message.message_id, "evt-1");
    let waiting = broker
        .receive(&Entity::queue(WEBHOOK_DELIVERIES_QUEUE), 10)
        .await
        .unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(
        waiting[0].delivery_count, 1,
        "the handler never received the queue's message: the host owns triggers"
    );
}

#[tokio::test]
async fn a_malformed_azure_setting_stops_the_handler_without_echoing_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(dir.path());
    settings.insert(
        app_host::adapters::BLOB_CONNECTION.to_owned(),
        "AccountName=devstoreaccount1;AccountKey=secret-key-material;NoEndpoint=1".to_owned(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = app_host::run(
        &registration(),
        settings,
        Default::default(),
        listener,
        std::future::pending(),
    )
    .await
    .unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("Blob Storage"), "{text}");
    assert!(!text.contains("secret-key-material"), "{text}");
}

#[tokio::test]
async fn an_invalid_app_is_refused() {
    fn bad(_: &AppContext) -> FunctionApp {
        // A Service Bus function without code.
        FunctionApp::new("bad").http_function(FunctionDecl::queue("Orphan", "q"))
    }
    let dir = tempfile::tempdir().unwrap();
    let reg = AppRegistration {
        build: |ctx| Ok(bad(ctx)),
        ..registration()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = app_host::run(
        &reg,
        settings(dir.path()),
        Default::default(),
        listener,
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("Orphan"), "{err:#}");
}

#[tokio::test]
async fn a_blob_folder_of_an_earlier_version_is_imported_once() {
    use ports::BlobStore as _;
    let dir = tempfile::tempdir().unwrap();
    let old = embedded::FolderBlobStore::open(dir.path().join("blobs")).unwrap();
    old.put(
        "webhooks-raw",
        "tenant-a/one",
        bytes::Bytes::from_static(b"raw body"),
        Default::default(),
    )
    .await
    .unwrap();
    drop(old);

    let first = app_host::adapters::open_embedded(dir.path()).await.unwrap();
    let (data, _) = first
        .blobs
        .get("webhooks-raw", "tenant-a/one")
        .await
        .unwrap();
    assert_eq!(&data[..], b"raw body");
    assert!(
        !dir.path().join("blobs").exists(),
        "the folder is renamed once imported"
    );
    assert!(
        dir.path().join("blobs.imported").is_dir(),
        "and kept, not deleted"
    );
    // A blob deleted after the import stays deleted when the data folder is opened again.
    first
        .blobs
        .delete("webhooks-raw", "tenant-a/one")
        .await
        .unwrap();
    drop(first);
    let second = app_host::adapters::open_embedded(dir.path()).await.unwrap();
    assert!(
        second
            .blobs
            .head("webhooks-raw", "tenant-a/one")
            .await
            .is_err()
    );
    drop(second);

    // An earlier version run again on the same folder writes a new `blobs/`: imported too,
    // and the first import's folder is left as it was.
    let again = embedded::FolderBlobStore::open(dir.path().join("blobs")).unwrap();
    again
        .put(
            "webhooks-raw",
            "tenant-a/two",
            bytes::Bytes::from_static(b"later body"),
            Default::default(),
        )
        .await
        .unwrap();
    drop(again);
    let third = app_host::adapters::open_embedded(dir.path()).await.unwrap();
    let (data, _) = third
        .blobs
        .get("webhooks-raw", "tenant-a/two")
        .await
        .unwrap();
    assert_eq!(&data[..], b"later body");
    assert!(dir.path().join("blobs.imported").is_dir());
    assert!(dir.path().join("blobs.imported.1").is_dir());
    assert!(!dir.path().join("blobs").exists());
}

/// With the embedded default, a batch's outbox documents are messages on the bus once it
/// commits: saying so does not wake the publisher (that would cost it an empty query per
/// commit). A store that leaves them as documents (the documents alone, as in Azure) wakes it.
#[tokio::test]
async fn the_publisher_is_woken_only_when_a_commit_leaves_outbox_documents() {
    let dir = tempfile::tempdir().unwrap();
    let embedded = app_host::adapters::open_embedded(dir.path()).await.unwrap();
    let tokens: std::sync::Arc<dyn auth::Authenticator> =
        std::sync::Arc::new(auth::DevTokens::load_or_create(dir.path()).unwrap());
    let routed = embedded.context(BTreeMap::new(), tokens.clone());
    assert!(routed.documents.routes_outbox());
    let woken = |ctx: AppContext| async move {
        let waiting = ctx.outbox_waker.notified();
        tokio::pin!(waiting);
        waiting.as_mut().enable();
        ctx.outbox_committed();
        tokio::time::timeout(Duration::from_millis(200), waiting)
            .await
            .is_ok()
    };
    assert!(!woken(routed).await);

    let alone =
        embedded::SqliteDocumentStore::open(&dir.path().join("alone.db"), Durability::Normal)
            .unwrap();
    assert!(!ports::DocumentStore::routes_outbox(&alone));
    let mut unrouted = embedded.context(BTreeMap::new(), tokens);
    unrouted.documents = std::sync::Arc::new(alone);
    assert!(woken(unrouted).await);
}
