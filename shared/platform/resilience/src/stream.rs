//! Streamed answers (a model's tokens as they come): the pipeline as for any call up to
//! the answer's headers (breaker, vendor `Retry-After`, rate limiter, retries of failed
//! attempts), then the stream's own clocks: time to first byte, silence between chunks, and
//! the whole stream. Nothing is retried once the answer has begun: its first bytes may
//! already be on their way to the caller.

use std::time::{Duration, Instant};

use bytes::Bytes;
use domain::FailureClassification;
use http::{HeaderMap, StatusCode};

use crate::{
    Call, CallError, Outcome, Pipeline, VendorFailure, Verdict, classified_failure, read_body,
    transport_failure,
};

/// The clocks of a streamed answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamTimeouts {
    /// From the request to the first bytes of the body, headers included (default 60 s:
    /// a self-hosted model may load first). It is also the attempt timeout up to the
    /// headers, in place of the policy's.
    pub first_byte: Duration,
    /// The longest silence between two chunks once the stream has begun (default 30 s).
    pub idle: Duration,
    /// The whole stream, from the request (default 200 s: below the 230 s an HTTP-triggered
    /// function may take to answer in Azure, so the caller hears the end from us).
    pub total: Duration,
}

impl Default for StreamTimeouts {
    fn default() -> Self {
        StreamTimeouts {
            first_byte: Duration::from_secs(60),
            idle: Duration::from_secs(30),
            total: Duration::from_secs(200),
        }
    }
}

/// An answer whose body is read as it arrives ([`VendorStream::next`]).
#[derive(Debug)]
pub struct VendorStream {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// Attempts it took to get the headers.
    pub attempts: u32,
    /// `None` once the body ended, failed or timed out.
    response: Option<reqwest::Response>,
    timeouts: StreamTimeouts,
    sent: Instant,
    /// When the first and the last chunk came (`None`: none yet).
    first_chunk: Option<Instant>,
    last_chunk: Option<Instant>,
}

impl VendorStream {
    /// The next chunk; `None` at the body's end. A body cut short, a first byte or a chunk
    /// that comes too late, or a stream past its total time is one failure, then `None`.
    ///
    /// Cancel-safe: dropping the future loses no bytes, and the clocks run from the
    /// request and from the last chunk, not from this call (so a caller may wait on it
    /// beside a keep-alive tick).
    pub async fn next(&mut self) -> Option<Result<Bytes, VendorFailure>> {
        loop {
            let response = self.response.as_mut()?;
            let total_by = self.sent + self.timeouts.total;
            let (by, late) = match self.last_chunk {
                None => (self.sent + self.timeouts.first_byte, Late::FirstByte),
                Some(at) => (at + self.timeouts.idle, Late::Idle),
            };
            let (by, late) = if total_by <= by {
                (total_by, Late::Total)
            } else {
                (by, late)
            };
            let read = tokio::time::timeout_at(by.into(), response.chunk()).await;
            return match read {
                Ok(Ok(Some(chunk))) if chunk.is_empty() => continue,
                Ok(Ok(Some(chunk))) => {
                    let now = Instant::now();
                    self.first_chunk.get_or_insert(now);
                    self.last_chunk = Some(now);
                    Some(Ok(chunk))
                }
                Ok(Ok(None)) => {
                    self.response = None;
                    None
                }
                Ok(Err(_)) => {
                    self.response = None;
                    Some(Err(VendorFailure::new(
                        FailureClassification::Transient,
                        "the vendor's stream was cut short",
                    )))
                }
                Err(_) => {
                    self.response = None;
                    Some(Err(late.failure(&self.timeouts)))
                }
            };
        }
    }

    /// Whether any chunk has come yet.
    pub fn started(&self) -> bool {
        self.last_chunk.is_some()
    }

    /// How long the first chunk took from the request (`None` before it).
    pub fn first_byte_after(&self) -> Option<Duration> {
        self.first_chunk.map(|at| at - self.sent)
    }
}

/// Which clock ran out.
#[derive(Clone, Copy)]
enum Late {
    FirstByte,
    Idle,
    Total,
}

impl Late {
    fn failure(self, t: &StreamTimeouts) -> VendorFailure {
        let message = match self {
            Late::FirstByte => format!(
                "the vendor sent nothing within {} s of the request",
                t.first_byte.as_secs_f64()
            ),
            Late::Idle => format!(
                "the vendor's stream went silent for more than {} s",
                t.idle.as_secs_f64()
            ),
            Late::Total => format!("the stream ran past its {} s limit", t.total.as_secs_f64()),
        };
        VendorFailure::new(FailureClassification::Timeout, message)
    }
}

