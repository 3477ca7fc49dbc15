//! The credential rotation saga.
//!
//! 1. `start` (from the rotate route or the timer): the new secret is stored as a new version;
//!    then ONE batch moves the credential to `rotating`, records the saga (`rotation-…`,
//!    status `testing`) and queues, through the outbox, a re-test command to the owning
//!    app's `runs-<slug>` queue and a timeout to `credential-rotations`, scheduled.
//! 2. `advance` (Service Bus, `credential-rotations`): the first of the app's answer or the
//!    timeout decides: `succeeded` (or `not_supported`, recorded as such) promotes the new
//!    version (`IntegrationCredentialRotated`); `failed` or the timeout keeps the old one and
//!    records an `IntegrationFailure` (`IntegrationFailed`). The credential, the saga and the
//!    events change in one batch guarded by etags.
//!
//! Crash safety: every step is one atomic batch, and a saga that is no longer `testing`
//! ignores further messages, so a redelivered or late message never promotes twice; a
//! batch lost to a crash is redone by the message's redelivery.

use std::time::Duration;

use api_kit::ApiError;
use app_context::commands::{
    RETEST_COMPLETED, RETEST_REQUESTED, ROTATION_TIMEOUT, RetestCompleted, RetestOutcome,
    RetestRequested, RotationTimeout,
};
use app_context::{AppContext, CREDENTIAL_ROTATIONS_QUEUE, runs_queue};
use chrono::{DateTime, Utc};
use custody::{Custody, SecretMaterial};
use domain::{
    CredentialId, FailureClassification, FailureId, FailureSubject, IntegrationCredential,
    IntegrationFailure, IntegrationProvider, NewFailure, ProviderCategory, RedactedText,
    RotationId, SecretRef, TenantId, TransitionError,
};
use envelope::Envelope;
use functions_runtime::{Invocation, InvocationError, InvocationResponse};
use ports::WriteOp;
use registry_data::{credential_doc_id, rotation_doc_id};

use crate::settings::{Registry, Settings};
use serde::{Deserialize, Serialize};

use crate::credentials::CREDENTIAL;
use crate::store::{commit, document, read};
use crate::{CONTAINER, SOURCE};

pub(crate) use registry_data::doc_type::ROTATION;
const FAILURE: &str = "failure";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RotationStatus {
    Testing,
    Promoted,
    Aborted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RotationOutcome {
    Succeeded,
    /// Promoted without a test: the owning app said it cannot re-test.
    NotSupported,
    Failed,
    TimedOut,
}

/// The saga's record. Holds references only.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Rotation {
    id: RotationId,
    tenant_id: TenantId,
    credential_id: CredentialId,
    /// The app asked to re-test.
    app: String,
    status: RotationStatus,
    outcome: Option<RotationOutcome>,
    detail: Option<String>,
    pending: SecretRef,
    /// The new secret came from the vendor (a refresh grant answered with a new refresh
    /// token): the old one is likely revoked, so the new one becomes current whatever the
    /// re-test says.
    #[serde(default)]
    vendor_issued: bool,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

/// Where a rotation's re-test goes: the app of this platform that serves the provider and
/// re-tests its connections, if there is one.
fn retesting_app(ctx: &AppContext, provider: &IntegrationProvider) -> Option<&'static str> {
    if let Some((app, entry)) = ctx.catalogue_entry(provider.key().as_str()) {
        return entry.retests.then_some(app);
    }
    let app = owning_app(ctx, provider);
    ctx.catalogue.iter().any(|a| a.app == app).then_some(app)
}

