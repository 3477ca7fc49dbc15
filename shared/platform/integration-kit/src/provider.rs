//! What a vendor app writes: its provider adapters (and, in `operation`, its operations). Everything else
//! (connections, runs, idempotency, the executor, failover, failures, re-tests) is the kit's.

use async_trait::async_trait;
use custody::SecretMaterial;
use domain::{ConnectionConfig, CredentialKind, FailureClassification};
use envelope::TraceParent;
use resilience::{
    Call, CallError, CallKey, Classifier, Pipeline, RateLimit, Safety, VendorFailure,
};
use secrecy::ExposeSecret as _;
use serde_json::Value;

/// What one provider call has to work with. Credentials are resolved per call (through
/// custody's short-lived cache), so a rotation takes effect without a restart.
pub struct ProviderCall<'a> {
    pub pipeline: &'a Pipeline,
    /// The SSRF-guarded client: base URLs come from connection config, i.e. from users.
    pub http: &'a reqwest::Client,
    /// The guard behind `http`, for URLs a credential names (a token endpoint): an IP
    /// literal never reaches the guard's resolver, so such URLs are checked before use.
    pub guard: &'a netguard::Guard,
    pub key: &'a CallKey,
    pub config: &'a ConnectionConfig,
    pub credential: &'a SecretMaterial,
    pub traceparent: Option<&'a TraceParent>,
    /// Stable for one logical call across retries and redeliveries (derived from the run
    /// id): what vendors with idempotency keys are given.
    pub idempotency_key: Option<&'a str>,
    /// Attempts the pipeline may make (failover sets 1 when another provider is next).
    pub max_attempts: Option<u32>,
    pub rate_limit: Option<RateLimit>,
    /// Where the vendor should send delivery receipts for this connection (the app's
    /// public receipt URL), when the app's URL is known.
    pub receipt_url: Option<&'a str>,
    /// The app's access tokens ([`ProviderCall::access_token`]).
    pub tokens: &'a crate::tokens::TokenCache,
}

impl<'a> ProviderCall<'a> {
    /// The pipeline parameters of this call.
    pub fn call(&self, safety: Safety, classifier: &'a dyn Classifier) -> Call<'a> {
        let mut call = Call::new(self.key, safety, classifier)
            .traceparent(self.traceparent)
            .rate_limit(self.rate_limit);
        if let Some(n) = self.max_attempts {
            call = call.max_attempts(n);
        }
        call
    }

    /// A secret field of the credential, for building the request. A missing field is an
    /// `auth` failure (the credential does not fit the provider).
    pub fn secret(&self, field: &str) -> Result<&str, CallError> {
        self.credential
            .get(field)
            .map(|s| s.expose_secret())
            .ok_or_else(|| {
                fail(
                    FailureClassification::Auth,
                    format!("the credential has no {field:?}"),
                )
            })
    }

    /// The connection's config as the provider's type (see
    /// [`Served::config`](crate::Served::config)); checked when the connection was made, so
    /// an error here means the type changed since (a `validation` failure).
    pub fn config_as<C: crate::ProviderConfig>(&self) -> Result<C, CallError> {
        crate::operation::config_of(self.config).map_err(|e| {
            fail(
                FailureClassification::Validation,
                format!("the connection's config: {}: {}", e.path, e.message),
            )
        })
    }

    /// An access token minted from this call's credential by `fetch` (a GitHub App's
    /// installation token, an Entra ID token): cached per (tenant, connection, credential)
    /// until shortly before it expires, one `fetch` for every concurrent caller. A rotated
    /// credential gets its own token at once.
    pub async fn access_token<F, Fut>(
        &self,
        fetch: F,
    ) -> Result<std::sync::Arc<crate::AccessToken>, CallError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<crate::AccessToken, CallError>>,
    {
        let key = crate::tokens::TokenKey::new(self.key, self.credential);
        self.tokens.get_or_fetch(&key, fetch).await
    }

    /// Forgets this call's token (the vendor refused it with a 401): the next
    /// [`ProviderCall::access_token`] fetches a fresh one.
    pub async fn drop_access_token(&self) {
        let key = crate::tokens::TokenKey::new(self.key, self.credential);
        self.tokens.drop_token(&key).await;
    }

    /// `send`, and when the vendor refuses the cached token it sent (a 401 while
    /// `uses_token`: revoked early, a rotated key), the token dropped and `send` once more
    /// with a fresh one. A static credential's 401 is final.
    pub async fn with_fresh_token_on_401<T, F, Fut>(
        &self,
        uses_token: bool,
        send: F,
    ) -> Result<T, CallError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        match send().await {
            Err(e) if uses_token && e.failure.vendor_status == Some(401) => {
                self.drop_access_token().await;
                send().await
            }
            other => other,
        }
    }

