//! For providers' tests (feature `testing`), one copy for every app:
//!
//! - [`FakeVendor`]: a vendor over real HTTP on the loopback, answering as each test says
//!   (its documented shapes, errors, `Retry-After`, slowness), recording every request;
//! - [`Harness`]: what a [`ProviderCall`] needs (a short pipeline, the SSRF-guarded client
//!   with loopback allowed, the credential), owned by the test;
//! - [`execute`] / [`step`]: an operation performed the way a run performs it, from the
//!   JSON a caller would send;
//! - [`conformance`]: the suite every HTTP provider runs against its fake: success, the
//!   vendor's validation error, auth error, 429 + `Retry-After`, 5xx, timeout and a
//!   malformed body, each mapped to the right failure class and retryability.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use custody::SecretMaterial;
use domain::{ConnectionConfig, CredentialKind, FailureClassification, RunId, RunUsage};
use resilience::{CallError, CallKey, Pipeline, Policy, RetryPolicy};
use serde_json::Value;

use crate::operation::{Operation, Serves, Step, parse_input};
use crate::provider::{ProviderCall, fail};

/// A request the fake vendor received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The form fields, in order.
    pub fn form(&self) -> Vec<(String, String)> {
        serde_urlencoded::from_bytes(&self.body).unwrap_or_default()
    }

    pub fn form_field(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// What the fake answers.
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    delay: Duration,
    /// A body sent piece by piece instead of `body`.
    pieces: Option<Vec<Piece>>,
}