/// The app that serves a provider: the app whose catalogue lists it; for a provider an
/// operator registered, the app of its category.
pub(crate) fn owning_app(ctx: &AppContext, provider: &IntegrationProvider) -> &'static str {
    let key = provider.key().as_str();
    if let Some((app, _)) = ctx.catalogue_entry(key) {
        return app;
    }
    if let Some(slug) = ["github", "azure-devops", "openai", "azure-openai", "ollama"]
        .into_iter()
        .find(|s| *s == key)
    {
        return slug;
    }
    match provider.category() {
        ProviderCategory::SourceControl => "github",
        ProviderCategory::AiModel => "openai",
        ProviderCategory::Mcp => "mcp",
        ProviderCategory::Cloud => "cloud",
        ProviderCategory::Email => "email",
        ProviderCategory::Sms => "sms",
        ProviderCategory::Payment => "payment",
        ProviderCategory::Crm => "crm",
        ProviderCategory::Support | ProviderCategory::Other => "support",
    }
}

fn envelope_for<T: Serialize>(
    tenant: &TenantId,
    event_type: &str,
    subject: String,
    data: &T,
) -> Result<Envelope, ApiError> {
    Envelope::builder(SOURCE, event_type, tenant.as_str())
        .subject(subject)
        .json_data(data)
        .map_err(|e| ApiError::internal(format!("a command did not make an envelope: {e}")))
}

fn transition(e: TransitionError) -> ApiError {
    ApiError::Conflict(e.to_string())
}

/// Starts a rotation of `credential_id` to `material`; returns the rotation id and where it
/// stands (`testing`, or already `promoted` when no app of this platform re-tests the
/// provider's credentials: decided at once as `not_supported`, not after the timeout).
/// `vendor_issued`: the vendor handed out `material` (see [`Rotation`]).
pub(crate) async fn start(
    ctx: &AppContext,
    tenant: &TenantId,
    credential_id: CredentialId,
    material: &SecretMaterial,
    timeout: Duration,
    vendor_issued: bool,
) -> Result<(RotationId, RotationStatus), ApiError> {
    let (mut credential, etag): (IntegrationCredential, _) =
        read(ctx, tenant.as_str(), &credential_doc_id(&credential_id))
            .await?
            .ok_or_else(|| ApiError::not_found("the credential"))?;
    let provider = crate::catalogue::read_provider(ctx, credential.provider_key().as_str())
        .await
        .map_err(|_| {
            ApiError::bad_request(
                "not_rotatable",
                "no app owns this credential's provider; replace the secret where it is used",
            )
        })?;
    let retester = retesting_app(ctx, &provider);
    let app = retester.unwrap_or_else(|| owning_app(ctx, &provider));
    let custody = Custody::new(ctx.secrets.clone());
    let pending = custody
        .store(&credential_id, material)
        .await
        .map_err(|e| ApiError::from_port(e, "conflict"))?;
    let now = Utc::now();
    let rotation_id = RotationId::new();
    if let Err(e) = credential.start_rotation(rotation_id, pending.clone(), None, now) {
        let _ = custody.discard(&pending).await;
        return Err(transition(e));
    }
    let mut rotation = Rotation {
        id: rotation_id,
        tenant_id: tenant.clone(),
        credential_id,
        app: app.to_owned(),
        status: RotationStatus::Testing,
        outcome: None,
        detail: None,
        pending: pending.clone(),
        vendor_issued,
        started_at: now,
        finished_at: None,
    };
    // Who answers: the app that re-tests the provider (a re-test request and the saga's
    // deadline go out with the rotation), or nobody, and the rotation says so now, as the
    // app would.
    let (messages, events) = if retester.is_none() {
        let events = credential.promote(rotation_id, now).map_err(transition)?;
        rotation.status = RotationStatus::Promoted;
        rotation.outcome = Some(RotationOutcome::NotSupported);
        rotation.detail = Some(format!(
            "no app of this platform re-tests {} credentials",
            credential.provider_key()
        ));
        rotation.finished_at = Some(now);
        (Vec::new(), events)
    } else {
        let subject = format!("credentials/{credential_id}");
        let request = RetestRequested {
            rotation_id,
            credential_id,
            connection_id: credential.connection_id(),
            provider_key: credential.provider_key().clone(),
            pending_secret: pending.clone(),
            reply_to: CREDENTIAL_ROTATIONS_QUEUE.to_owned(),
        };
        let request = envelope_for(tenant, RETEST_REQUESTED, subject.clone(), &request)?;
        let deadline = envelope_for(
            tenant,
            ROTATION_TIMEOUT,
            subject,
            &RotationTimeout { rotation_id },
        )?;
        let due = now + chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::minutes(5));
        let messages = vec![
            outbox::outbox_write(&request, &runs_queue(app)),
            outbox::outbox_write_at(&deadline, CREDENTIAL_ROTATIONS_QUEUE, Some(due)),
        ];
        (messages, Vec::new())
    };
    let mut ops = vec![
        WriteOp::replace(
            credential_doc_id(&credential_id),
            document(&credential, CREDENTIAL)?,
            Some(etag),
        ),
        WriteOp::create(
            rotation_doc_id(&rotation_id),
            document(&rotation, ROTATION)?,
        ),
    ];
    ops.extend(messages);
    if let Err(e) = commit(
        ctx,
        tenant.as_str(),
        ops,
        &events,
        "the credential changed meanwhile; try again",
    )
    .await
    {
        let _ = custody.discard(&pending).await;
        return Err(e);
    }
    if rotation.status == RotationStatus::Promoted {
        tracing::info!(tenant = %tenant, credential = %credential_id, rotation = %rotation_id, "rotation promoted untested: no app re-tests the provider");
    } else {
        tracing::info!(tenant = %tenant, credential = %credential_id, rotation = %rotation_id, app, "rotation started");
    }
    Ok((rotation_id, rotation.status))
}