    /// When the run this call is for was created (run ids are UUIDv7, their first 48 bits the
    /// Unix time in milliseconds): where a vendor without idempotency keys can start looking
    /// for what an earlier attempt of the run did. `None` outside a run.
    pub fn run_created_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        run_created_at(self.idempotency_key?)
    }

    /// The vendor's origin: the connection's `baseUrl` (a member the kit knows: checked
    /// against the SSRF guard when the connection is created; providers that allow it
    /// declare it in their config type) or the vendor's public one, without a trailing slash.
    pub fn base_url(&self, default: &str) -> String {
        self.config
            .get(BASE_URL)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .trim_end_matches('/')
            .to_owned()
    }
}

/// When run `run_id` was created: run ids are UUIDv7, their first 48 bits the Unix time in
/// milliseconds. `None` for anything else.
pub fn run_created_at(run_id: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let run = domain::RunId::parse(run_id).ok()?;
    let (secs, nanos) = run.as_uuid().get_timestamp()?.to_unix();
    chrono::DateTime::from_timestamp(i64::try_from(secs).ok()?, nanos)
}

/// `s` as one value of a URL query (RFC 3986 unreserved characters kept, every other byte
/// percent-encoded): branch names, times and names that hold `/`, `+`, `&` or `#`.
pub fn query_value(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The config member naming a vendor's origin other than its public one (a fake, a
/// regional or self-hosted endpoint): the kit checks it against the SSRF guard when a
/// connection is created, whatever the provider.
pub const BASE_URL: &str = "baseUrl";
/// The config member naming a resource's own endpoint (Azure Communication Services): checked
/// as [`BASE_URL`] is.
pub const ENDPOINT: &str = "endpoint";
/// The config member naming a server by host alone (SMTP): an IP literal there is checked
/// against the SSRF guard when a connection is created.
pub const HOST: &str = "host";

/// A call that failed before or without the pipeline (bad input found by the adapter, a
/// malformed answer).
pub fn fail(class: FailureClassification, message: impl Into<String>) -> CallError {
    CallError {
        retryable: class.is_retryable_by_default(),
        failure: VendorFailure::new(class, message),
        attempts: 0,
    }
}

/// Where a JSON vendor's classifier starts: `None` for a success; else the status's failure
/// ([`resilience::classify_status`]) and the body as JSON (`Null` when it is not JSON), for
/// the classifier to refine.
pub fn failed_answer(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> Option<(VendorFailure, Value)> {
    match resilience::classify_status(status, headers) {
        resilience::Verdict::Success => None,
        resilience::Verdict::Failure(f) => {
            Some((f, serde_json::from_slice(body).unwrap_or(Value::Null)))
        }
    }
}

/// One JSON request to a vendor ([`ProviderCall::json`]).
pub struct JsonCall<'a> {
    pub method: reqwest::Method,
    pub url: &'a str,
    /// The whole `Authorization` value (`Bearer …`, `Basic …`), if any.
    pub authorization: Option<&'a str>,
    /// More headers (an idempotency key).
    pub headers: &'a [(&'a str, &'a str)],
    pub body: Option<&'a Value>,
    pub safety: Safety,
}

impl ProviderCall<'_> {
    /// Sends `request` through the pipeline (`Accept: application/json`), classified by
    /// `classifier`; the answer's body as JSON (`Null` when empty; not JSON is
    /// [`malformed`]).
    pub async fn json(
        &self,
        request: JsonCall<'_>,
        classifier: &dyn Classifier,
    ) -> Result<Value, CallError> {
        let answer = self.json_response(request, classifier).await?;
        if answer.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&answer.body).map_err(|_| malformed("not JSON"))
    }

    /// [`ProviderCall::json`], the whole answer: for vendors whose headers say more (a
    /// long-running operation's `Azure-AsyncOperation` and `Retry-After`).
    pub async fn json_response(
        &self,
        request: JsonCall<'_>,
        classifier: &dyn Classifier,
    ) -> Result<resilience::VendorResponse, CallError> {
        self.pipeline
            .send(self.call(request.safety, classifier), || {
                let mut builder = self
                    .http
                    .request(request.method.clone(), request.url)
                    .header(reqwest::header::ACCEPT, "application/json");
                if let Some(value) = request.authorization {
                    builder = builder.header(reqwest::header::AUTHORIZATION, value);
                }
                for (name, value) in request.headers {
                    builder = builder.header(*name, *value);
                }
                if let Some(body) = request.body {
                    builder = builder.json(body);
                }
                builder
            })
            .await
    }
}

