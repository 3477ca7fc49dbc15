//! `POST/GET/DELETE /api/webhooks/subscriptions`: a tenant's outbound endpoints.

use api_kit::{ApiError, Caller, JsonBody};
use app_context::AppContext;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::{
    DisableReason, DisplayName, EventTypeFilters, HttpUrl, NewSubscription, SubscriptionId,
    SubscriptionStatus, WebhookScheme, WebhookSubscription,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{StoredSubscription, commit, read_subscription, subscription_write, tenant_of};
use crate::settings::Settings;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SubscriptionIn {
    url: String,
    event_types: Vec<String>,
    #[serde(default)]
    description: Option<String>,
    /// At most this many deliveries per second to the endpoint (held back, not dropped).
    #[serde(default)]
    rate_limit_per_second: Option<u32>,
    /// Deliver one at a time per ordering key, in the order accepted (see `ordering.rs`).
    #[serde(default)]
    ordered: bool,
}

/// Shape, scheme, and the SSRF guard's check of literal hosts (names are checked again at
/// connect time, on every delivery).
fn endpoint(ctx: &AppContext, guard: &netguard::Guard, raw: &str) -> Result<HttpUrl, ApiError> {
    api_kit::urls::user_url(ctx, guard, "url", raw)
}

pub(super) fn subscription_out(s: &WebhookSubscription) -> Value {
    json!({
        "id": s.id(),
        "url": s.url(),
        "eventTypes": s.event_types(),
        "description": s.description(),
        "status": s.status(),
        "disabledReason": s.disabled_reason(),
        "failureStreak": s.failure_streak(),
        "firstFailureAt": s.first_failure_at(),
        "rateLimitPerSecond": s.rate_limit_per_second(),
        "ordered": s.ordered(),
        "createdAt": s.created_at(),
        "updatedAt": s.updated_at(),
    })
}

pub(crate) async fn create(
    State(ctx): State<AppContext>,
    State(settings): State<std::sync::Arc<Settings>>,
    caller: Caller,
    JsonBody(body): JsonBody<SubscriptionIn>,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(&caller)?;
    let url = endpoint(&ctx, &settings.guard, &body.url)?;
    let event_types = EventTypeFilters::parse_all(&body.event_types)
        .map_err(|e| ApiError::bad_request("invalid_event_types", format!("eventTypes: {e}")))?;
    let description = body
        .description
        .as_deref()
        .map(DisplayName::parse)
        .transpose()
        .map_err(|e| {
            ApiError::bad_request("invalid_description", e.naming("description").to_string())
        })?;
    // The secret is shown once, here; custody (the registry) keeps it from now on.
    let secret = webhooks::outbound::generate_secret();
    let (credential_id, reference) =
        crate::sources::store_secret(&ctx, &caller, WebhookScheme::StandardWebhooks, &secret)
            .await?;
    let rate_limit_per_second = match body.rate_limit_per_second {
        None => None,
        Some(n) if (1..=10_000).contains(&n) => std::num::NonZeroU32::new(n),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_rate_limit",
                "rateLimitPerSecond is 1-10000",
            ));
        }
    };
    let now = chrono::Utc::now();
    let (subscription, event) = WebhookSubscription::subscribe(
        NewSubscription {
            tenant_id: tenant.clone(),
            id: SubscriptionId::new(),
            url,
            description,
            event_types,
            secret: reference,
            rate_limit_per_second,
            ordered: body.ordered,
        },
        now,
    );
    let stored = StoredSubscription {
        subscription,
        credential_id,
    };
    commit(
        &ctx,
        &tenant,
        vec![subscription_write(&stored, None)?],
        &[event],
        "the subscription exists",
    )
    .await?;
    let id = stored.subscription.id();
    tracing::info!(tenant = %tenant, subscription = %id, "webhook subscription created");
    let mut out = subscription_out(&stored.subscription);
    out["secret"] = json!(secret);
    Ok((
        StatusCode::CREATED,
        [
            (
                header::LOCATION,
                format!("/api/webhooks/subscriptions/{id}"),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Json(out),
    )
        .into_response())
}

/// The caller's subscription, or 404 (another tenant's does not exist for them).
async fn own(
    ctx: &AppContext,
    caller: &Caller,
    raw_id: &str,
) -> Result<(StoredSubscription, ports::ETag), ApiError> {
    let id = SubscriptionId::parse(raw_id).map_err(|_| ApiError::not_found("the subscription"))?;
    read_subscription(ctx, caller.tenant_id(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("the subscription"))
}

pub(crate) async fn show(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (stored, _) = own(&ctx, &caller, &id).await?;
    Ok(Json(subscription_out(&stored.subscription)).into_response())
}

/// Disables the subscription (`WebhookSubscriptionDisabled`, reason `requested`); the
/// document stays so its deliveries keep their history. Deleting twice is a no-op (204).
pub(crate) async fn remove(
    State(ctx): State<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(&caller)?;
    let (mut stored, etag) = own(&ctx, &caller, &id).await?;
    if stored.subscription.status() == SubscriptionStatus::Active {
        let events = stored
            .subscription
            .disable(DisableReason::Requested, chrono::Utc::now())
            .map_err(|e| ApiError::Conflict(e.to_string()))?;
        commit(
            &ctx,
            &tenant,
            vec![subscription_write(&stored, Some(etag))?],
            &events,
            "the subscription changed meanwhile; try again",
        )
        .await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
