//! The handler over real HTTP/1.1 on 127.0.0.1, driven the way the host drives it (§0, §4.1,
//! §5.1, §6, §11): readiness, invocations with the host's headers and chunked bodies,
//! failures, limits, and forwarded HTTP routes.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::routing::post;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use functions_runtime::app::INVOCATION_BODY_LIMIT;
use functions_runtime::encode;
use functions_runtime::serve::{ServeError, port_from_env};
use functions_runtime::{
    FunctionApp, FunctionDecl, Invocation, InvocationError, InvocationResponse, InvocationResult,
    serve_on,
};

use crate::{SB_BINARY_EXAMPLE, SB_EXAMPLE_BODY, TIMER_EXAMPLE, example_delivery, utc};

const HOST_VERSION: &str = "4.1048.200.26180";
const USER_AGENT: &str = "Azure-Functions-Host/4.1048.200.26180";
const TIMEOUT: Duration = Duration::from_secs(30);

type ReqBody = BoxBody<Bytes, Infallible>;

// --- Request bodies --------------------------------------------------------------------------

/// A streaming body with no length: hyper sends it `Transfer-Encoding: chunked`, one chunk
/// per frame, as the host's `ObjectContent` does.
struct Chunked(VecDeque<Bytes>);

impl Body for Chunked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().0.pop_front().map(|c| Ok(Frame::data(c))))
    }
}

/// `bytes` split into `n` chunks, streamed without a length.
fn chunked(bytes: &[u8], n: usize) -> ReqBody {
    let size = bytes.len().div_ceil(n.max(1)).max(1);
    Chunked(bytes.chunks(size).map(Bytes::copy_from_slice).collect()).boxed()
}

static ZEROS: [u8; 1 << 20] = [b'0'; 1 << 20];

/// `remaining` bytes streamed from one static buffer, never allocated at once.
struct Zeros {
    remaining: usize,
}

impl Body for Zeros {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = this.remaining.min(ZEROS.len());
        this.remaining -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&ZEROS[..n])))))
    }
}

fn full(bytes: impl Into<Bytes>) -> ReqBody {
    Full::new(bytes.into()).boxed()
}

// --- The test app ----------------------------------------------------------------------------

/// What a handler saw.
#[derive(Clone, Debug)]
struct Seen {
    function: String,
    trigger_binding: String,
    invocation_id: Option<String>,
    body: Bytes,
    message_id: String,
    delivery_count: u32,
}

/// Invocation id and `IsPastDue` of a timer call.
type TimerCall = (Option<String>, bool);

/// What a forwarded HTTP route saw.
#[derive(Clone, Debug)]
struct Forwarded {
    id: String,
    body: Bytes,
    headers: HeaderMap,
}

#[derive(Clone, Default)]
struct Log {
    seen: Arc<Mutex<Vec<Seen>>>,
    forwarded: Arc<Mutex<Vec<Forwarded>>>,
    /// Invocation id and `IsPastDue` of each timer call.
    timers: Arc<Mutex<Vec<TimerCall>>>,
}

/// The raw response of the forwarded route: binary, with repeated headers.
const RAW_RESPONSE: &[u8] = b"\x00\xff\xfe{\"not\": \"json\" \x80}\r\n";

async fn panics(_: Invocation) -> InvocationResult {
    panic!("a bug in the handler")
}

