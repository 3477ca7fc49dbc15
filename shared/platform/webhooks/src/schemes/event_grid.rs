//! Event Grid (Event Grid schema): no signature. Notifications carry a shared secret in the
//! subscription URL's `code` query parameter or an `x-webhook-key` delivery header; the
//! `aeg-event-type: SubscriptionValidation` handshake yields a [`Handshake`] to answer.

use super::{Outcome, batch_meta, events};
use crate::headers::{ct_eq_secret, json_str, meta, query_values, single};
use crate::{Handshake, Secret, Unverified, VerifyError};

const KEY_HEADER: &str = "x-webhook-key";
const VALIDATION_EVENT: &str = "Microsoft.EventGrid.SubscriptionValidationEvent";

pub(super) fn verify(
    req: &Unverified<'_>,
    secret: &Secret,
    handshake_requires_secret: bool,
) -> Result<Outcome, VerifyError> {
    let is_handshake = meta(req.headers(), "aeg-event-type")
        .is_some_and(|t| t.eq_ignore_ascii_case("SubscriptionValidation"));
    if !is_handshake || handshake_requires_secret {
        authenticate(req, secret)?;
    }
    let events = events(req.body());
    if is_handshake {
        let event = events
            .iter()
            .find(|e| json_str(e, &["eventType"]).as_deref() == Some(VALIDATION_EVENT))
            .ok_or(VerifyError::Malformed("subscription validation event"))?;
        let validation_code = json_str(event, &["data", "validationCode"])
            .ok_or(VerifyError::Malformed("validationCode"))?;
        return Ok(Outcome {
            delivery_id: json_str(event, &["id"]),
            event_type: Some(VALIDATION_EVENT.to_owned()),
            handshake: Some(Handshake::EventGridValidation {
                validation_code,
                validation_url: json_str(event, &["data", "validationUrl"]),
            }),
            ..Outcome::default()
        });
    }
    let (delivery_id, event_type) = batch_meta(&events, "id", "eventType");
    Ok(Outcome {
        delivery_id,
        event_type,
        ..Outcome::default()
    })
}

/// Every credential presented must match, and at least one must be presented.
fn authenticate(req: &Unverified<'_>, secret: &Secret) -> Result<(), VerifyError> {
    let expected = secret.symmetric()?;
    let header = single(req.headers(), KEY_HEADER)?;
    let query = query_values(req.url(), "code");
    if query.len() > 1 {
        return Err(VerifyError::Malformed("code query parameter"));
    }
    if header.is_none() && query.is_empty() {
        return Err(VerifyError::MissingHeader(KEY_HEADER.to_owned()));
    }
    let ok = header.is_none_or(|h| ct_eq_secret(h.as_bytes(), expected))
        & query
            .first()
            .is_none_or(|q| ct_eq_secret(q.as_bytes(), expected));
    if ok {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}