/// Rotates a refresh-token credential by itself: one refresh grant against its token
/// endpoint; a vendor that rotates refresh tokens hands out the new secret, which then goes
/// through the same saga (re-test, promote or keep).
pub(crate) async fn self_rotate(
    ctx: &AppContext,
    settings: &Settings,
    credential: &IntegrationCredential,
) -> Result<(RotationId, RotationStatus), ApiError> {
    let resolver = custody::Resolver::new(ctx.documents.clone(), ctx.secrets.clone());
    let current = resolver
        .material(credential.kind(), credential.current())
        .await
        .map_err(|e| {
            ApiError::internal(format!(
                "the current secret cannot be read (credential {}): {e}",
                credential.id()
            ))
        })?;
    let renewed = custody::oauth::refresh(&current, &settings.guard)
        .await
        .map_err(|e| match e {
            custody::oauth::RefreshError::Setup(e) => {
                ApiError::bad_request("invalid_secret", e.to_string())
            }
            custody::oauth::RefreshError::OAuth(e) => {
                ApiError::Upstream(format!("the token endpoint refused the refresh: {e}"))
            }
        })?;
    let Some(renewed) = renewed else {
        return Err(ApiError::bad_request(
            "not_rotatable",
            "the token endpoint kept the same refresh token: there is nothing to rotate",
        ));
    };
    // The vendor answered the refresh grant: its new token is the one that works now.
    start(
        ctx,
        credential.tenant_id(),
        credential.id(),
        &renewed,
        settings.test_timeout,
        true,
    )
    .await
}

/// What decided a rotation.
enum Decision {
    Promote(RotationOutcome),
    Abort(RotationOutcome, String),
}