fn test_app(log: &Log) -> FunctionApp {
    let seen = log.seen.clone();
    let timers = log.timers.clone();
    let forwarded = log.forwarded.clone();
    let echo = move |Path(id): Path<String>, headers: HeaderMap, body: Bytes| {
        let forwarded = forwarded.clone();
        async move {
            forwarded.lock().unwrap().push(Forwarded {
                id: id.clone(),
                body,
                headers,
            });
            axum::response::Response::builder()
                .status(StatusCode::from_u16(207).unwrap())
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header("x-run-id", id)
                .header(header::SET_COOKIE, "a=1; Path=/")
                .header(header::SET_COOKIE, "b=2; Path=/")
                .body(axum::body::Body::from(RAW_RESPONSE))
                .unwrap()
        }
    };
    FunctionApp::new("conformance")
        .http_routes(Router::new().route("/api/runs/{id}/echo", post(echo)))
        .http_function(FunctionDecl::http("Echo", "runs/{id}/echo", &["post"]))
        .function(
            FunctionDecl::queue("ProcessRun", "runs"),
            move |inv: Invocation| {
                let seen = seen.clone();
                async move {
                    let msg = inv.service_bus()?;
                    seen.lock().unwrap().push(Seen {
                        function: inv.function.clone(),
                        trigger_binding: inv.trigger_binding.clone(),
                        invocation_id: inv.invocation_id.clone(),
                        body: msg.body.clone(),
                        message_id: msg.message_id.clone(),
                        delivery_count: msg.delivery_count,
                    });
                    let mut outputs = Map::new();
                    outputs.insert("outMsg".into(), json!({ "processed": msg.message_id }));
                    Ok(InvocationResponse {
                        outputs,
                        logs: vec!["processed".into()],
                        return_value: Value::Null,
                    })
                }
            },
        )
        .function(
            FunctionDecl::timer("Nightly", "0 0 2 * * *"),
            move |inv: Invocation| {
                let timers = timers.clone();
                async move {
                    let t = inv.timer()?;
                    timers
                        .lock()
                        .unwrap()
                        .push((inv.invocation_id.clone(), t.is_past_due));
                    Ok(InvocationResponse::default())
                }
            },
        )
        .function(FunctionDecl::queue("Flaky", "flaky"), |_| async {
            Err(InvocationError::transient("broker said no: sk-live-SECRET"))
        })
        .function(FunctionDecl::queue("Poison", "poison"), |_| async {
            Err(InvocationError::permanent(
                "this payload will never work: sk-live-SECRET",
            ))
        })
        .function(FunctionDecl::queue("Boom", "boom"), panics)
        .function(FunctionDecl::queue("Slow", "slow"), |_| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(InvocationResponse::default())
        })
}

// --- Server and client -----------------------------------------------------------------------

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServeError>>,
    client: Client<HttpConnector, ReqBody>,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&self.body)))
    }

    fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// A problem+json reply with the given status and code, which never echoes secrets.
    fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{:?}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.content_type(), "application/problem+json");
        let p = self.json();
        assert_eq!(p["status"], status);
        assert_eq!(p["code"], code);
        assert!(p["type"].as_str().unwrap().ends_with(code));
        assert!(!String::from_utf8_lossy(&self.body).contains("SECRET"));
    }
}

impl Server {
    async fn start(app: FunctionApp) -> Server {
        app.validate().expect("the test app is valid");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_on(listener, app, async {
            let _ = stopped.await;
        }));
        let client = Client::builder(TokioExecutor::new()).build_http();
        Server {
            addr,
            stop: Some(stop),
            task,
            client,
        }
    }

    fn uri(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn send(&self, req: Request<ReqBody>) -> Reply {
        let resp = tokio::time::timeout(TIMEOUT, self.client.request(req))
            .await
            .expect("the handler answers in time")
            .expect("the handler answers");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .expect("a complete body")
            .to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(
            Request::get(self.uri(path))
                .body(full(Bytes::new()))
                .unwrap(),
        )
        .await
    }

    /// `POST /<function>` exactly as the host sends it.
    async fn invoke(&self, function: &str, invocation_id: &str, body: ReqBody) -> Reply {
        self.send(host_request(
            &self.uri(&format!("/{function}")),
            invocation_id,
            body,
        ))
        .await
    }

    async fn shutdown(mut self) {
        drop(self.client);
        let _ = self.stop.take().unwrap().send(());
        let result = tokio::time::timeout(TIMEOUT, self.task)
            .await
            .expect("graceful shutdown completes");
        assert!(matches!(result, Ok(Ok(()))), "{result:?}");
    }
}

