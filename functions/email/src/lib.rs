//! `email`: the email app. One operation, `send`, through the tenant's connections with
//! automatic failover in priority order, on the integration kit (connections, runs,
//! idempotency, retries and the failure ledger are the kit's).
//!
//! `send`'s input ([`Email::parse`] says exactly what is accepted):
//!
//! ```json
//! {"to": ["a@example.com"], "cc": [], "bcc": [], "subject": "Hi",
//!  "text": "Hello", "html": "<p>Hello</p>", "from": "noreply@example.com",
//!  "attachments": [{"name": "a.pdf", "contentType": "application/pdf", "contentBase64": "JVBER…"}]}
//! ```
//!
//! Providers, one module each under [`providers`]: `fake-email` (in process, for tests and
//! demos), `acs-email` (Azure Communication Services Email), `sendgrid` (SendGrid v3) and
//! `smtp` (any submission server, through `lettre`). A run's summary holds the message id,
//! the status the vendor reported, the attempts and the counts of recipients and
//! attachments; never addresses, content or secrets.

pub mod providers;

use std::collections::HashSet;

use app_context::{AppContext, AppRegistration, CatalogueEntry, InvalidSetting};
use base64::Engine as _;
use domain::AuthScheme;
use functions_runtime::FunctionApp;
use integration_kit::{InputError, Operation, VendorApp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const SLUG: &str = "email";
pub const SOURCE: &str = "/integration/email";

/// Recipients of one message, to, cc and bcc together.
pub const MAX_RECIPIENTS: usize = 50;
/// Attachments of one message.
pub const MAX_ATTACHMENTS: usize = 10;
/// Decoded attachment bytes of one message, all attachments together: 7 MiB, which base64
/// (4/3) keeps under the 10 MB message limit of Azure Communication Services, the smallest of
/// the providers', with room for the bodies.
pub const MAX_ATTACHMENT_BYTES: usize = 7 * 1024 * 1024;
/// The longest subject (RFC 5322's line limit).
pub const MAX_SUBJECT_CHARS: usize = 998;
/// The longest attachment file name.
pub const MAX_ATTACHMENT_NAME_CHARS: usize = 255;

/// The providers this app has adapters for, as the registry's catalogue lists them.
pub const CATALOGUE: &[CatalogueEntry] = &[
    entry(
        "fake-email",
        "Fake email (tests and demos)",
        AuthScheme::ApiKey,
        "https://fake-email.invalid",
    ),
    entry(
        "acs-email",
        "Azure Communication Services Email",
        AuthScheme::Hmac,
        "https://communication.azure.com",
    ),
    entry(
        "sendgrid",
        "SendGrid v3",
        AuthScheme::Bearer,
        "https://api.sendgrid.com",
    ),
    // SMTP is not HTTP; the catalogue's URL is informative, the connection names the server.
    entry("smtp", "SMTP", AuthScheme::Basic, "https://smtp.invalid"),
];

const fn entry(
    key: &'static str,
    name: &'static str,
    auth: AuthScheme,
    base_url: &'static str,
) -> CatalogueEntry {
    CatalogueEntry::retested(key, name, domain::ProviderCategory::Email, auth, base_url)
}

pub fn registration() -> AppRegistration {
    integration_kit::registration(SLUG, build, CATALOGUE)
}

pub fn build(ctx: &AppContext) -> Result<FunctionApp, InvalidSetting> {
    let net = providers::Net::from_context(ctx)?;
    VendorApp::new(SLUG, SOURCE)
        .failover(true)
        .provider(providers::fake::Fake)
        .provider(providers::acs::Acs::new(net.clone()))
        .provider(providers::sendgrid::SendGrid::new(net.clone()))
        .provider(providers::smtp::Smtp::new(net))
        .build(ctx)
}

/// `send`: one message to its recipients.
pub struct Send;

impl Operation for Send {
    const NAME: &'static str = "send";
    type Input = Email;
    type Output = EmailSent;

    /// [`Email::parse`], whose messages start with the field they refuse.
    fn parse(input: &Value) -> Result<Email, InputError> {
        Email::parse(input).map_err(|message| field_error(&message))
    }
}

/// What a sent message's run keeps: ids and counts, never addresses, content or secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailSent {
    /// The vendor's id of the message (SMTP servers may not give one).
    pub message_id: Option<String>,
    pub status: String,
    pub attempts: u32,
    pub recipients: usize,
    pub attachments: usize,
    /// How often the vendor was asked about an accepted message before the run ended (ACS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polls: Option<u32>,
}

