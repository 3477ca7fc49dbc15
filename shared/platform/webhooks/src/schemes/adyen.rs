//! Adyen standard notifications: a JSON body `{"live", "notificationItems": [{
//! "NotificationRequestItem": {…}}]}` whose every item carries its own signature,
//! `additionalData.hmacSignature` = base64 HMAC-SHA256, keyed with the hex-decoded HMAC key,
//! over `pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:
//! eventCode:success` (an absent field is empty). Every item must verify, or the delivery is
//! refused. Adyen signs no timestamp. The delivery id of a one-item notification is Adyen's
//! dedupe key, `pspReference:eventCode:success`; the event type its `eventCode`. Adyen
//! expects `[accepted]` as the answer (the gateway sends it for this scheme).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::Mac;
use serde_json::Value;

use super::{Outcome, json_body};
use crate::headers::HmacSha256;
use crate::{Secret, Unverified, VerifyError};

const MALFORMED: VerifyError = VerifyError::Malformed("Adyen notification");

/// The text of a field: strings as they are, numbers in decimal, absent as empty.
fn field(item: &Value, path: &[&str]) -> String {
    let mut v = item;
    for p in path {
        v = &v[*p];
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

/// The string Adyen signs for one item.
pub(crate) fn signing_string(item: &Value) -> String {
    [
        field(item, &["pspReference"]),
        field(item, &["originalReference"]),
        field(item, &["merchantAccountCode"]),
        field(item, &["merchantReference"]),
        field(item, &["amount", "value"]),
        field(item, &["amount", "currency"]),
        field(item, &["eventCode"]),
        field(item, &["success"]),
    ]
    .join(":")
}

pub(super) fn verify(req: &Unverified<'_>, secret: &Secret) -> Result<Outcome, VerifyError> {
    let key = secret.symmetric()?;
    let body = json_body(req.body()).ok_or(MALFORMED)?;
    let items: Vec<&Value> = body["notificationItems"]
        .as_array()
        .ok_or(MALFORMED)?
        .iter()
        .map(|i| &i["NotificationRequestItem"])
        .collect();
    if items.is_empty() || items.iter().any(|i| !i.is_object()) {
        return Err(MALFORMED);
    }
    // Every item is checked, whatever the first ones gave: no early exit.
    let mut verified = true;
    for item in &items {
        let given = item["additionalData"]["hmacSignature"]
            .as_str()
            .and_then(|s| STANDARD.decode(s).ok());
        let mut mac = HmacSha256::new_from_slice(key).map_err(|_| VerifyError::BadSecret)?;
        mac.update(signing_string(item).as_bytes());
        verified &= given.is_some_and(|g| mac.verify_slice(&g).is_ok());
    }
    if !verified {
        return Err(VerifyError::BadSignature);
    }
    let codes: Vec<String> = items.iter().map(|i| field(i, &["eventCode"])).collect();
    Ok(Outcome {
        delivery_id: match items.as_slice() {
            [one] => Some(format!(
                "{}:{}:{}",
                field(one, &["pspReference"]),
                field(one, &["eventCode"]),
                field(one, &["success"])
            )),
            _ => None,
        },
        event_type: codes
            .iter()
            .all(|c| *c == codes[0])
            .then(|| codes[0].clone())
            .filter(|c| !c.is_empty()),
        ..Outcome::default()
    })
}
