//! `POST /api/webhooks/inbound/{sourceId}`: the vendor's door. No bearer token: the vendor's
//! signature is the authentication, checked over the raw bytes before anything is parsed.
//!
//! Order of durability: the raw body is written to blob storage first, then the receipt and
//! the `WebhookReceived` event are committed in one batch; 202 is answered only after both.
//! The receipt's id is derived from the vendor's delivery id, so a redelivery finds it and is
//! acknowledged without a second event. Every refusal leaves nothing behind.

use std::sync::Arc;
use std::time::Duration;

use api_kit::ApiError;
use app_context::AppContext;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use domain::{CredentialKind, InboundWebhook, PayloadRef, WebhookScheme};
use functions_runtime::problem::problem;
use ports::{PortError, PutOptions, WriteOp};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::settings::Settings;
use crate::sources::{StoredSource, read_source};
use crate::{CONTAINER, RAW_CONTAINER, SOURCE};

/// Largest inbound body accepted (GitHub sends up to 25 MB; most vendors far less).
pub(crate) const BODY_LIMIT: usize = 1024 * 1024;

#[derive(Clone)]
pub(crate) struct Inbound {
    ctx: AppContext,
    settings: Arc<Settings>,
    resolver: Arc<custody::Resolver>,
    /// Sources ready to verify with (document, scheme, secret), kept for a few seconds: the
    /// inbound door is the hottest path and a source changes rarely. A change (a new
    /// secret, say) is seen within [`SOURCE_TTL`].
    sources: moka::future::Cache<String, Arc<Ready>>,
}

/// How long a prepared source is reused.
const SOURCE_TTL: Duration = Duration::from_secs(5);
/// Prepared sources kept at most (the least used go first).
const MAX_CACHED_SOURCES: u64 = 10_000;

struct Ready {
    stored: StoredSource,
    scheme: webhooks::Scheme,
    secret: webhooks::Secret,
}

impl Inbound {
    pub(crate) fn new(ctx: &AppContext, settings: Arc<Settings>) -> Self {
        Inbound {
            resolver: Arc::new(custody::Resolver::new(
                ctx.documents.clone(),
                ctx.secrets.clone(),
            )),
            ctx: ctx.clone(),
            settings,
            sources: moka::future::Cache::builder()
                .max_capacity(MAX_CACHED_SOURCES)
                .time_to_live(SOURCE_TTL)
                .build(),
        }
    }
}

/// The `webhooks` scheme for a source: its kind and the options it was registered with.
pub(crate) fn scheme_for(
    scheme: WebhookScheme,
    options: &Value,
) -> Result<webhooks::Scheme, String> {
    let kind = match scheme {
        WebhookScheme::Github => "github",
        WebhookScheme::Stripe => "stripe",
        WebhookScheme::Twilio => "twilio",
        WebhookScheme::StandardWebhooks => "standardWebhooks",
        WebhookScheme::Slack => "slack",
        WebhookScheme::Shopify => "shopify",
        WebhookScheme::AzureDevops => "azureDevOps",
        WebhookScheme::EventGrid => "eventGrid",
        WebhookScheme::GenericHmac => "genericHmac",
        WebhookScheme::Zendesk => "zendesk",
        WebhookScheme::Hubspot => "hubspot",
        WebhookScheme::Adyen => "adyen",
        WebhookScheme::Bill => "bill",
    };
    let mut config = match options {
        Value::Object(m) => m.clone(),
        Value::Null => Default::default(),
        _ => return Err("options must be a JSON object".into()),
    };
    config.insert("kind".into(), json!(kind));
    serde_json::from_value(Value::Object(config))
        .map_err(|e| format!("options do not suit {scheme}: {e}"))
}

/// Checks that a secret suits the scheme (Standard Webhooks secrets are `whsec_…` base64).
pub(crate) fn secret_for(
    scheme: &webhooks::Scheme,
    secret: &str,
) -> Result<webhooks::Secret, String> {
    webhooks::Secret::for_scheme(scheme, secret).map_err(|e| e.to_string())
}