/// The field an [`Email::parse`] message names (`to[1]`, `attachments[0].name`), as the
/// error's path; a message about the input as a whole has none.
fn field_error(message: &str) -> InputError {
    let token = message.split([' ', ':']).next().unwrap_or_default();
    let (base, rest) = token.split_at(token.find(['[', '.']).unwrap_or(token.len()));
    let known_base = FIELDS.contains(&base);
    let known_rest = rest.is_empty()
        || rest
            .strip_prefix('[')
            .and_then(|r| r.split_once(']'))
            .is_some_and(|(index, after)| {
                index.bytes().all(|b| b.is_ascii_digit())
                    && (after.is_empty()
                        || after
                            .strip_prefix('.')
                            .is_some_and(|f| ATTACHMENT_FIELDS.contains(&f)))
            });
    // "text or html ... is required" is about two fields: it names neither alone.
    let about_one = !message[token.len()..].starts_with(" or ");
    if known_base && known_rest && about_one && !token.is_empty() {
        InputError::at(token, message[token.len()..].trim_start_matches(':').trim())
    } else {
        InputError::at("", message)
    }
}

/// One message to send: `send`'s input, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    /// The sender, when not the connection's.
    pub from: Option<String>,
    pub attachments: Vec<Attachment>,
}

/// A file sent with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    /// As given: standard base64 with padding.
    pub content_base64: String,
    /// Decoded bytes.
    pub size: usize,
}

impl Attachment {
    /// The decoded content (checked by [`Email::parse`], so this does not fail for a parsed
    /// attachment).
    pub fn bytes(&self) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.content_base64)
            .unwrap_or_default()
    }
}

const FIELDS: &[&str] = &[
    "to",
    "cc",
    "bcc",
    "subject",
    "text",
    "html",
    "from",
    "attachments",
];
const ATTACHMENT_FIELDS: &[&str] = &["name", "contentType", "contentBase64"];

/// Read as [`Email::parse`] reads it (the kit reads inputs through [`Send`], which keeps the
/// field a refusal names).
impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        Email::parse(&value).map_err(serde::de::Error::custom)
    }
}

impl Email {
    /// Checks `send`'s input and reads it. The rules:
    ///
    /// - an object with only the fields `to`, `cc`, `bcc`, `subject`, `text`, `html`, `from`,
    ///   `attachments`;
    /// - `to`: at least one address; `cc`, `bcc`: optional lists; every address valid by
    ///   [`is_email_address`]; an address appears at most once across the three lists
    ///   (compared case-insensitively, as mailbox providers do); at most
    ///   [`MAX_RECIPIENTS`] in all;
    /// - `subject`: 1 to 998 characters, no control characters (so no header injection);
    /// - `text` and/or `html`: at least one, non-empty;
    /// - `from`: optional, a valid address (otherwise the connection's sender is used);
    /// - `attachments`: at most [`MAX_ATTACHMENTS`], each `{name, contentType,
    ///   contentBase64}`: a file name of 1 to 255 characters without control characters, `/`
    ///   or `\`; a MIME type `type/subtype`; standard base64 with padding, no line breaks,
    ///   not empty; at most [`MAX_ATTACHMENT_BYTES`] decoded, all attachments together.
    pub fn parse(input: &Value) -> Result<Email, String> {
        let obj = input.as_object().ok_or(
            "input must be an object {to, cc?, bcc?, subject, text?, html?, from?, attachments?}",
        )?;
        if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(format!("{unknown:?} is not a field of send"));
        }
        let to = addresses(obj, "to")?;
        if to.is_empty() {
            return Err("to must list at least one address".into());
        }
        let cc = addresses(obj, "cc")?;
        let bcc = addresses(obj, "bcc")?;
        let mut seen = HashSet::new();
        for (field, list) in [("to", &to), ("cc", &cc), ("bcc", &bcc)] {
            for (i, a) in list.iter().enumerate() {
                if !seen.insert(a.to_ascii_lowercase()) {
                    return Err(format!(
                        "{field}[{i}] repeats an address: each address may appear once across to, cc and bcc"
                    ));
                }
            }
        }
        let recipients = to.len() + cc.len() + bcc.len();
        if recipients > MAX_RECIPIENTS {
            return Err(format!(
                "at most {MAX_RECIPIENTS} recipients in all (to, cc and bcc), not {recipients}"
            ));
        }
        let subject = obj
            .get("subject")
            .and_then(Value::as_str)
            .filter(|s| {
                let n = s.chars().count();
                (1..=MAX_SUBJECT_CHARS).contains(&n) && !s.chars().any(char::is_control)
            })
            .ok_or(format!(
                "subject is required: 1 to {MAX_SUBJECT_CHARS} characters, no line breaks or control characters"
            ))?
            .to_owned();
        let text = body(obj, "text")?;
        let html = body(obj, "html")?;
        if text.is_none() && html.is_none() {
            return Err("text or html (or both) is required".into());
        }
        let from = match obj.get("from") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_str()
                    .filter(|s| is_email_address(s))
                    .ok_or("from must be an email address (local@domain)")?
                    .to_owned(),
            ),
        };
        let attachments = attachments(obj)?;
        Ok(Email {
            to,
            cc,
            bcc,
            subject,
            text,
            html,
            from,
            attachments,
        })
    }

    /// Recipients in all.
    pub fn recipients(&self) -> usize {
        self.to.len() + self.cc.len() + self.bcc.len()
    }
}

