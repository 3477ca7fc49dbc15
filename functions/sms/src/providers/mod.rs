//! One module per SMS provider: `fake` (in-process), `twilio` (Twilio Programmable
//! Messaging), `nineteen` (019, catalogue key `019`) and `acs` (Azure Communication
//! Services SMS, `acs-sms`). What they share lives here: how many segments a message takes,
//! what an accepted send produces, and how a vendor's own text may enter an error message.

pub mod acs;
pub mod fake;
pub mod nineteen;
pub mod twilio;

/// What an accepted send produced: the vendor's message id (delivery receipts find the run by
/// it), its status, the segments (also the run's usage) and the attempts; `extra` adds the
/// vendor's own fields. Never the number or the text.
pub(crate) fn sent(
    message_id: String,
    status: &str,
    parts: u64,
    attempts: u32,
    extra: &[(&str, serde_json::Value)],
) -> integration_kit::Done<crate::SmsSent> {
    let vendor = extra
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    integration_kit::Done::new(crate::SmsSent {
        message_id: message_id.clone(),
        status: status.to_owned(),
        segments: parts,
        attempts,
        vendor,
    })
    .usage(domain::RunUsage {
        units: parts,
        ..domain::RunUsage::default()
    })
    .vendor_message_id(message_id)
}

/// The GSM 03.38 default alphabet: one septet each.
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// The extension table: an escape and the character, two septets each.
const GSM7_EXTENSION: &str = "\u{c}^{}\\[~]|€";

/// SMS segments a body takes when the vendor does not say: GSM-7 bodies fit 160 septets
/// alone and 153 per part when concatenated; anything else (Hebrew, emoji) goes as UCS-2,
/// 70 UTF-16 units alone and 67 per part.
pub fn segments(body: &str) -> u64 {
    let mut septets = 0u64;
    let mut gsm = true;
    for c in body.chars() {
        if GSM7_BASIC.contains(c) {
            septets += 1;
        } else if GSM7_EXTENSION.contains(c) {
            septets += 2;
        } else {
            gsm = false;
            break;
        }
    }
    let (units, alone, per_part) = if gsm {
        (septets, 160, 153)
    } else {
        (body.encode_utf16().count() as u64, 70, 67)
    };
    if units <= alone {
        1
    } else {
        units.div_ceil(per_part)
    }
}

pub(crate) use integration_kit::vendor_text;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_follow_the_encoding() {
        assert_eq!(segments("hi"), 1);
        assert_eq!(segments(&"a".repeat(160)), 1);
        assert_eq!(segments(&"a".repeat(161)), 2);
        assert_eq!(segments(&"a".repeat(306)), 2);
        assert_eq!(segments(&"a".repeat(307)), 3);
        // Extension characters take two septets.
        assert_eq!(segments(&"€".repeat(80)), 1);
        assert_eq!(segments(&"€".repeat(81)), 2);
        // Hebrew goes as UCS-2.
        assert_eq!(segments(&"ש".repeat(70)), 1);
        assert_eq!(segments(&"ש".repeat(71)), 2);
        assert_eq!(segments(&"ש".repeat(135)), 3);
    }
}