/// The answer to an accepted delivery: 202 with the receipt, or what the vendor insists on
/// (Adyen retries anything but 200 `[accepted]`).
fn acknowledged(scheme: &webhooks::Scheme, receipt: Value) -> Response {
    match scheme {
        webhooks::Scheme::Adyen => (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "text/plain")],
            "[accepted]",
        )
            .into_response(),
        _ => (StatusCode::ACCEPTED, Json(receipt)).into_response(),
    }
}

fn refused(e: &webhooks::VerifyError) -> Response {
    problem(e.status(), e.code(), &e.to_string())
}

fn hash_hex(text: &[u8]) -> String {
    Sha256::digest(text)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The source, its scheme and its secret, from the cache or freshly read.
async fn ready_source(state: &Inbound, source_id: &str) -> Result<Option<Arc<Ready>>, ApiError> {
    if let Some(ready) = state.sources.get(source_id).await {
        return Ok(Some(ready));
    }
    let ctx = &state.ctx;
    let Some(stored) = read_source(ctx, source_id).await? else {
        return Ok(None);
    };
    let source = &stored.source;
    let scheme = scheme_for(source.scheme(), &stored.options).map_err(|e| {
        ApiError::internal(format!(
            "a stored source has unusable options (source {}): {e}",
            source.id()
        ))
    })?;
    let material = state.resolver.material(CredentialKind::HmacSecret, source.secret()).await.map_err(|e| {
        tracing::error!(source = %source.id(), error = %e, "the source's secret cannot be read");
        ApiError::Unavailable
    })?;
    let raw_secret = material
        .get("secret")
        .map(|s| s.expose_secret().to_owned())
        .unwrap_or_default();
    let secret = secret_for(&scheme, &raw_secret).map_err(ApiError::internal)?;
    let ready = Arc::new(Ready {
        stored,
        scheme,
        secret,
    });
    // An unknown source is not kept: one created a moment later is found at once.
    state
        .sources
        .insert(source_id.to_owned(), ready.clone())
        .await;
    Ok(Some(ready))
}

/// `OPTIONS`: the abuse-protection handshake of CloudEvents' HTTP webhooks (what Event Grid
/// sends a CloudEvents endpoint before delivering): the origin asking is allowed, at any
/// rate. Nothing is stored; deliveries are still verified one by one.
pub(crate) async fn abuse_protection(headers: HeaderMap) -> Response {
    let mut response = StatusCode::OK.into_response();
    let h = response.headers_mut();
    h.insert(
        axum::http::header::ALLOW,
        axum::http::HeaderValue::from_static("POST, OPTIONS"),
    );
    if let Some(origin) = headers.get("webhook-request-origin") {
        h.insert("webhook-allowed-origin", origin.clone());
        h.insert(
            "webhook-allowed-rate",
            axum::http::HeaderValue::from_static("*"),
        );
    }
    response
}

pub(crate) async fn receive(
    State(state): State<Inbound>,
    Path(source_id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match accept(&state, &source_id, method, &uri, &headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// For a source of a vendor app's connection: the command that hands the delivery to the
/// app (`runs-<app>`), in the batch that records it, so the app hears of exactly the
/// deliveries the gateway accepted. Its id is fixed per delivery.
fn routed_command(
    stored: &StoredSource,
    event: &domain::DomainEvent,
    key: &str,
) -> Result<Option<WriteOp>, ApiError> {
    let (Some(app), domain::DomainEvent::WebhookReceived(data)) = (&stored.app, event) else {
        return Ok(None);
    };
    let source = &stored.source;
    let command = envelope::Envelope::builder(
        SOURCE,
        app_context::commands::WEBHOOK_ROUTED,
        source.tenant_id().as_str(),
    )
    .id(format!("routed-{}-{key}", source.id()))
    .subject(format!("sources/{}", source.id()))
    .json_data(data)
    .map_err(|e| ApiError::internal(format!("a routed webhook did not make an envelope: {e}")))?;
    Ok(Some(outbox::outbox_write(
        &command,
        &app_context::runs_queue(app),
    )))
}

async fn accept(
    state: &Inbound,
    source_id: &str,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    use http_body_util::BodyExt as _;
    // Bounded read: a vendor (or anyone) cannot make us buffer more than the limit.
    let body: Bytes = match http_body_util::Limited::new(body, BODY_LIMIT + 1)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(ApiError::PayloadTooLarge),
    };
    if body.len() > BODY_LIMIT {
        return Err(ApiError::PayloadTooLarge);
    }
    let ctx = &state.ctx;
    let Some(ready) = ready_source(state, source_id).await? else {
        return Err(ApiError::not_found("the source"));
    };
    let (source, scheme, secret) = (&ready.stored.source, &ready.scheme, &ready.secret);
    // The URL the vendor signed (Twilio): the public address, not the one we were called on.
    let url = format!(
        "{}{}",
        state.settings.public_url,
        uri.path_and_query()
            .map(|p| p.as_str())
            .unwrap_or(uri.path())
    );
    let unverified =
        webhooks::Unverified::new(method, &url, headers, &body).with_body_limit(BODY_LIMIT);
    let verified = match unverified.verify(scheme, secret, chrono::Utc::now()) {
        Ok(v) => v,
        Err(e) => {
            tracing::info!(source = %source.id(), reason = %e, "inbound webhook refused");
            return Ok(refused(&e));
        }
    };
    if let Some(handshake) = verified.handshake() {
        return Ok((StatusCode::OK, Json(handshake.response_body())).into_response());
    }
    let tenant = source.tenant_id().as_str();
    let key = hash_hex(verified.delivery_id().as_bytes());
    let blob_name = format!("{tenant}/{}/{key}", source.id());
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let put = PutOptions {
        content_type: content_type.clone(),
        if_none_match: false,
    };
    ctx.blobs
        .put(RAW_CONTAINER, &blob_name, body.clone(), put)
        .await
        .map_err(|e| ApiError::from_port(e, "conflict"))?;
    let payload_ref =
        PayloadRef::parse(&format!("{RAW_CONTAINER}/{blob_name}")).map_err(ApiError::internal)?;
    let inbound = InboundWebhook {
        vendor_delivery_id: Some(verified.delivery_id().to_owned()),
        vendor_event_type: verified.event_type().map(str::to_owned),
        content_type,
    };
    let now = chrono::Utc::now();
    let event = source.received(inbound, payload_ref.clone(), now);
    let receipt_id = format!("received-{}-{key}", source.id());
    let routed = routed_command(&ready.stored, &event, &key)?;
    let receipt = json!({
        "docType": "received",
        "sourceId": source.id(),
        "deliveryId": verified.delivery_id(),
        "payloadRef": payload_ref,
        "receivedAt": now,
    });
    // The receipt (the de-duplication marker) lives as long as the body it names.
    let mut ops =
        vec![WriteOp::create(&receipt_id, receipt).with_ttl(crate::outbound::retention(ctx))];
    ops.extend(outbox::event_writes(&[event], SOURCE, None).map_err(ApiError::internal)?);
    ops.extend(routed);
    match ctx.documents.batch(CONTAINER, tenant, ops).await {
        Ok(_) => {
            ctx.outbox_committed();
            Ok(acknowledged(
                &ready.scheme,
                json!({"id": receipt_id, "deliveryId": verified.delivery_id()}),
            ))
        }
        // The vendor delivered this one before: acknowledge, publish nothing.
        Err(PortError::AlreadyExists) => Ok(acknowledged(
            &ready.scheme,
            json!({"id": receipt_id, "deliveryId": verified.delivery_id(), "duplicate": true}),
        )),
        Err(e) => Err(ApiError::from_port(e, "conflict")),
    }
}