fn addresses(obj: &Map<String, Value>, field: &str) -> Result<Vec<String>, String> {
    let list = match obj.get(field) {
        None | Some(Value::Null) if field != "to" => return Ok(Vec::new()),
        None | Some(Value::Null) => return Err("to is required: a list of addresses".into()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(format!("{field} must be a list of addresses")),
    };
    if list.len() > MAX_RECIPIENTS {
        return Err(format!(
            "at most {MAX_RECIPIENTS} recipients in all (to, cc and bcc)"
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str()
                .filter(|s| is_email_address(s))
                .map(str::to_owned)
                .ok_or_else(|| {
                    format!(
                        "{field}[{i}] is not an email address (local@domain, ASCII, no display name)"
                    )
                })
        })
        .collect()
}

fn body(obj: &Map<String, Value>, field: &str) -> Result<Option<String>, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(_) => Err(format!("{field} must be a non-empty string")),
    }
}

fn attachments(obj: &Map<String, Value>) -> Result<Vec<Attachment>, String> {
    let list = match obj.get("attachments") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => {
            return Err("attachments must be a list of {name, contentType, contentBase64}".into());
        }
    };
    if list.len() > MAX_ATTACHMENTS {
        return Err(format!(
            "at most {MAX_ATTACHMENTS} attachments, not {}",
            list.len()
        ));
    }
    let mut total = 0usize;
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let a = item.as_object().ok_or(format!(
            "attachments[{i}] must be an object {{name, contentType, contentBase64}}"
        ))?;
        if let Some(unknown) = a.keys().find(|k| !ATTACHMENT_FIELDS.contains(&k.as_str())) {
            return Err(format!(
                "attachments[{i}]: {unknown:?} is not a field of an attachment"
            ));
        }
        let name = a
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| is_file_name(n))
            .ok_or(format!(
                "attachments[{i}].name must be a file name of 1 to {MAX_ATTACHMENT_NAME_CHARS} characters without control characters, / or \\"
            ))?;
        let content_type = a
            .get("contentType")
            .and_then(Value::as_str)
            .filter(|t| is_mime_type(t))
            .ok_or(format!(
                "attachments[{i}].contentType must be a MIME type such as application/pdf"
            ))?;
        let encoded = a
            .get("contentBase64")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(format!(
                "attachments[{i}].contentBase64 is required: the content in standard base64"
            ))?;
        // Cheap bound before decoding: decoded size is at most 3/4 of the text.
        if encoded.len() / 4 * 3 > MAX_ATTACHMENT_BYTES + 3 {
            return Err(too_large());
        }
        let size = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| {
                format!(
                    "attachments[{i}].contentBase64 is not standard base64 (A-Z a-z 0-9 + /, padded with =, no line breaks)"
                )
            })?
            .len();
        total += size;
        if total > MAX_ATTACHMENT_BYTES {
            return Err(too_large());
        }
        out.push(Attachment {
            name: name.to_owned(),
            content_type: content_type.to_ascii_lowercase(),
            content_base64: encoded.to_owned(),
            size,
        });
    }
    Ok(out)
}

fn too_large() -> String {
    format!("attachments may hold at most {MAX_ATTACHMENT_BYTES} bytes (7 MiB) in all, decoded")
}

/// Whether `s` is an address this app sends to. Deliberately simpler than RFC 5321:
///
/// - `local@domain`, ASCII, at most 254 characters, no display name (`Name <a@b>`), no
///   quoted local part, no IP-literal domain;
/// - local part: 1 to 64 of letters, digits and ``!#$%&'*+/=?^_`{|}~.-``, no leading,
///   trailing or doubled dot;
/// - domain: at least two dot-separated labels of 1 to 63 letters, digits and hyphens, not
///   starting or ending with a hyphen; the last label is not all digits. Internationalised
///   domains are given in their `xn--` form.
pub fn is_email_address(s: &str) -> bool {
    if s.len() > 254 || !s.is_ascii() {
        return false;
    }
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    let local_ok = (1..=64).contains(&local.len())
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~.-".contains(&b))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
        && labels
            .last()
            .is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()));
    local_ok && domain_ok
}

fn is_file_name(s: &str) -> bool {
    let n = s.chars().count();
    (1..=MAX_ATTACHMENT_NAME_CHARS).contains(&n)
        && !s.chars().any(|c| c.is_control() || c == '/' || c == '\\')
        && s.trim() == s
}

/// `type/subtype`, each a token of letters, digits and ``!#$&^_.+-`` (RFC 6838), no
/// parameters.
fn is_mime_type(s: &str) -> bool {
    let token = |t: &str| {
        (1..=127).contains(&t.len())
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    s.split_once('/')
        .is_some_and(|(t, sub)| token(t) && token(sub))
}

#[cfg(test)]
mod tests;