/// What the providers' tests share: a fake vendor over real HTTP on the loopback, and a
/// [`ProviderCall`](integration_kit::ProviderCall) with a short pipeline policy and the
/// SSRF-guarded client.
#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use axum::body::{Body, Bytes};
    use axum::extract::Request;
    use axum::http::{HeaderMap, Method};
    use axum::response::Response;
    use custody::SecretMaterial;
    use domain::{ConnectionConfig, CredentialKind, RunId};
    use integration_kit::ProviderCall;
    use resilience::{CallError, CallKey, Pipeline, Policy, RetryPolicy};
    use serde_json::Value;

    /// A request the fake vendor received.
    #[derive(Debug, Clone)]
    pub(crate) struct Recorded {
        pub(crate) method: Method,
        pub(crate) path: String,
        pub(crate) query: Option<String>,
        pub(crate) headers: HeaderMap,
        pub(crate) body: Bytes,
    }

    impl Recorded {
        pub(crate) fn header(&self, name: &str) -> Option<&str> {
            self.headers.get(name).and_then(|v| v.to_str().ok())
        }

        pub(crate) fn json(&self) -> Value {
            serde_json::from_slice(&self.body).unwrap_or(Value::Null)
        }

        /// The form fields, in order.
        pub(crate) fn form(&self) -> Vec<(String, String)> {
            serde_urlencoded::from_bytes(&self.body).unwrap_or_default()
        }

        pub(crate) fn form_field(&self, name: &str) -> Option<String> {
            self.form()
                .into_iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v)
        }
    }

    /// What the fake answers.
    pub(crate) struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
        delay: Duration,
    }

    impl Reply {
        pub(crate) fn json(status: u16, body: Value) -> Self {
            Reply {
                status,
                headers: vec![("content-type".into(), "application/json".into())],
                body: body.to_string(),
                delay: Duration::ZERO,
            }
        }

        pub(crate) fn text(status: u16, body: &str) -> Self {
            Reply {
                status,
                headers: vec![("content-type".into(), "text/html".into())],
                body: body.to_owned(),
                delay: Duration::ZERO,
            }
        }

        pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
            self.headers.push((name.to_owned(), value.to_owned()));
            self
        }

        /// Answers only after `delay` (to outlast the pipeline's attempt timeout).
        pub(crate) fn after(mut self, delay: Duration) -> Self {
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
    pub(crate) struct FakeVendor {
        pub(crate) base: String,
        inner: Arc<Inner>,
        task: tokio::task::JoinHandle<()>,
    }

    impl FakeVendor {
        pub(crate) async fn start(
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

        pub(crate) fn requests(&self) -> Vec<Recorded> {
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
        response
            .body(Body::from(reply.body))
            .expect("a valid fake response")
    }

    /// The pipeline's attempt timeout in these tests.
    pub(crate) const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(300);

    /// A short policy: `attempts` in all, small delays, a 300 ms attempt timeout.
    pub(crate) fn policy(attempts: u32) -> Policy {
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
    pub(crate) fn run_id() -> String {
        let ts = uuid::Timestamp::from_unix(uuid::NoContext, 1_788_256_800, 0);
        RunId::from_uuid(uuid::Uuid::new_v7(ts)).to_string()
    }

    /// What a provider call needs, owned by the test.
    pub(crate) struct Harness {
        pub(crate) pipeline: Pipeline,
        pub(crate) http: reqwest::Client,
        pub(crate) key: CallKey,
        pub(crate) config: ConnectionConfig,
        pub(crate) credential: SecretMaterial,
        pub(crate) idempotency_key: String,
    }

    impl Harness {
        /// One attempt per call unless [`Harness::attempts`] says otherwise. The client is
        /// the SSRF-guarded one the kit builds, with `localhost` allowed the way
        /// `OUTBOUND_ALLOWED_HOSTS=localhost` allows it in development.
        pub(crate) fn new(
            provider: &str,
            config: Value,
            kind: CredentialKind,
            secret: Value,
        ) -> Self {
            let Value::Object(config) = config else {
                panic!("config must be an object");
            };
            let Value::Object(fields) = secret else {
                panic!("secret must be an object");
            };
            Harness {
                pipeline: Pipeline::new(policy(1)),
                http: netguard::Guard::from_setting(Some("localhost"))
                    .client(Duration::from_secs(5)),
                key: CallKey::new("tenant-a", provider),
                config,
                credential: SecretMaterial::new(kind, fields).expect("valid test credential"),
                idempotency_key: run_id(),
            }
        }

        pub(crate) fn attempts(mut self, n: u32) -> Self {
            self.pipeline = Pipeline::new(policy(n));
            self
        }

        /// The production guard with no exceptions: `localhost` is refused.
        pub(crate) fn strict_guard(mut self) -> Self {
            self.http = netguard::Guard::strict().client(Duration::from_secs(5));
            self
        }

        pub(crate) fn call(&self) -> ProviderCall<'_> {
            ProviderCall {
                pipeline: &self.pipeline,
                http: &self.http,
                key: &self.key,
                config: &self.config,
                credential: &self.credential,
                traceparent: None,
                idempotency_key: Some(&self.idempotency_key),
                max_attempts: None,
                rate_limit: None,
                receipt_url: None,
            }
        }
    }

    /// `send` through a provider as a run performs it, from the JSON a caller sends.
    pub(crate) trait SendThrough {
        async fn send(
            &self,
            call: &ProviderCall<'_>,
            input: &Value,
        ) -> Result<integration_kit::testing::Ran, CallError>;
    }

    impl<P: integration_kit::Serves<crate::Send>> SendThrough for P {
        async fn send(
            &self,
            call: &ProviderCall<'_>,
            input: &Value,
        ) -> Result<integration_kit::testing::Ran, CallError> {
            integration_kit::testing::execute::<crate::Send, P>(self, call, input).await
        }
    }

    /// Asserts that none of `secrets` shows in the error, however it is printed.
    pub(crate) fn assert_no_secret(e: &CallError, secrets: &[&str]) {
        let shown = format!("{e} {e:?}");
        for secret in secrets {
            assert!(!shown.contains(secret), "a secret leaked into {shown}");
        }
    }
}