/// The Service Bus function on `credential-rotations`.
pub(crate) async fn advance(
    ctx: AppContext,
    inv: Invocation,
) -> Result<InvocationResponse, InvocationError> {
    let msg = inv.service_bus()?;
    let event = Envelope::parse(&msg.body)
        .map_err(|e| InvocationError::permanent(format!("not an envelope: {e}")))?;
    let tenant = TenantId::parse(event.tenant_id())
        .map_err(|e| InvocationError::permanent(e.to_string()))?;
    let (rotation_id, decision) = match event.event_type() {
        RETEST_COMPLETED => {
            let data: RetestCompleted = event
                .data_json()
                .map_err(|e| InvocationError::permanent(e.to_string()))?;
            let decision = match data.outcome {
                RetestOutcome::Succeeded => Decision::Promote(RotationOutcome::Succeeded),
                RetestOutcome::NotSupported => Decision::Promote(RotationOutcome::NotSupported),
                RetestOutcome::Failed => Decision::Abort(
                    RotationOutcome::Failed,
                    data.detail
                        .unwrap_or_else(|| "the connection test failed".into()),
                ),
            };
            (data.rotation_id, decision)
        }
        ROTATION_TIMEOUT => {
            let data: RotationTimeout = event
                .data_json()
                .map_err(|e| InvocationError::permanent(e.to_string()))?;
            (
                data.rotation_id,
                Decision::Abort(
                    RotationOutcome::TimedOut,
                    "the owning app did not answer the re-test in time".into(),
                ),
            )
        }
        other => {
            return Err(InvocationError::permanent(format!(
                "unexpected message type {other}"
            )));
        }
    };
    apply(&ctx, &tenant, rotation_id, decision)
        .await
        .map_err(|e| match e {
            // A concurrent change (the other message of the race): redeliver and look again.
            ApiError::Conflict(m) => InvocationError::transient(m),
            other => InvocationError::transient(format!("{other:?}")),
        })?;
    Ok(InvocationResponse::default())
}

async fn apply(
    ctx: &AppContext,
    tenant: &TenantId,
    rotation_id: RotationId,
    decision: Decision,
) -> Result<(), ApiError> {
    let Some((mut rotation, rotation_etag)) =
        read::<Rotation>(ctx, tenant.as_str(), &rotation_doc_id(&rotation_id)).await?
    else {
        tracing::warn!(rotation = %rotation_id, "a message for an unknown rotation; ignored");
        return Ok(());
    };
    if rotation.status != RotationStatus::Testing {
        // Decided already (the other message of the race, or a redelivery).
        return Ok(());
    }
    let (mut credential, credential_etag): (IntegrationCredential, _) = read(
        ctx,
        tenant.as_str(),
        &credential_doc_id(&rotation.credential_id),
    )
    .await?
    .ok_or_else(|| ApiError::not_found("the credential"))?;
    let now = Utc::now();
    let mut ops = Vec::new();
    let events = match decision {
        Decision::Promote(outcome) => {
            rotation.status = RotationStatus::Promoted;
            rotation.outcome = Some(outcome);
            match credential.promote(rotation_id, now) {
                Ok(events) => events,
                Err(TransitionError::AlreadyPromoted { .. }) => Vec::new(),
                Err(e) => return Err(transition(e)),
            }
        }
        Decision::Abort(outcome, detail) => {
            let text = RedactedText::redact(&detail, &[]);
            rotation.outcome = Some(outcome);
            rotation.detail = Some(text.as_str().to_owned());
            let mut events = if rotation.vendor_issued {
                // The vendor's new token stays current (the old one is likely revoked);
                // the failed re-test is recorded beside it, and as a failure below.
                rotation.status = RotationStatus::Promoted;
                match credential.promote(rotation_id, now) {
                    Ok(events) => events,
                    Err(TransitionError::AlreadyPromoted { .. }) => Vec::new(),
                    Err(e) => return Err(transition(e)),
                }
            } else {
                rotation.status = RotationStatus::Aborted;
                credential
                    .abort_rotation(rotation_id, now)
                    .map_err(transition)?;
                Vec::new()
            };
            let (failure, event) = IntegrationFailure::record(
                NewFailure {
                    tenant_id: tenant.clone(),
                    id: FailureId::new(),
                    subject: FailureSubject::Credential(rotation.credential_id),
                    provider_key: Some(credential.provider_key().clone()),
                    classification: if outcome == RotationOutcome::TimedOut {
                        FailureClassification::Timeout
                    } else {
                        FailureClassification::Auth
                    },
                    vendor_status: None,
                    vendor_code: None,
                    message: text,
                    retryable: false,
                    dead_lettered: false,
                    trace_id: None,
                },
                now,
            );
            ops.push(WriteOp::create(
                format!("failure-{}", failure.id()),
                document(&failure, FAILURE)?,
            ));
            events.push(event);
            events
        }
    };
    rotation.finished_at = Some(now);
    ops.push(WriteOp::replace(
        credential_doc_id(&rotation.credential_id),
        document(&credential, CREDENTIAL)?,
        Some(credential_etag),
    ));
    ops.push(WriteOp::replace(
        rotation_doc_id(&rotation_id),
        document(&rotation, ROTATION)?,
        Some(rotation_etag),
    ));
    commit(
        ctx,
        tenant.as_str(),
        ops,
        &events,
        "the rotation changed meanwhile",
    )
    .await?;
    if rotation.status == RotationStatus::Aborted {
        // The failed version must not linger usable. (A crash right here leaves it enabled
        // but referenced by nothing; the aborted saga keeps its name for clean-up.)
        let _ = Custody::new(ctx.secrets.clone())
            .discard(&rotation.pending)
            .await;
    }
    tracing::info!(tenant = %tenant, rotation = %rotation_id, status = ?rotation.status, outcome = ?rotation.outcome, "rotation decided");
    Ok(())
}