impl Pipeline {
    /// Sends the request `build` makes like [`Pipeline::send`] up to the answer's headers
    /// (each attempt bounded by `timeouts.first_byte`); a successful answer's body is then
    /// read through [`VendorStream::next`] under the stream's clocks. An unsuccessful answer
    /// is read whole and classified, as `send` does.
    pub async fn stream<F>(
        &self,
        call: Call<'_>,
        timeouts: StreamTimeouts,
        build: F,
    ) -> Result<VendorStream, CallError>
    where
        F: Fn() -> reqwest::RequestBuilder,
    {
        let call = call.attempt_timeout(timeouts.first_byte);
        let ((response, sent), attempts) = self
            .execute(call, |_| stream_attempt(&call, &build, &timeouts))
            .await?;
        Ok(VendorStream {
            status: response.status(),
            headers: response.headers().clone(),
            attempts,
            response: Some(response),
            timeouts,
            sent,
            first_chunk: None,
            last_chunk: None,
        })
    }
}

/// One attempt up to a streamed answer's headers.
async fn stream_attempt<F>(
    call: &Call<'_>,
    build: &F,
    timeouts: &StreamTimeouts,
) -> Outcome<(reqwest::Response, Instant)>
where
    F: Fn() -> reqwest::RequestBuilder,
{
    // The client's own timeout is a single attempt's; a stream lives longer. The
    // stream's clocks are kept by `VendorStream::next`; this only stops a leak.
    let mut request = build().timeout(timeouts.total + Duration::from_secs(5));
    if let Some(tp) = call.traceparent {
        request = request.header("traceparent", tp.child().to_string());
    }
    let sent = Instant::now();
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return transport_failure(&e),
    };
    let status = response.status();
    if status.is_success() {
        // The body is the stream: classified on status and headers alone.
        return match call.classifier.classify(status, response.headers(), &[]) {
            Verdict::Success => Outcome::Done((response, sent)),
            Verdict::Failure(failure) => classified_failure(failure),
        };
    }
    let headers = response.headers().clone();
    match read_body(response).await {
        Err(e) => transport_failure(&e),
        Ok(body) => match call.classifier.classify(status, &headers, &body) {
            Verdict::Failure(failure) => classified_failure(failure),
            // Not a 2xx, yet not a failure to the classifier: not a stream either.
            Verdict::Success => classified_failure(VendorFailure::new(
                FailureClassification::VendorError,
                format!(
                    "the vendor answered {} instead of a stream",
                    status.as_u16()
                ),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use axum::body::Body;
    use axum::response::Response;
    use tokio::sync::Notify;

    use super::*;
    use crate::{CallKey, HttpStatus, Policy, Safety};

    /// What the vendor's body does, in order.
    #[derive(Clone)]
    enum Part {
        Chunk(&'static str),
        Wait(Duration),
        /// Waits until the test lets it go on.
        Gate(Arc<Notify>),
        /// Ends the connection mid-body.
        Cut,
        /// Sends a chunk every 20 ms, forever.
        Drip,
    }

    /// A real HTTP vendor: the first `failures` requests get a 503, the rest a 200 whose
    /// body plays `parts`.
    async fn vendor(failures: u32, parts: Vec<Part>) -> (String, Arc<AtomicU32>) {
        let calls = Arc::new(AtomicU32::new(0));
        let seen = calls.clone();
        let app = axum::Router::new().route(
            "/stream",
            axum::routing::post(move || {
                let parts = parts.clone();
                let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    if n <= failures {
                        return Response::builder()
                            .status(503)
                            .body(Body::from("{}"))
                            .unwrap();
                    }
                    let body = futures::stream::unfold(parts, |mut parts| async move {
                        loop {
                            if parts.is_empty() {
                                return None;
                            }
                            match parts.remove(0) {
                                Part::Chunk(c) => {
                                    return Some((Ok(Bytes::from_static(c.as_bytes())), parts));
                                }
                                Part::Wait(d) => tokio::time::sleep(d).await,
                                Part::Gate(g) => g.notified().await,
                                Part::Cut => {
                                    return Some((Err(std::io::Error::other("cut")), Vec::new()));
                                }
                                Part::Drip => {
                                    tokio::time::sleep(Duration::from_millis(20)).await;
                                    parts.insert(0, Part::Drip);
                                    return Some((Ok(Bytes::from_static(b".")), parts));
                                }
                            }
                        }
                    });
                    Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(Body::from_stream(body))
                        .unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/stream", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, calls)
    }

    fn policy() -> Policy {
        Policy {
            retry: crate::RetryPolicy {
                max_attempts: 3,
                base_delay: Duration::from_millis(5),
                max_delay: Duration::from_millis(20),
            },
            ..Policy::default()
        }
    }

    fn timeouts(first_byte_ms: u64, idle_ms: u64, total_ms: u64) -> StreamTimeouts {
        StreamTimeouts {
            first_byte: Duration::from_millis(first_byte_ms),
            idle: Duration::from_millis(idle_ms),
            total: Duration::from_millis(total_ms),
        }
    }

    async fn open(url: &str, t: StreamTimeouts) -> Result<VendorStream, CallError> {
        let key = CallKey::new("t1", "acme");
        let http = reqwest::Client::builder()
            // As the kit's client: a timeout meant for one short attempt.
            .timeout(Duration::from_millis(100))
            .build()
            .unwrap();
        Pipeline::new(policy())
            .stream(Call::new(&key, Safety::Idempotent, &HttpStatus), t, || {
                http.post(url)
            })
            .await
    }

    #[tokio::test]
    async fn chunks_arrive_as_the_vendor_sends_them_after_retried_headers() {
        let gate = Arc::new(Notify::new());
        let (url, calls) = vendor(
            1,
            vec![
                Part::Chunk("first"),
                Part::Gate(gate.clone()),
                Part::Wait(Duration::from_millis(150)),
                Part::Chunk("second"),
            ],
        )
        .await;
        let mut stream = open(&url, timeouts(1000, 1000, 5000)).await.unwrap();
        assert_eq!(stream.attempts, 2, "the 503 before the headers was retried");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(!stream.started());
        // The second chunk does not exist until the gate opens: the first came alone.
        let first = tokio::time::timeout(Duration::from_secs(2), stream.next())
            .await
            .expect("the first chunk is not held back");
        assert_eq!(first.unwrap().unwrap(), "first");
        assert!(stream.first_byte_after().is_some());
        gate.notify_one();
        // The client's own 100 ms timeout does not cut a stream that lives longer.
        assert_eq!(stream.next().await.unwrap().unwrap(), "second");
        assert!(stream.next().await.is_none());
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn each_clock_of_a_stream_ends_it_with_a_timeout_that_names_it() {
        let cases = [
            (
                vec![Part::Wait(Duration::from_secs(2)), Part::Chunk("late")],
                "sent nothing within 0.2 s",
            ),
            (
                vec![Part::Chunk("a"), Part::Wait(Duration::from_secs(2))],
                "went silent for more than 0.2 s",
            ),
            (vec![Part::Drip], "ran past its 0.5 s limit"),
        ];
        for (parts, says) in cases {
            let (url, _) = vendor(0, parts).await;
            let mut stream = open(&url, timeouts(200, 200, 500)).await.unwrap();
            let failure = loop {
                match stream.next().await {
                    Some(Ok(_)) => continue,
                    Some(Err(f)) => break f,
                    None => panic!("the stream ended without its timeout ({says})"),
                }
            };
            assert_eq!(failure.class, FailureClassification::Timeout, "{says}");
            assert!(failure.message.contains(says), "{}", failure.message);
            assert!(stream.next().await.is_none(), "nothing after the failure");
        }
    }

    #[tokio::test]
    async fn a_stream_cut_mid_body_is_one_transient_failure() {
        let (url, _) = vendor(
            0,
            vec![
                Part::Chunk("a"),
                Part::Wait(Duration::from_millis(50)),
                Part::Cut,
            ],
        )
        .await;
        let mut stream = open(&url, timeouts(1000, 1000, 5000)).await.unwrap();
        assert_eq!(stream.next().await.unwrap().unwrap(), "a");
        let cut = stream.next().await.unwrap().unwrap_err();
        assert_eq!(cut.class, FailureClassification::Transient);
        assert!(cut.message.contains("cut short"), "{}", cut.message);
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn failed_answers_are_read_whole_and_classified_after_the_retries() {
        let (url, calls) = vendor(u32::MAX, vec![]).await;
        let e = open(&url, timeouts(1000, 1000, 5000)).await.unwrap_err();
        assert_eq!(e.class(), FailureClassification::Transient);
        assert_eq!(e.attempts, 3);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
