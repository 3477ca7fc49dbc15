//! Platform events on the bus become webhooks: `FanOutEvent`, on the gateway's subscription
//! to `integration-events`, fans every tenant event that is meant for webhooks out to the
//! tenant's matching subscriptions (idempotent per event and subscription, so the bus's
//! redeliveries never make a second delivery).
//!
//! The ordering key of a platform event is its envelope's `subject` (`runs/<id>`,
//! `connections/<id>`, ...): an ordered subscription gets the events of one aggregate in the
//! order the gateway fans them out, and events of different aggregates independently. A
//! subject that is not a valid key (absent, or longer than 128 characters) puts the event in
//! the subscription's keyless lane, which orders more strictly, never less.

use app_context::AppContext;
use domain::{DomainEvent, EventName, TenantId};
use envelope::Envelope;
use functions_runtime::{Invocation, InvocationError, InvocationResponse};
use serde_json::Value;

pub(crate) async fn fan_out_platform_event(
    ctx: AppContext,
    inv: Invocation,
) -> Result<InvocationResponse, InvocationError> {
    let msg = inv.service_bus()?;
    let env = Envelope::parse(&msg.body)
        .map_err(|e| InvocationError::permanent(format!("not an envelope: {e}")))?;
    // Events of other producers this build does not know (or commands) are not for webhooks.
    let Ok(event) = DomainEvent::decode(env.event_type(), &env.data_bytes().unwrap_or_default())
    else {
        return Ok(InvocationResponse::default());
    };
    if !event.fans_out_to_webhooks() {
        return Ok(InvocationResponse::default());
    }
    let tenant = TenantId::parse_tenant(env.tenant_id())
        .map_err(|e| InvocationError::permanent(e.to_string()))?;
    let name =
        EventName::parse(event.name()).map_err(|e| InvocationError::permanent(e.to_string()))?;
    let data: Value = env
        .data_json()
        .map_err(|e| InvocationError::permanent(e.to_string()))?;
    let key = env
        .subject()
        .and_then(|s| super::ordering::OrderingKey::parse(s).ok());
    let time = env.time();
    super::deliveries::fan_out_event(&ctx, &tenant, &name, env.id(), data, key.as_ref(), time)
        .await
        .map_err(|e| InvocationError::transient(format!("{e:?}")))?;
    Ok(InvocationResponse::default())
}