fn host_request(uri: &str, invocation_id: &str, body: ReqBody) -> Request<ReqBody> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .header("X-Azure-Functions-InvocationId", invocation_id)
        .header("X-Azure-Functions-HostVersion", HOST_VERSION)
        .header(header::USER_AGENT, USER_AGENT)
        .body(body)
        .unwrap()
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn sb_invocation(function: &str, body: &[u8]) -> Vec<u8> {
    let built = encode::service_bus_invocation(
        function,
        "msg",
        true,
        &example_delivery(body),
        utc(2025, 1, 15, 10, 0, 1),
    );
    serde_json::to_vec(&built).unwrap()
}

// --- Readiness -------------------------------------------------------------------------------

#[tokio::test]
async fn readiness_probe_answers_200() {
    let server = Server::start(test_app(&Log::default())).await;
    let started = std::time::Instant::now();
    let reply = server.get("/").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(5));
    server.shutdown().await;
}

#[tokio::test]
async fn readiness_probe_answers_while_an_invocation_is_in_flight() {
    let server = Arc::new(Server::start(test_app(&Log::default())).await);
    let s = server.clone();
    let slow = tokio::spawn(async move {
        s.invoke("Slow", &new_id(), full(sb_invocation("Slow", b"x")))
            .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let reply = tokio::time::timeout(Duration::from_secs(5), server.get("/"))
        .await
        .expect("GET / is not blocked");
    assert_eq!(reply.status, StatusCode::OK);
    assert!(!slow.is_finished());
    slow.abort();
}

// --- Invocations -----------------------------------------------------------------------------

#[tokio::test]
async fn chunked_invocation_with_host_headers() {
    let log = Log::default();
    let server = Server::start(test_app(&log)).await;
    let id = new_id();
    let body = sb_invocation("ProcessRun", SB_EXAMPLE_BODY);
    let reply = server.invoke("ProcessRun", &id, chunked(&body, 7)).await;

    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{:?}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.content_type(), "application/json");
    assert!(!reply.body.is_empty());
    assert_eq!(
        reply.json(),
        json!({ "Outputs": { "outMsg": { "processed": "run-r1-step-2" } }, "Logs": ["processed"], "ReturnValue": null })
    );
    let seen = log.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].function, "ProcessRun");
    assert_eq!(seen[0].trigger_binding, "msg");
    assert_eq!(seen[0].invocation_id.as_deref(), Some(id.as_str()));
    assert_eq!(&seen[0].body[..], SB_EXAMPLE_BODY);
    assert_eq!(seen[0].message_id, "run-r1-step-2");
    assert_eq!(seen[0].delivery_count, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn reference_payloads_over_the_wire() {
    let log = Log::default();
    let server = Server::start(test_app(&log)).await;
    let reply = server
        .invoke(
            "ProcessRun",
            &new_id(),
            chunked(SB_BINARY_EXAMPLE.as_bytes(), 3),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(&log.seen.lock().unwrap()[0].body[..], SB_EXAMPLE_BODY);

    let id = new_id();
    let reply = server
        .invoke("Nightly", &id, chunked(TIMER_EXAMPLE.as_bytes(), 2))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        &reply.body[..],
        br#"{"Outputs":{},"Logs":[],"ReturnValue":null}"#
    );
    assert_eq!(log.timers.lock().unwrap().as_slice(), &[(Some(id), false)]);
    server.shutdown().await;
}

#[tokio::test]
async fn exact_bytes_including_non_utf8_reach_the_handler() {
    let log = Log::default();
    let server = Server::start(test_app(&log)).await;
    let body: Vec<u8> = (0..=255u8)
        .rev()
        .chain(*b"{\"MessageId\":\"evil\"}")
        .collect();
    let reply = server
        .invoke(
            "ProcessRun",
            &new_id(),
            chunked(&sb_invocation("ProcessRun", &body), 5),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let seen = log.seen.lock().unwrap().clone();
    assert_eq!(&seen[0].body[..], &body[..]);
    assert_eq!(seen[0].message_id, "run-r1-step-2");
    server.shutdown().await;
}

#[tokio::test]
async fn raw_chunked_request_as_written_by_the_host() {
    let log = Log::default();
    let server = Server::start(test_app(&log)).await;
    let id = new_id();
    let body = sb_invocation("ProcessRun", b"raw bytes");
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /ProcessRun HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json; charset=utf-8\r\n\
         X-Azure-Functions-InvocationId: {id}\r\nX-Azure-Functions-HostVersion: {HOST_VERSION}\r\n\
         User-Agent: {USER_AGENT}\r\nTransfer-Encoding: chunked\r\n\r\n",
        server.addr.port()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(100) {
        stream
            .write_all(format!("{:X}\r\n", chunk.len()).as_bytes())
            .await
            .unwrap();
        stream.write_all(chunk).await.unwrap();
        stream.write_all(b"\r\n").await.unwrap();
        stream.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    stream.write_all(b"0\r\n\r\n").await.unwrap();

    let (status, headers, reply) = tokio::time::timeout(TIMEOUT, read_response(&mut stream))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
    let reply: Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(reply["Outputs"]["outMsg"]["processed"], "run-r1-step-2");
    let seen = log.seen.lock().unwrap().clone();
    assert_eq!(&seen[0].body[..], b"raw bytes");
    assert_eq!(seen[0].invocation_id.as_deref(), Some(id.as_str()));
}

/// Reads one HTTP/1.1 response with a `Content-Length` body.
async fn read_response(stream: &mut TcpStream) -> (u16, HashMap<String, String>, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed before the response head");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
    };
    let head = String::from_utf8(buf[..end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers["content-length"].parse().unwrap();
    let mut body = buf[end + 4..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed mid-body");
        body.extend_from_slice(&chunk[..n]);
    }
    (status, headers, body)
}

#[tokio::test]
async fn function_names_are_case_insensitive_in_the_path() {
    let log = Log::default();
    let server = Server::start(test_app(&log)).await;
    for path in ["processrun", "PROCESSRUN", "pRoCeSsRuN"] {
        let reply = server
            .invoke(path, &new_id(), full(sb_invocation("ProcessRun", b"x")))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
    }
    let seen = log.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|s| s.function == "ProcessRun"));
    server.shutdown().await;
}

#[tokio::test]
async fn invocation_without_an_id_header_still_runs() {
    let log = Log::default();
    let server = Server::start(test_app(&log)).await;
    let req = Request::post(server.uri("/ProcessRun"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(sb_invocation("ProcessRun", b"x")))
        .unwrap();
    assert_eq!(server.send(req).await.status, StatusCode::OK);
    assert_eq!(log.seen.lock().unwrap()[0].invocation_id, None);
    server.shutdown().await;
}

#[tokio::test]
async fn transient_failure_is_500_problem() {
    let server = Server::start(test_app(&Log::default())).await;
    let reply = server
        .invoke(
            "Flaky",
            &new_id(),
            chunked(&sb_invocation("Flaky", b"x"), 2),
        )
        .await;
    reply.assert_problem(500, "invocation_failed");
    server.shutdown().await;
}

#[tokio::test]
async fn permanent_failure_is_422_problem() {
    let server = Server::start(test_app(&Log::default())).await;
    let reply = server
        .invoke("Poison", &new_id(), full(sb_invocation("Poison", b"x")))
        .await;
    reply.assert_problem(422, "invocation_failed");
    server.shutdown().await;
}

#[tokio::test]
async fn undecodable_trigger_is_a_permanent_failure() {
    let log = Log::default();
    let server = Server::start(test_app(&log)).await;
    // Valid JSON, but the binary body is not base64.
    let body =
        br#"{"Data":{"msg":"not base64!"},"Metadata":{"DeliveryCount":"1","MessageId":"\"m\""}}"#;
    let reply = server
        .invoke("ProcessRun", &new_id(), full(&body[..]))
        .await;
    // Service Bus payloads are decoded before the handler runs: it is never called.
    reply.assert_problem(422, "invalid_invocation");
    assert!(log.seen.lock().unwrap().is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn panicking_handler_is_500_and_the_server_keeps_serving() {
    let log = Log::default();
    let server = Server::start(test_app(&log)).await;
    for _ in 0..2 {
        let reply = server
            .invoke("Boom", &new_id(), full(sb_invocation("Boom", b"x")))
            .await;
        reply.assert_problem(500, "invocation_panicked");
    }
    assert_eq!(server.get("/").await.status, StatusCode::OK);
    let reply = server
        .invoke(
            "ProcessRun",
            &new_id(),
            full(sb_invocation("ProcessRun", b"after")),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(&log.seen.lock().unwrap()[0].body[..], b"after");
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_invocation_is_400_problem() {
    let log = Log::default();
    let server = Server::start(test_app(&log)).await;
    for body in [&b"{not json"[..], b"", b"[]", br#"{"Data":[]}"#] {
        let reply = server
            .invoke("ProcessRun", &new_id(), chunked(body, 2))
            .await;
        reply.assert_problem(400, "invalid_invocation");
    }
    assert!(log.seen.lock().unwrap().is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_function_is_404_problem() {
    let server = Server::start(test_app(&Log::default())).await;
    let reply = server
        .invoke(
            "NoSuchFunction",
            &new_id(),
            full(sb_invocation("NoSuchFunction", b"x")),
        )
        .await;
    reply.assert_problem(404, "unknown_function");
    // HTTP functions are forwarded, never invoked by name.
    let reply = server
        .invoke("Echo", &new_id(), full(sb_invocation("Echo", b"x")))
        .await;
    reply.assert_problem(404, "unknown_function");
    // Anything else falls through to a 404 too.
    server
        .get("/api/nope")
        .await
        .assert_problem(404, "not_found");
    server.shutdown().await;
}

#[tokio::test]
async fn bodies_above_axum_default_limit_are_accepted() {
    // A 3 MiB message is over axum's 2 MB default body limit once base64-encoded.
    let log = Log::default();
    let server = Server::start(test_app(&log)).await;
    let message: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let body = sb_invocation("ProcessRun", &message);
    assert!(body.len() > 4 * 1024 * 1024);
    let reply = server
        .invoke("ProcessRun", &new_id(), chunked(&body, 64))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(log.seen.lock().unwrap()[0].body, message);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_invocation_is_413() {
    // 140 MiB: a 100 MB Premium message in base64 plus its envelope.
    assert_eq!(INVOCATION_BODY_LIMIT, 140 * 1024 * 1024);
    let log = Log::default();
    let server = Server::start(test_app(&log)).await;
    let body = Zeros {
        remaining: INVOCATION_BODY_LIMIT + 1,
    }
    .boxed();
    let reply = server.invoke("ProcessRun", &new_id(), body).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(log.seen.lock().unwrap().is_empty());
    // The server is still there.
    assert_eq!(server.get("/").await.status, StatusCode::OK);
}

// --- Forwarded HTTP --------------------------------------------------------------------------

#[tokio::test]
async fn forwarded_http_is_verbatim_both_ways() {
    let log = Log::default();
    let server = Server::start(test_app(&log)).await;
    let bodies: [&[u8]; 3] = [
        b"\x00\x01\xff\xfe binary \x80",
        b"{ \"runId\" :\t\"r1\" ,\r\n  \"step\":2 }  \n",
        b"",
    ];
    for (i, body) in bodies.iter().enumerate() {
        let req = Request::post(server.uri(&format!("/api/runs/r{i}/echo?dry=1")))
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-functions-key", "abc")
            .body(chunked(body, 3))
            .unwrap();
        let reply = server.send(req).await;
        assert_eq!(reply.status.as_u16(), 207);
        assert_eq!(reply.content_type(), "application/octet-stream");
        assert_eq!(
            reply.headers.get("x-run-id"),
            Some(&HeaderValue::from_str(&format!("r{i}")).unwrap())
        );
        let cookies: Vec<_> = reply.headers.get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(cookies, ["a=1; Path=/", "b=2; Path=/"]);
        assert_eq!(&reply.body[..], RAW_RESPONSE);

        let forwarded = log.forwarded.lock().unwrap().last().cloned().unwrap();
        assert_eq!(forwarded.id, format!("r{i}"));
        assert_eq!(&forwarded.body[..], *body);
        assert_eq!(forwarded.headers.get("x-functions-key").unwrap(), "abc");
        // The request really was streamed without a length.
        assert_eq!(
            forwarded.headers.get(header::TRANSFER_ENCODING).unwrap(),
            "chunked"
        );
        assert!(forwarded.headers.get(header::CONTENT_LENGTH).is_none());
    }
    assert_eq!(log.forwarded.lock().unwrap().len(), 3);
    // Nothing went through the invocation path.
    assert!(log.seen.lock().unwrap().is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn forwarded_route_with_content_length() {
    let log = Log::default();
    let server = Server::start(test_app(&log)).await;
    let body = b"{\"a\":1}   ";
    let req = Request::post(server.uri("/api/runs/x/echo"))
        .body(full(&body[..]))
        .unwrap();
    let reply = server.send(req).await;
    assert_eq!(reply.status.as_u16(), 207);
    let forwarded = log.forwarded.lock().unwrap()[0].clone();
    assert_eq!(&forwarded.body[..], body);
    assert_eq!(forwarded.headers.get(header::CONTENT_LENGTH).unwrap(), "10");
    server.shutdown().await;
}

// --- Port ------------------------------------------------------------------------------------

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k| map.get(k).cloned()
}

#[test]
fn port_from_the_documented_variable_first() {
    assert_eq!(
        port_from_env(env(&[("FUNCTIONS_CUSTOMHANDLER_PORT", "7072")])).unwrap(),
        7072
    );
    assert_eq!(
        port_from_env(env(&[
            ("FUNCTIONS_CUSTOMHANDLER_PORT", "7072"),
            ("FUNCTIONS_HTTPWORKER_PORT", "9999")
        ]))
        .unwrap(),
        7072
    );
    assert_eq!(
        port_from_env(env(&[("FUNCTIONS_HTTPWORKER_PORT", "9999")])).unwrap(),
        9999
    );
    assert_eq!(
        port_from_env(env(&[("FUNCTIONS_CUSTOMHANDLER_PORT", " 8080\n")])).unwrap(),
        8080
    );
}

#[test]
fn port_refuses_non_numbers() {
    for bad in ["", "abc", "70000", "-1", "80a", "8 080"] {
        match port_from_env(env(&[
            ("FUNCTIONS_CUSTOMHANDLER_PORT", bad),
            ("FUNCTIONS_HTTPWORKER_PORT", "9999"),
        ])) {
            Err(ServeError::BadPort(raw)) => assert_eq!(raw, bad),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    assert!(matches!(port_from_env(env(&[])), Err(ServeError::NoPort)));
    assert!(matches!(
        port_from_env(env(&[("OTHER_PORT", "1")])),
        Err(ServeError::NoPort)
    ));
}

/// A host-given span maker runs each Service Bus invocation in a span made from the
/// message's `traceparent` application property (and gets nothing when there is none).
#[tokio::test]
async fn service_bus_invocations_run_in_the_hosts_span_with_the_messages_traceparent() {
    use std::sync::Mutex;
    use tower::ServiceExt as _;
    static SEEN: Mutex<Vec<(String, Option<String>)>> = Mutex::new(Vec::new());
    fn maker(function: &str, traceparent: Option<&str>) -> tracing::Span {
        SEEN.lock()
            .unwrap()
            .push((function.to_owned(), traceparent.map(str::to_owned)));
        tracing::Span::none()
    }
    let app = functions_runtime::FunctionApp::new("t")
        .function(
            functions_runtime::FunctionDecl::queue("Work", "q"),
            |_inv| async { Ok(functions_runtime::InvocationResponse::default()) },
        )
        .with_invocation_spans(maker);
    let router = app.router();
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    for props in [json!({"traceparent": tp}), json!({})] {
        let mut delivery = crate::example_delivery(br#"{"n":1}"#);
        delivery.application_properties = props.as_object().unwrap().clone();
        let body = functions_runtime::encode::service_bus_invocation(
            "Work",
            "msg",
            true,
            &delivery,
            chrono::Utc::now(),
        );
        let request = axum::http::Request::post("/Work")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_string()))
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let seen = SEEN.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            ("Work".to_owned(), Some(tp.to_owned())),
            ("Work".to_owned(), None)
        ]
    );
}