/// The classifier of a JSON vendor: the status decides ([`failed_answer`]), then `refine`
/// reads the vendor's failed answer ([`Answer`]) into its words, adjusting the failure (a
/// class, a vendor code, a wait) where the vendor says more; the message is [`answered`]
/// with the words, `secrets` masked.
pub struct VendorAnswers<'s, F> {
    vendor: &'static str,
    secrets: Vec<&'s str>,
    refine: F,
}

/// A failed answer, as [`VendorAnswers`]' `refine` reads it.
pub struct Answer<'a> {
    pub headers: &'a reqwest::header::HeaderMap,
    /// The body as JSON (`Null` when it is not JSON).
    pub error: &'a Value,
    pub body: &'a [u8],
}

impl<'s, F> VendorAnswers<'s, F>
where
    F: Fn(&mut VendorFailure, &Answer<'_>) -> String + Send + Sync,
{
    pub fn new(vendor: &'static str, secrets: Vec<&'s str>, refine: F) -> Self {
        VendorAnswers {
            vendor,
            secrets,
            refine,
        }
    }

    /// The secrets it masks.
    pub fn secrets(&self) -> &[&'s str] {
        &self.secrets
    }
}

impl<F> resilience::Classifier for VendorAnswers<'_, F>
where
    F: Fn(&mut VendorFailure, &Answer<'_>) -> String + Send + Sync,
{
    fn classify(
        &self,
        status: reqwest::StatusCode,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> resilience::Verdict {
        let Some((mut failure, error)) = failed_answer(status, headers, body) else {
            return resilience::Verdict::Success;
        };
        let answer = Answer {
            headers,
            error: &error,
            body,
        };
        let words = (self.refine)(&mut failure, &answer);
        failure.message = answered(self.vendor, status.as_u16(), &words, &self.secrets);
        resilience::Verdict::Failure(failure)
    }
}

/// A failure's message for a vendor's answer: `"<vendor> answered <status>"`, then its own
/// words (through [`vendor_text`]) when it gave any.
pub fn answered(vendor: &str, status: u16, words: &str, secrets: &[&str]) -> String {
    if words.trim().is_empty() {
        format!("{vendor} answered {status}")
    } else {
        format!(
            "{vendor} answered {status}: {}",
            vendor_text(words, secrets)
        )
    }
}

/// A vendor's own words, fit for a failure message: the call's secret values (a vendor may
/// echo one back) and anything credential-shaped masked, control characters made spaces,
/// one trimmed line of at most 200 characters.
pub fn vendor_text(raw: &str, secrets: &[&str]) -> String {
    // Redact before cutting, so a cut can never leave half a secret behind.
    let redacted = domain::RedactedText::redact(raw, secrets);
    let clean: String = redacted
        .as_str()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.trim();
    match clean.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &clean[..cut]),
        None => clean.to_owned(),
    }
}

/// The vendor answered 2xx with a body we cannot read: it may have done the work, so this is
/// never retried blindly.
pub fn malformed(what: &str) -> CallError {
    CallError {
        retryable: false,
        failure: VendorFailure::new(
            FailureClassification::VendorError,
            format!("the vendor's answer was malformed: {what}"),
        ),
        attempts: 1,
    }
}

/// One vendor, as an app serves it.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The catalogue key (`twilio`, `fake`).
    fn key(&self) -> &'static str;

    /// The credential kinds it accepts.
    fn credential_kinds(&self) -> &'static [CredentialKind];

    /// A cheap authenticated call proving the credential works.
    async fn test_connection(&self, call: &ProviderCall<'_>) -> Result<(), CallError>;

    /// The query the connection's receipt URL carries (`code=…` for vendors whose receipts
    /// are authenticated by a shared value in the URL).
    fn receipt_query(&self, _credential: &SecretMaterial) -> Option<String> {
        None
    }

    /// Verifies and reads a delivery-receipt request sent to the connection's receipt URL.
    fn parse_receipts(
        &self,
        _credential: &SecretMaterial,
        _config: &ConnectionConfig,
        _request: &ReceiptRequest<'_>,
    ) -> Result<Vec<Receipt>, ReceiptError> {
        Err(ReceiptError::NotSupported)
    }

    /// Whether delivery receipts must be asked for ([`Provider::poll_receipts`]): the kit
    /// then watches every message this provider sends until its delivery state is final
    /// (or a week has passed) and asks on the `PollReceipts` timer.
    fn polls_receipts(&self) -> bool {
        false
    }

    /// Asks the vendor where `pending` messages (all sent through this call's connection)
    /// stand. Messages the vendor has nothing on yet are simply absent from the answer.
    async fn poll_receipts(
        &self,
        _call: &ProviderCall<'_>,
        _pending: &[PendingReceipt],
    ) -> Result<Vec<Receipt>, CallError> {
        Ok(Vec::new())
    }

    /// Reads a vendor webhook for one of its connections, routed here by the webhook gateway
    /// (already verified there with the source's secret), and says what it means: a waiting
    /// run's work finished or failed, a delivery receipt. An error is logged and the delivery
    /// dropped (the vendor's retry would read the same bytes).
    fn webhook(
        &self,
        _webhook: &crate::VendorWebhook<'_>,
    ) -> Result<Vec<crate::WebhookEffect>, String> {
        Ok(Vec::new())
    }

    /// The operations it performs: `served.operation::<Send>()` for each (the provider
    /// implements [`Serves`](crate::Serves) for them).
    fn serves(served: &mut crate::Served<Self>)
    where
        Self: Sized;
}

/// Where a delivery stands, vendor-neutral. Receipts arrive in any order and repeat; a run
/// keeps the furthest state ([`DeliveryState::rank`]) and the first terminal one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Accepted by the vendor, not yet handed on.
    Queued,
    /// Handed to the carrier / the recipient's server.
    Sent,
    /// Delivered to the recipient.
    Delivered,
    /// The carrier gave up (unknown number, unsubscribed, bounced).
    Undelivered,
    /// The vendor could not send it.
    Failed,
}