const DUE: &str = "rotationDue";

/// The timer: finds credentials past their max age or near expiry and emits
/// `CredentialRotationDue` once per deadline (a marker document, created in the same batch as
/// the event, makes later sweeps skip it).
pub(crate) async fn sweep(
    api_kit::AppState { ctx, settings }: Registry,
    inv: Invocation,
) -> Result<InvocationResponse, InvocationError> {
    inv.timer()?;
    let now = Utc::now();
    let mut token = None;
    let mut due = 0usize;
    loop {
        let query = ports::Query::cross_partition()
            .filter("docType", CREDENTIAL)
            .limit(100)
            .after(token);
        let page = ctx
            .documents
            .query(CONTAINER, &query)
            .await
            .map_err(|e| InvocationError::transient(e.to_string()))?;
        for doc in &page.documents {
            let credential: IntegrationCredential = match doc.parse() {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(id = %doc.id, error = %e, "an unreadable credential document; skipped");
                    continue;
                }
            };
            let (Some(event), Some((_, deadline))) = (
                credential.rotation_due_event(now),
                credential.rotation_deadline(),
            ) else {
                continue;
            };
            // Kinds that can rotate themselves do; the others (and a failed attempt) are
            // announced for someone to act on.
            if credential.kind() == domain::CredentialKind::Oauth2RefreshToken {
                match self_rotate(&ctx, &settings, &credential).await {
                    Ok((rotation, _)) => {
                        tracing::info!(credential = %credential.id(), %rotation, "due credential rotating itself");
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(credential = %credential.id(), error = ?e, "self-rotation failed; announcing it as due")
                    }
                }
            }
            let marker = format!("due-{}-{}", credential.id(), deadline.timestamp());
            let body = serde_json::json!({ "docType": DUE, "credentialId": credential.id(), "deadline": deadline });
            // Markers outlive their purpose after the deadline's notice period; a month is plenty.
            let ops =
                vec![WriteOp::create(marker, body).with_ttl(Duration::from_secs(31 * 24 * 3600))];
            match commit(
                &ctx,
                credential.tenant_id().as_str(),
                ops,
                &[event],
                "noticed",
            )
            .await
            {
                Ok(()) => due += 1,
                Err(ApiError::Conflict(_)) => {}
                Err(e) => return Err(InvocationError::transient(format!("{e:?}"))),
            }
        }
        token = page.continuation;
        if token.is_none() {
            break;
        }
    }
    tracing::info!(due, "rotation sweep done");
    Ok(InvocationResponse::default())
}