/// A piece of a streamed body ([`Reply::streamed`]).
#[derive(Debug, Clone)]
pub enum Piece {
    /// Bytes sent as one chunk.
    Data(String),
    /// A pause.
    Wait(Duration),
    /// The connection dropped mid-body.
    Cut,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
            delay: Duration::ZERO,
            pieces: None,
        }
    }

    pub fn text(status: u16, body: &str) -> Self {
        Reply {
            status,
            headers: vec![("content-type".into(), "text/html".into())],
            body: body.to_owned(),
            delay: Duration::ZERO,
            pieces: None,
        }
    }

    /// A body sent as it is played: chunks, pauses, a cut (server-sent events, NDJSON).
    pub fn streamed(status: u16, content_type: &str, pieces: Vec<Piece>) -> Self {
        Reply {
            status,
            headers: vec![("content-type".into(), content_type.to_owned())],
            body: String::new(),
            delay: Duration::ZERO,
            pieces: Some(pieces),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Answers only after `delay` (to outlast the pipeline's attempt timeout).
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Respond = dyn Fn(&Recorded, usize) -> Reply + Send + Sync;

struct Inner {
    requests: Mutex<Vec<Recorded>>,
    respond: Box<Respond>,
}

/// A vendor on `127.0.0.1:<port>`, reached as `http://localhost:<port>` so that calls go
/// through the guard's resolver (an IP literal would bypass it). `respond` gets each
/// request and its number (from 1).
pub struct FakeVendor {
    pub base: String,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeVendor {
    pub async fn start(
        respond: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let inner = Arc::new(Inner {
            requests: Mutex::new(Vec::new()),
            respond: Box::new(respond),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake vendor");
        let port = listener.local_addr().expect("local address").port();
        let state = inner.clone();
        let router = axum::Router::new().fallback(move |request: Request| {
            let state = state.clone();
            async move { answer(&state, request).await }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakeVendor {
            base: format!("http://localhost:{port}"),
            inner,
            task,
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for FakeVendor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(state: &Inner, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let recorded = Recorded {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
    };
    let n = {
        let mut requests = state.requests.lock().unwrap_or_else(|p| p.into_inner());
        requests.push(recorded.clone());
        requests.len()
    };
    let reply = (state.respond)(&recorded, n);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(name, value);
    }
    let body = match reply.pieces {
        None => Body::from(reply.body),
        Some(pieces) => Body::from_stream(futures::stream::unfold(
            pieces.into_iter(),
            |mut pieces| async move {
                loop {
                    match pieces.next()? {
                        Piece::Data(d) => return Some((Ok(Bytes::from(d)), pieces)),
                        Piece::Wait(d) => tokio::time::sleep(d).await,
                        // Hyper drops the connection when a body fails mid-way.
                        Piece::Cut => {
                            return Some((
                                Err(std::io::Error::other("cut")),
                                Vec::new().into_iter(),
                            ));
                        }
                    }
                }
            },
        )),
    };
    response.body(body).expect("a valid fake response")
}

/// The pipeline's attempt timeout in these tests.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(300);

/// A short policy: `attempts` in all, small delays, a 300 ms attempt timeout.
pub fn policy(attempts: u32) -> Policy {
    Policy {
        attempt_timeout: ATTEMPT_TIMEOUT,
        deadline: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts: attempts,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        },
        ..Policy::default()
    }
}

/// The run id every test call carries (a UUID v7 of 2026-09-01T10:00:00Z, so the time
/// inside it is known).
pub fn run_id() -> String {
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, 1_788_256_800, 0);
    RunId::from_uuid(uuid::Uuid::new_v7(ts)).to_string()
}

/// What a provider call needs, owned by the test.
pub struct Harness {
    pub pipeline: Pipeline,
    pub http: reqwest::Client,
    /// The guard behind `http`.
    pub guard: netguard::Guard,
    pub key: CallKey,
    pub config: ConnectionConfig,
    pub credential: SecretMaterial,
    /// The run's id as providers get it (`None`: a call outside a run).
    pub idempotency_key: Option<String>,
    /// The access tokens of this harness's calls (shared by them, as the kit shares its own).
    pub tokens: crate::TokenCache,
}

impl Harness {
    /// One attempt per call unless [`Harness::attempts`] says otherwise. The client is
    /// the SSRF-guarded one the kit builds, with `localhost` allowed the way
    /// `OUTBOUND_ALLOWED_HOSTS=localhost` allows it in development.
    pub fn new(provider: &str, kind: CredentialKind, secret: Value, config: Value) -> Self {
        Self::with_policy(provider, kind, secret, config, policy(1))
    }

    /// [`Harness::new`] with a pipeline of `policy`.
    pub fn with_policy(
        provider: &str,
        kind: CredentialKind,
        secret: Value,
        config: Value,
        policy: Policy,
    ) -> Self {
        let Value::Object(config) = config else {
            panic!("config must be an object");
        };
        // Loopback is allowed the way `OUTBOUND_ALLOWED_HOSTS` allows it in development.
        let Value::Object(fields) = secret else {
            panic!("secret must be an object");
        };
        let guard = netguard::Guard::from_setting(Some("127.0.0.1,localhost"));
        Harness {
            pipeline: Pipeline::new(policy),
            http: guard.client(Duration::from_secs(5)),
            guard,
            key: CallKey::new("tenant-a", provider),
            config,
            credential: SecretMaterial::new(kind, fields).expect("valid test credential"),
            idempotency_key: Some(run_id()),
            tokens: crate::TokenCache::default(),
        }
    }

    pub fn attempts(mut self, n: u32) -> Self {
        self.pipeline = Pipeline::new(policy(n));
        self
    }

    /// The production guard with no exceptions: `localhost` is refused.
    pub fn strict_guard(mut self) -> Self {
        self.guard = netguard::Guard::strict();
        self.http = self.guard.client(Duration::from_secs(5));
        self
    }

    pub fn call(&self) -> ProviderCall<'_> {
        ProviderCall {
            pipeline: &self.pipeline,
            http: &self.http,
            guard: &self.guard,
            key: &self.key,
            config: &self.config,
            credential: &self.credential,
            traceparent: None,
            idempotency_key: self.idempotency_key.as_deref(),
            max_attempts: None,
            rate_limit: None,
            receipt_url: None,
            tokens: &self.tokens,
        }
    }
}

/// Asserts that none of `secrets` shows in the error, however it is printed.
pub fn assert_no_secret(e: &CallError, secrets: &[&str]) {
    let shown = format!("{e} {e:?} {:?}", e.failure);
    for secret in secrets {
        assert!(!shown.contains(secret), "a secret leaked into {shown}");
    }
}

/// What a test reads of a finished operation: the output as the run keeps it (also its
/// summary unless the provider gave one), the usage and the vendor's message id.
#[derive(Debug, Clone, PartialEq)]
pub struct Ran {
    pub output: Value,
    pub summary: Value,
    pub usage: RunUsage,
    pub vendor_message_id: Option<String>,
}

/// Performs `O` through `provider` with `input` as a run would: the input parsed as the
/// operation's (a bad one fails as `validation`, as at execution), a finished answer
/// expected (a provider that answers "wait" makes this panic: use [`step`] for those).
pub async fn execute<O, P>(
    provider: &P,
    call: &ProviderCall<'_>,
    input: &Value,
) -> Result<Ran, CallError>
where
    O: Operation,
    P: Serves<O>,
{
    match step::<O, P>(provider, call, input).await? {
        Step::Done(done) => {
            let output = serde_json::to_value(&done.output).expect("the output serialises");
            Ok(Ran {
                summary: done.summary.unwrap_or_else(|| output.clone()),
                output,
                usage: done.usage,
                vendor_message_id: done.vendor_message_id,
            })
        }
        Step::Wait(wait) => panic!("{} answered wait: {wait:?}", O::NAME),
    }
}

/// [`execute`] as a method of the provider: `provider.perform(&call, &json)` (the operation
/// is inferred when the provider serves one; else `Perform::<Op>::perform`).
pub trait Perform<O: Operation> {
    fn perform(
        &self,
        call: &ProviderCall<'_>,
        input: &Value,
    ) -> impl std::future::Future<Output = Result<Ran, CallError>>;
}

impl<O: Operation, P: Serves<O>> Perform<O> for P {
    async fn perform(&self, call: &ProviderCall<'_>, input: &Value) -> Result<Ran, CallError> {
        execute::<O, P>(self, call, input).await
    }
}

/// One call of `O` through `provider`, whatever it answers.
pub async fn step<O, P>(
    provider: &P,
    call: &ProviderCall<'_>,
    input: &Value,
) -> Result<Step<O::Output>, CallError>
where
    O: Operation,
    P: Serves<O>,
{
    let input = parse_input::<O>(input)
        .map_err(|e| fail(FailureClassification::Validation, e.to_string()))?;
    Serves::<O>::execute(provider, call, &input).await
}

/// One situation of the conformance suite: what the fake vendor is asked to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// The operation succeeds.
    Success,
    /// The vendor refuses the request itself (its documented answer to a bad request).
    Invalid,
    /// The vendor refuses the credential.
    Unauthorized,
    /// The vendor throttles, asking to come back in [`THROTTLE_SECS`] seconds (its own way:
    /// `Retry-After`, or its rate-limit headers).
    Throttled,
    /// The vendor fails (5xx).
    ServerError,
    /// A success status whose body cannot be read.
    Malformed,
}

/// What [`Case::Throttled`] asks the vendor to say.
pub const THROTTLE_SECS: u64 = 7;

/// How a vendor answers each case, in its documented shapes. `None`: the vendor has no such
/// answer (a provider whose success carries no body cannot get a malformed one); the case
/// is then reported as not applicable, with the reason the script gives.
pub trait VendorScript: Send + Sync + 'static {
    fn reply(&self, case: Case, request: &Recorded) -> Result<Reply, &'static str>;
}

/// The conformance suite for operation `O` of `provider`: for each [`Case`], and for a
/// vendor too slow to answer, a fresh [`FakeVendor`] answering by `script`, a harness from
/// `harness(base_url)` (one attempt), one call with `input`; then the outcome's class and
/// retryability are checked, and that no value of `secrets` shows in any failure. Answers
/// the cases that did not apply, with the script's reasons. `repeatable`: whether the
/// vendor de-duplicates the operation (an idempotency key), so that a 5xx, which may have
/// been processed, may be tried again; without one it must not be.
pub async fn conformance<O, P, S>(
    provider: &P,
    script: S,
    harness: impl Fn(&str) -> Harness,
    input: Value,
    secrets: &[&str],
    repeatable: bool,
) -> Vec<(Case, &'static str)>
where
    O: Operation,
    P: Serves<O>,
    S: VendorScript,
{
    let script = Arc::new(script);
    let mut skipped = Vec::new();
    let cases = [
        Some(Case::Success),
        Some(Case::Invalid),
        Some(Case::Unauthorized),
        Some(Case::Throttled),
        Some(Case::ServerError),
        Some(Case::Malformed),
        // A vendor that answers a success too late.
        None,
    ];
    for case in cases {
        let script_for_fake = script.clone();
        let not_applicable = Arc::new(Mutex::new(None));
        let flag = not_applicable.clone();
        let fake = FakeVendor::start(move |request, _| {
            let reply = script_for_fake.reply(case.unwrap_or(Case::Success), request);
            match reply {
                Ok(reply) if case.is_none() => reply.after(ATTEMPT_TIMEOUT * 4),
                Ok(reply) => reply,
                Err(why) => {
                    *flag.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
                    Reply::text(500, "not applicable")
                }
            }
        })
        .await;
        let h = harness(&fake.base).attempts(1);
        let outcome = step::<O, P>(provider, &h.call(), &input).await;
        if let Some(why) = *not_applicable.lock().unwrap_or_else(|p| p.into_inner()) {
            skipped.push((case.unwrap_or(Case::Success), why));
            continue;
        }
        let name = case.map_or("timeout".to_owned(), |c| format!("{c:?}"));
        let e = match (case, outcome) {
            (Some(Case::Success), Ok(_)) => continue,
            (Some(Case::Success), Err(e)) => {
                panic!("{}: a success failed: {e:?}", O::NAME)
            }
            (_, Ok(_)) => panic!("{}: {name} was taken for a success", O::NAME),
            (_, Err(e)) => e,
        };
        assert_no_secret(&e, secrets);
        let class = e.class();
        match case {
            Some(Case::Invalid) => {
                assert!(
                    matches!(
                        class,
                        FailureClassification::Validation | FailureClassification::Unprocessable
                    ),
                    "{name}: {class:?} {e:?}"
                );
                assert!(!e.retryable, "{name}: a refused request is not retried");
            }
            Some(Case::Unauthorized) => {
                assert_eq!(class, FailureClassification::Auth, "{name}: {e:?}");
                assert!(!e.retryable, "{name}: a refused credential is not retried");
            }
            Some(Case::Throttled) => {
                assert_eq!(class, FailureClassification::RateLimited, "{name}: {e:?}");
                assert!(e.retryable, "{name}: throttling is retried later");
                assert_eq!(
                    e.failure.retry_after,
                    Some(Duration::from_secs(THROTTLE_SECS)),
                    "{name}: the vendor's hint is kept"
                );
            }
            Some(Case::ServerError) => {
                assert_eq!(class, FailureClassification::Transient, "{name}: {e:?}");
                assert_eq!(
                    e.retryable, repeatable,
                    "{name}: a vendor outage is retried exactly when the vendor de-duplicates"
                );
            }
            Some(Case::Malformed) => {
                assert_eq!(class, FailureClassification::VendorError, "{name}: {e:?}");
                assert!(
                    !e.retryable,
                    "{name}: the vendor may have done the work: never repeated blindly"
                );
            }
            None => {
                assert_eq!(class, FailureClassification::Timeout, "{name}: {e:?}");
            }
            Some(Case::Success) => unreachable!(),
        }
    }
    skipped
}