impl DeliveryState {
    pub fn rank(self) -> u8 {
        match self {
            DeliveryState::Queued => 0,
            DeliveryState::Sent => 1,
            DeliveryState::Delivered | DeliveryState::Undelivered | DeliveryState::Failed => 2,
        }
    }
}

/// One delivery receipt, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The vendor's message id (what `OperationOutput::vendor_message_id` was).
    pub message_id: String,
    pub state: DeliveryState,
    /// The vendor's own status and error code, for people (`undelivered/30003`).
    pub detail: Option<String>,
}

/// A message whose delivery receipt is still awaited from a vendor that is asked for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingReceipt {
    /// What `OperationOutput::vendor_message_id` was.
    pub message_id: String,
    /// When the vendor accepted it.
    pub sent_at: chrono::DateTime<chrono::Utc>,
}

/// A receipt request as it arrived: the URL the vendor signed (the public one, not what
/// a proxy made of it, with the query string as received), the headers and the exact body.
pub struct ReceiptRequest<'a> {
    pub url: &'a str,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
}

/// Why a receipt request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptError {
    /// The provider sends no receipts here.
    NotSupported,
    /// The signature did not verify.
    Unauthorized,
    /// Verified, but not a receipt we can read.
    Malformed(String),
    /// Not a receipt but the vendor's subscription handshake (Event Grid validation):
    /// answer 200 with this body.
    Handshake(Value),
}

