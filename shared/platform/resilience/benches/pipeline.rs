//! The pipeline's cost per call: `cargo bench -p resilience --bench pipeline`.
//!
//! A local no-op HTTP server answers 204; the same keep-alive client calls it directly
//! (`raw`) and through the pipeline with a rate limit and a traceparent (`pipeline`). The
//! difference of the medians is what the pipeline adds per call; `in_process` measures the
//! pipeline's own bookkeeping without the network (breaker, limiter, budget, key lookup)
//! by failing fast on an open circuit.

use std::num::NonZeroU32;
use std::sync::OnceLock;

use envelope::TraceParent;
use resilience::{Call, CallKey, HttpStatus, Pipeline, Policy, RateLimit, Safety};

fn main() {
    divan::main();
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    url: String,
    client: reqwest::Client,
    pipeline: Pipeline,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let url = rt.block_on(async {
            let app = axum::Router::new().route(
                "/noop",
                axum::routing::post(|| async { axum::http::StatusCode::NO_CONTENT }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let url = format!("http://{}/noop", listener.local_addr().expect("addr"));
            tokio::spawn(async move { axum::serve(listener, app).await });
            url
        });
        Fixture {
            rt,
            url,
            client: reqwest::Client::new(),
            pipeline: Pipeline::new(Policy::default()),
        }
    })
}

fn limit() -> RateLimit {
    RateLimit {
        per_second: NonZeroU32::new(10_000_000).expect("non-zero"),
        burst: NonZeroU32::new(10_000_000).expect("non-zero"),
    }
}

#[divan::bench(sample_count = 200, sample_size = 20)]
fn raw(b: divan::Bencher<'_, '_>) {
    let f = fixture();
    b.bench(|| {
        f.rt.block_on(async {
            let r = f.client.post(&f.url).body("{}").send().await.expect("send");
            r.bytes().await.expect("body")
        })
    });
}

#[divan::bench(sample_count = 200, sample_size = 20)]
fn pipeline(b: divan::Bencher<'_, '_>) {
    let f = fixture();
    let key = CallKey::new("tenant", "noop");
    let tp = TraceParent::new_root();
    b.bench(|| {
        f.rt.block_on(async {
            let call = Call::new(&key, Safety::Unsafe, &HttpStatus)
                .traceparent(Some(&tp))
                .rate_limit(Some(limit()));
            f.pipeline
                .send(call, || f.client.post(&f.url).body("{}"))
                .await
                .expect("send")
        })
    });
}

/// The pipeline's bookkeeping alone: a key whose circuit is open is refused after the
/// key lookup and the breaker check, with no I/O.
#[divan::bench(sample_count = 200, sample_size = 1000)]
fn in_process(b: divan::Bencher<'_, '_>) {
    let f = fixture();
    let policy = Policy {
        breaker: resilience::BreakerPolicy {
            failure_threshold: 1,
            open_for: std::time::Duration::from_secs(3600),
        },
        ..Policy::default()
    };
    let p = Pipeline::new(policy);
    let key = CallKey::new("tenant", "down");
    let closed = "http://127.0.0.1:9/never";
    f.rt.block_on(async {
        let _ = p
            .send(
                Call::new(&key, Safety::Safe, &HttpStatus).max_attempts(1),
                || f.client.get(closed),
            )
            .await;
    });
    b.bench(|| {
        f.rt.block_on(async {
            p.send(Call::new(&key, Safety::Safe, &HttpStatus), || {
                f.client.get(closed)
            })
            .await
            .expect_err("open")
        })
    });
}
