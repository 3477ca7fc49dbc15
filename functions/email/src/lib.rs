//! `email`: the email app. One operation, `send`, through the tenant's connections with
//! automatic failover in priority order, on the integration kit (connections, runs,
//! idempotency, retries and the failure ledger are the kit's).
//!
//! `send`'s input ([`Email`] says exactly what is accepted):
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
/// The largest input of a `send` run, as JSON: the attachments' 7 MiB in base64 (4/3),
/// the bodies and the rest.
pub const MAX_INPUT_BYTES: usize = 10 * 1024 * 1024;
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
    /// 7 MiB of attachments are about 9.4 MiB in base64, with room for the bodies.
    const MAX_INPUT_BYTES: usize = MAX_INPUT_BYTES;
    type Input = Email;
    type Output = EmailSent;

    /// The rules across fields; each field checks itself when it is read.
    fn check(email: &Email) -> Result<(), InputError> {
        if email.to.is_empty() {
            return Err(InputError::at("to", "must list at least one address"));
        }
        let mut seen = HashSet::new();
        for (field, list) in [("to", &email.to), ("cc", &email.cc), ("bcc", &email.bcc)] {
            for (i, a) in list.iter().enumerate() {
                if !seen.insert(a.to_ascii_lowercase()) {
                    return Err(InputError::at(
                        format!("{field}[{i}]"),
                        "repeats an address: each address may appear once across to, cc and bcc",
                    ));
                }
            }
        }
        let recipients = email.recipients();
        if recipients > MAX_RECIPIENTS {
            return Err(InputError::at(
                "",
                format!(
                    "at most {MAX_RECIPIENTS} recipients in all (to, cc and bcc), not {recipients}"
                ),
            ));
        }
        if email.text.is_none() && email.html.is_none() {
            return Err(InputError::at("", "text or html (or both) is required"));
        }
        let attachments = email.attachments.len();
        if attachments > MAX_ATTACHMENTS {
            return Err(InputError::at(
                "attachments",
                format!("at most {MAX_ATTACHMENTS} attachments, not {attachments}"),
            ));
        }
        if email
            .attachments
            .iter()
            .map(Attachment::size)
            .sum::<usize>()
            > MAX_ATTACHMENT_BYTES
        {
            return Err(InputError::at("attachments", too_large()));
        }
        Ok(())
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

/// One message to send: `send`'s input. The rules:
///
/// - only the fields `to`, `cc`, `bcc`, `subject`, `text`, `html`, `from`, `attachments`;
/// - `to`: at least one address; `cc`, `bcc`: optional lists; every address valid by
///   [`is_email_address`]; an address appears at most once across the three lists
///   (compared case-insensitively, as mailbox providers do); at most [`MAX_RECIPIENTS`] in
///   all;
/// - `subject`: 1 to 998 characters, no control characters (so no header injection);
/// - `text` and/or `html`: at least one, non-empty;
/// - `from`: optional, a valid address (otherwise the connection's sender is used);
/// - `attachments`: at most [`MAX_ATTACHMENTS`], each `{name, contentType, contentBase64}`:
///   a file name of 1 to 255 characters without control characters, `/` or `\`; a MIME type
///   `type/subtype`; standard base64 with padding, no line breaks, not empty; at most
///   [`MAX_ATTACHMENT_BYTES`] decoded, all attachments together.
///
/// Optional fields may be absent or `null`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Email {
    pub to: Vec<Address>,
    #[serde(default, deserialize_with = "integration_kit::null_as_default")]
    pub cc: Vec<Address>,
    #[serde(default, deserialize_with = "integration_kit::null_as_default")]
    pub bcc: Vec<Address>,
    pub subject: Subject,
    #[serde(default)]
    pub text: Option<Body>,
    #[serde(default)]
    pub html: Option<Body>,
    /// The sender, when not the connection's.
    #[serde(default)]
    pub from: Option<Address>,
    #[serde(default, deserialize_with = "integration_kit::null_as_default")]
    pub attachments: Vec<Attachment>,
}

impl Email {
    /// To, cc and bcc together.
    pub fn recipients(&self) -> usize {
        self.to.len() + self.cc.len() + self.bcc.len()
    }
}

integration_kit::checked_string!(
    /// An address this app sends to ([`is_email_address`]).
    Address,
    |s| {
        if is_email_address(s) {
            Ok(())
        } else {
            Err("is not an email address (local@domain, ASCII, no display name)".into())
        }
    }
);

integration_kit::checked_string!(
    /// A subject of 1 to [`MAX_SUBJECT_CHARS`] characters without control characters.
    Subject,
    |s| {
        let n = s.chars().count();
        if (1..=MAX_SUBJECT_CHARS).contains(&n) && !s.chars().any(char::is_control) {
            Ok(())
        } else {
            Err(format!(
                "must be 1 to {MAX_SUBJECT_CHARS} characters, no line breaks or control characters"
            ))
        }
    }
);

integration_kit::checked_string!(
    /// A non-empty body (text or HTML).
    Body,
    |s| {
        if s.is_empty() {
            Err("must be a non-empty string".into())
        } else {
            Ok(())
        }
    }
);

integration_kit::checked_string!(
    /// A file name of 1 to [`MAX_ATTACHMENT_NAME_CHARS`] characters without control
    /// characters, `/` or `\`, not padded.
    FileName,
    |s| {
        if is_file_name(s) {
            Ok(())
        } else {
            Err(format!(
                "must be a file name of 1 to {MAX_ATTACHMENT_NAME_CHARS} characters without control characters, / or \\"
            ))
        }
    }
);

/// A file sent with a message.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Attachment {
    pub name: FileName,
    pub content_type: MimeType,
    #[serde(rename = "contentBase64")]
    pub content: Base64Content,
}

impl Attachment {
    /// The decoded bytes.
    pub fn bytes(&self) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.content.text)
            .unwrap_or_default()
    }

    /// Decoded bytes.
    pub fn size(&self) -> usize {
        self.content.size
    }
}

/// `type/subtype` ([`is_mime_type`]), kept lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub struct MimeType(String);

impl TryFrom<String> for MimeType {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if is_mime_type(&s) {
            Ok(MimeType(s.to_ascii_lowercase()))
        } else {
            Err("must be a MIME type such as application/pdf".into())
        }
    }
}

impl std::ops::Deref for MimeType {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// An attachment's content as given (standard base64 with padding, not empty) and its
/// decoded size.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Base64Content {
    pub text: String,
    pub size: usize,
}

impl TryFrom<String> for Base64Content {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        if text.is_empty() {
            return Err("is required: the content in standard base64".into());
        }
        // Cheap bound before decoding: decoded size is at most 3/4 of the text.
        if text.len() / 4 * 3 > MAX_ATTACHMENT_BYTES + 3 {
            return Err(too_large());
        }
        let size = base64::engine::general_purpose::STANDARD
            .decode(&text)
            .map_err(|_| {
                "is not standard base64 (A-Z a-z 0-9 + /, padded with =, no line breaks)".to_owned()
            })?
            .len();
        Ok(Base64Content { text, size })
    }
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