impl ReceiptRequest<'_> {
    /// Verifies the request with an inbound-webhook scheme (the same verifiers as the
    /// webhook gateway's, over the exact bytes, in constant time). A handshake comes back as
    /// [`ReceiptError::Handshake`].
    pub fn verify(
        &self,
        scheme: &webhooks::Scheme,
        secret: &webhooks::Secret,
    ) -> Result<(), ReceiptError> {
        let unverified =
            webhooks::Unverified::new(http::Method::POST, self.url, self.headers, self.body);
        let verified = unverified
            .verify(scheme, secret, chrono::Utc::now())
            .map_err(|e| match e {
                webhooks::VerifyError::TooLarge { .. } => {
                    ReceiptError::Malformed("the receipt is too large".into())
                }
                _ => ReceiptError::Unauthorized,
            })?;
        if let Some(handshake) = verified.handshake() {
            return Err(ReceiptError::Handshake(handshake.response_body()));
        }
        Ok(())
    }
}

/// The shared value that authenticates receipts from vendors that do not sign them (Event
/// Grid): derived from the connection's secret, so it is stable, unguessable, and changes
/// when the credential rotates. It goes in the receipt URL's `code` parameter.
pub fn receipt_code(secret: &str) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"integration-platform/receipts");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// The receipt URL query of a connection whose receipts are authenticated by a shared value
/// in the URL (Azure Event Grid, 019's pushes): the `code` derived (see [`receipt_code`])
/// from its credential's `key_field`.
pub fn receipt_code_query(credential: &SecretMaterial, key_field: &str) -> Option<String> {
    let key = credential.get(key_field)?;
    Some(format!("code={}", receipt_code(key.expose_secret())))
}

/// Checks the `code` parameter of a receipt request's URL against the one derived from the
/// credential's `key_field` (see [`receipt_code_query`]): the shared-code check of Event Grid
/// deliveries (constant time; a subscription handshake comes back as
/// [`ReceiptError::Handshake`]), which also serves vendors that push unsigned receipts.
pub fn verify_receipt_code(
    request: &ReceiptRequest<'_>,
    credential: &SecretMaterial,
    key_field: &str,
) -> Result<(), ReceiptError> {
    let key = credential
        .get(key_field)
        .ok_or(ReceiptError::Unauthorized)?;
    let code = webhooks::Secret::from_bytes(receipt_code(key.expose_secret()).into_bytes())
        .map_err(|_| ReceiptError::Unauthorized)?;
    request.verify(&webhooks::Scheme::event_grid(), &code)
}

/// Receipts delivered by Azure Event Grid (Azure Communication Services' delivery reports):
/// authenticated by the `code` parameter of the receipt URL (see [`receipt_code_query`]),
/// with the subscription handshake answered. Events of `event_type` are read:
/// `data.messageId` and `data.<status_field>`, mapped by `state`; other events are ignored.
pub fn event_grid_receipts(
    request: &ReceiptRequest<'_>,
    credential: &SecretMaterial,
    key_field: &str,
    event_type: &str,
    status_field: &str,
    state: fn(&str) -> DeliveryState,
) -> Result<Vec<Receipt>, ReceiptError> {
    verify_receipt_code(request, credential, key_field)?;
    let events: Vec<Value> = serde_json::from_slice(request.body)
        .map_err(|_| ReceiptError::Malformed("an Event Grid delivery is a JSON array".into()))?;
    Ok(events
        .iter()
        .filter(|e| e["eventType"].as_str() == Some(event_type))
        .filter_map(|e| {
            let data = &e["data"];
            let status = data[status_field].as_str()?;
            Some(Receipt {
                // An event naming no message is about nothing the platform sent.
                message_id: data["messageId"]
                    .as_str()
                    .filter(|id| !id.trim().is_empty())?
                    .to_owned(),
                state: state(status),
                detail: Some(status.to_owned()),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sms_state(s: &str) -> DeliveryState {
        if s == "Delivered" {
            DeliveryState::Delivered
        } else {
            DeliveryState::Failed
        }
    }

    proptest::proptest! {
        /// Whatever an authenticated sender posts (any bytes, or any JSON shaped like
        /// Event Grid's), the reader answers receipts or refuses: it never panics, and every
        /// receipt it reads names a message.
        #[test]
        fn event_grid_receipts_read_any_body_without_panic(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
            id in "\\PC{0,40}",
            kind in proptest::prop_oneof![
                proptest::strategy::Just("Microsoft.Communication.SMSDeliveryReportReceived".to_owned()),
                proptest::strategy::Just("Microsoft.EventGrid.SubscriptionValidationEvent".to_owned()),
                "\\PC{0,40}",
            ],
            status in "\\PC{0,20}",
            message in proptest::option::of("\\PC{0,60}"),
        ) {
            let code = receipt_code("access-key");
            let url = format!("https://app.example/api/integrations/receipts/t/c?code={code}");
            let headers = http::HeaderMap::new();
            let key = SecretMaterial::new(
                domain::CredentialKind::ApiKey,
                serde_json::json!({"apiKey": "access-key"}).as_object().unwrap().clone(),
            )
            .unwrap();
            let shaped = serde_json::to_vec(&serde_json::json!([{
                "id": id, "eventType": kind,
                "data": {"messageId": message, "deliveryStatus": status, "validationCode": id},
            }]))
            .unwrap();
            for body in [&bytes[..], &shaped[..]] {
                let request = ReceiptRequest { url: &url, headers: &headers, body };
                if let Ok(receipts) = event_grid_receipts(
                    &request,
                    &key,
                    "apiKey",
                    "Microsoft.Communication.SMSDeliveryReportReceived",
                    "deliveryStatus",
                    sms_state,
                ) {
                    for r in receipts {
                        proptest::prop_assert!(!r.message_id.is_empty());
                    }
                }
            }
        }
    }

    #[test]
    fn event_grid_receipts_need_the_code_and_answer_the_handshake() {
        let code = receipt_code("access-key");
        let body = br#"[{"id":"1","eventType":"Microsoft.Communication.SMSDeliveryReportReceived","data":{"messageId":"Outgoing_1","deliveryStatus":"Delivered"}},{"id":"2","eventType":"Other","data":{}}]"#;
        let headers = http::HeaderMap::new();
        let url = format!("https://app.example/api/integrations/receipts/t/c?code={code}");
        let request = ReceiptRequest {
            url: &url,
            headers: &headers,
            body,
        };
        let key = |k: &str| {
            SecretMaterial::new(
                domain::CredentialKind::ApiKey,
                serde_json::json!({"apiKey": k})
                    .as_object()
                    .unwrap()
                    .clone(),
            )
            .unwrap()
        };
        assert_eq!(
            receipt_code_query(&key("access-key"), "apiKey"),
            Some(format!("code={code}"))
        );
        let receipts = event_grid_receipts(
            &request,
            &key("access-key"),
            "apiKey",
            "Microsoft.Communication.SMSDeliveryReportReceived",
            "deliveryStatus",
            sms_state,
        )
        .expect("verified");
        assert_eq!(receipts.len(), 1);
        assert_eq!(receipts[0].message_id, "Outgoing_1");
        assert_eq!(receipts[0].state, DeliveryState::Delivered);
        // Another key's code is refused.
        let err = event_grid_receipts(&request, &key("other-key"), "apiKey", "x", "y", sms_state)
            .unwrap_err();
        assert_eq!(err, ReceiptError::Unauthorized);
        // The handshake is answered, with the code too.
        let mut headers = http::HeaderMap::new();
        headers.insert("aeg-event-type", "SubscriptionValidation".parse().unwrap());
        let body = br#"[{"id":"v","eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","data":{"validationCode":"abc"}}]"#;
        let request = ReceiptRequest {
            url: &url,
            headers: &headers,
            body,
        };
        let err = event_grid_receipts(&request, &key("access-key"), "apiKey", "x", "y", sms_state)
            .unwrap_err();
        assert_eq!(
            err,
            ReceiptError::Handshake(serde_json::json!({"validationResponse": "abc"}))
        );
    }

    #[test]
    fn vendor_text_masks_secrets_and_is_one_short_line() {
        let text = vendor_text("token s3cr3t-value is wrong", &["s3cr3t-value"]);
        assert!(!text.contains("s3cr3t-value"), "{text}");
        assert!(text.contains("is wrong"));
        assert_eq!(vendor_text(" a\r\nb ", &[]), "a  b");
        let long = vendor_text(&"é".repeat(300), &[]);
        assert_eq!(long.chars().count(), 201);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn receipt_codes_are_stable_and_key_specific() {
        assert_eq!(receipt_code("k"), receipt_code("k"));
        assert_ne!(receipt_code("k"), receipt_code("k2"));
        // 32 bytes of HMAC, base64url without padding: safe in a query string as is.
        assert_eq!(receipt_code("k").len(), 43);
        assert!(
            receipt_code("k")
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }
}
