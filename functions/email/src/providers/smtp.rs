//! Plain SMTP submission (`smtp`), through `lettre`'s SMTP client.
//!
//! - Credential `{"kind":"basic","username":"…","password":"…"}` (AUTH PLAIN, or LOGIN
//!   when the server offers only that); config `host`, `port` (default 587, 465 with
//!   implicit TLS), `tls` and `from` (the envelope and header sender; `send`'s `from`
//!   overrides it).
//! - `tls`: `starttls` (default: the server must offer STARTTLS, and the session is
//!   encrypted before AUTH; no downgrade), `implicit` (TLS from the first byte, "SMTPS"), or
//!   `none` (plain text, credentials included). `none` is allowed only for a loopback host
//!   (`localhost`, `127.0.0.0/8`, `::1`), checked on the configured name and on every
//!   address it resolves to: it exists for local development relays and test servers,
//!   never for a real one. (The provider cannot see whether the environment is Development;
//!   a loopback host is what that rule means in practice.)
//! - SSRF: the host is resolved here and only public addresses are used, unless the host is
//!   named in the same allow-list as the HTTP guard's (`OUTBOUND_ALLOWED_HOSTS`, development
//!   and tests: `127.0.0.1`). The connection is made to the addresses checked.
//! - One attempt = connect, EHLO, STARTTLS, AUTH, `MAIL FROM`, `RCPT TO` per recipient,
//!   `DATA`, the message, `QUIT`, through `Pipeline::execute` (`Safety::Unsafe`: SMTP has
//!   no idempotency key). How failures read:
//!   - a 4xx reply: `transient`; a 5xx reply: `auth` (530, 534, 535, 538, or any 5xx to
//!     AUTH), `validation` (501, 553, 555: the address or syntax is refused), `vendor_error`
//!     (500, 502–504: the server did not follow the dialogue), `unprocessable` (the rest:
//!     550 mailbox unavailable, 552, 554 refused…). The reply code (and the enhanced status
//!     code, `550 5.1.1`) is the failure's vendor code; the server's text is not kept (it
//!     tends to quote addresses).
//!   - Any negative reply, even to the message itself, means the server did not take the
//!     message, so the attempt may be repeated (when its class allows); so may a failure to
//!     connect, resolve or finish the dialogue before the message is sent. Everything up to
//!     `DATA` must finish within three quarters of the attempt timeout (a `timeout` that
//!     is safe to repeat); a connection that breaks or goes silent once the message is being
//!     sent may have delivered it, and is not repeated.
//! - The message carries a `Message-ID` derived from the run (`<32 hex@sender's domain>`),
//!   which is the run's vendor message id.
//! - Connection test: connect, EHLO, STARTTLS, AUTH, QUIT.

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use domain::{CredentialKind, FailureClassification};
use integration_kit::{InputError, Provider, ProviderCall, call_failed};
use lettre::message::header::ContentType;
use lettre::message::{Attachment as MimeAttachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::{Address, Message};
use resilience::{CallError, HttpStatus, Outcome, Safety, VendorFailure};
use sha2::{Digest as _, Sha256};

use super::{Net, Resolve};
use crate::{Email, is_email_address};

/// How the session is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    #[default]
    StartTls,
    Implicit,
    None,
}

/// A connection's config, read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    host: String,
    port: u16,
    tls: TlsMode,
    from: String,
}

fn is_host(h: &str) -> bool {
    let bare = h.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok()
        || ((1..=253).contains(&h.len())
            && h.split('.').all(|l| {
                (1..=63).contains(&l.len())
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }))
}

fn is_loopback_host(h: &str) -> bool {
    h.eq_ignore_ascii_case("localhost")
        || h.trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Where a session was when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Connect,
    StartTls,
    Auth,
    Mail,
    Rcpt,
    Data,
    /// The message is being sent or its reply awaited: it may have been taken.
    Message,
}

impl Stage {
    fn command(self) -> &'static str {
        match self {
            Stage::Connect => "the greeting or EHLO",
            Stage::StartTls => "STARTTLS",
            Stage::Auth => "AUTH",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::Message => "the message",
        }
    }
}

fn failed<T>(
    class: FailureClassification,
    message: impl Into<String>,
    maybe_processed: bool,
) -> Outcome<T> {
    Outcome::Failed {
        failure: VendorFailure::new(class, message),
        maybe_processed,
    }
}

/// The enhanced status code (`5.1.1`) at the start of a reply's text, if any.
fn enhanced_code(text: &str) -> Option<&str> {
    let word = text.split_whitespace().next()?;
    let parts: Vec<&str> = word.split('.').collect();
    (parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit())))
    .then_some(word)
}

/// Whether a connection error is a TLS handshake that failed (a certificate refused, a peer
/// not speaking TLS): lettre reports those as connection errors, over the I/O error rustls
/// gives (`InvalidData`), which a refused or broken TCP connection never is.
fn tls_refused(e: &lettre::transport::smtp::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::InvalidData)
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// How a failed session step reads (see the module's documentation).
fn classify<T>(e: &lettre::transport::smtp::Error, stage: Stage) -> Outcome<T> {
    if let Some(code) = e.status() {
        let reply: u16 = code.to_string().parse().unwrap_or(0);
        // lettre's text is "permanent error (550): <the server's text>".
        let shown = e.to_string();
        let server_text = shown.split_once("): ").map_or("", |(_, t)| t);
        let vendor_code = match enhanced_code(server_text) {
            Some(enhanced) => format!("{reply} {enhanced}"),
            None => reply.to_string(),
        };
        let class = match reply {
            400..=499 => FailureClassification::Transient,
            530 | 534 | 535 | 538 => FailureClassification::Auth,
            _ if stage == Stage::Auth => FailureClassification::Auth,
            501 | 553 | 555 => FailureClassification::Validation,
            500 | 502..=504 => FailureClassification::VendorError,
            _ => FailureClassification::Unprocessable,
        };
        return Outcome::Failed {
            failure: VendorFailure::new(
                class,
                format!("the SMTP server answered {reply} to {}", stage.command()),
            )
            .code(vendor_code),
            // A negative reply, even to the message, means it was not taken.
            maybe_processed: false,
        };
    }
    let sending = stage == Stage::Message;
    if e.is_tls() || (matches!(stage, Stage::Connect | Stage::StartTls) && tls_refused(e)) {
        return failed(
            FailureClassification::VendorError,
            "the TLS handshake with the SMTP server failed (certificate or protocol)",
            false,
        );
    }
    if e.is_timeout() {
        return failed(
            FailureClassification::Timeout,
            format!(
                "the SMTP server did not answer in time ({})",
                stage.command()
            ),
            sending,
        );
    }
    if e.is_client() {
        let (class, message) = if stage == Stage::Auth {
            (
                FailureClassification::Auth,
                "the SMTP server offers no AUTH mechanism this client uses (PLAIN, LOGIN)",
            )
        } else {
            (
                FailureClassification::VendorError,
                "the SMTP session could not go on (the server lacks an extension the message needs)",
            )
        };
        return failed(class, message, false);
    }
    if e.is_response() {
        return failed(
            FailureClassification::VendorError,
            format!(
                "the SMTP server's reply to {} was malformed",
                stage.command()
            ),
            sending,
        );
    }
    let message = if stage == Stage::Connect {
        "the SMTP server could not be reached".to_owned()
    } else {
        format!(
            "the connection to the SMTP server broke during {}",
            stage.command()
        )
    };
    failed(FailureClassification::Transient, message, sending)
}

/// What one attempt sends.
struct Envelope<'a> {
    from: Address,
    to: Vec<Address>,
    message: &'a [u8],
}

pub struct Smtp {
    net: Net,
}

impl Smtp {
    pub fn new(net: Net) -> Self {
        Smtp { net }
    }

    /// Connects, secures and authenticates a session; `stage` follows it.
    async fn open(
        &self,
        s: &Settings,
        credentials: &Credentials,
        stage: &mut Stage,
    ) -> Result<AsyncSmtpConnection, Outcome<()>> {
        *stage = Stage::Connect;
        let addrs = match self.net.resolve(&s.host, s.port).await {
            Ok(a) => a,
            Err(Resolve::NotFound) => {
                return Err(failed(
                    FailureClassification::Transient,
                    "the SMTP host did not resolve",
                    false,
                ));
            }
            Err(Resolve::Internal) => {
                return Err(failed(
                    FailureClassification::Validation,
                    "the SMTP host resolves only to internal addresses, which are not allowed",
                    false,
                ));
            }
        };
        if s.tls == TlsMode::None && !addrs.iter().all(|a| a.ip().is_loopback()) {
            return Err(failed(
                FailureClassification::Validation,
                "tls none is allowed only for a loopback host",
                false,
            ));
        }
        let tls = || {
            TlsParameters::new(
                s.host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
            )
            .map_err(|_| {
                failed(
                    FailureClassification::Validation,
                    "the SMTP host is not a name TLS can verify",
                    false,
                )
            })
        };
        let implicit = match s.tls {
            TlsMode::Implicit => Some(tls()?),
            _ => None,
        };
        let hello = ClientId::default();
        let mut conn =
            AsyncSmtpConnection::connect_tokio1(addrs.as_slice(), None, &hello, implicit, None)
                .await
                .map_err(|e| classify(&e, Stage::Connect))?;
        if s.tls == TlsMode::StartTls {
            *stage = Stage::StartTls;
            if !conn.can_starttls() {
                conn.abort().await;
                return Err(failed(
                    FailureClassification::Validation,
                    "the SMTP server does not offer STARTTLS (tls is starttls): nothing was sent in clear",
                    false,
                ));
            }
            let params = tls()?;
            conn.starttls(params, &hello)
                .await
                .map_err(|e| classify(&e, Stage::StartTls))?;
        }
        *stage = Stage::Auth;
        if let Err(e) = conn
            .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
            .await
        {
            conn.abort().await;
            return Err(classify(&e, Stage::Auth));
        }
        Ok(conn)
    }

    /// Everything before the message: a session up to an accepted `DATA`.
    async fn prepare(
        &self,
        s: &Settings,
        credentials: &Credentials,
        envelope: &Envelope<'_>,
        stage: &mut Stage,
    ) -> Result<AsyncSmtpConnection, Outcome<()>> {
        let mut conn = self.open(s, credentials, stage).await?;
        let mut parameters = Vec::new();
        if !envelope.message.is_ascii() {
            if !conn.server_info().supports_feature(Extension::EightBitMime) {
                conn.abort().await;
                return Err(failed(
                    FailureClassification::Validation,
                    "the message is not 7-bit and the SMTP server does not accept 8BITMIME",
                    false,
                ));
            }
            parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        *stage = Stage::Mail;
        let step = conn
            .command(Mail::new(Some(envelope.from.clone()), parameters))
            .await;
        if let Err(e) = step {
            conn.abort().await;
            return Err(classify(&e, Stage::Mail));
        }
        *stage = Stage::Rcpt;
        for to in &envelope.to {
            if let Err(e) = conn.command(Rcpt::new(to.clone(), Vec::new())).await {
                // Nothing is sent unless every recipient is accepted.
                conn.abort().await;
                return Err(classify(&e, Stage::Rcpt));
            }
        }
        *stage = Stage::Data;
        if let Err(e) = conn.command(Data).await {
            conn.abort().await;
            return Err(classify(&e, Stage::Data));
        }
        Ok(conn)
    }

    /// One attempt at sending.
    async fn attempt(
        &self,
        s: &Settings,
        credentials: &Credentials,
        envelope: &Envelope<'_>,
        pre_data: Duration,
    ) -> Outcome<()> {
        let mut stage = Stage::Connect;
        let prepared =
            tokio::time::timeout(pre_data, self.prepare(s, credentials, envelope, &mut stage))
                .await;
        let mut conn = match prepared {
            Ok(Ok(conn)) => conn,
            Ok(Err(outcome)) => return outcome,
            Err(_) => {
                return failed(
                    FailureClassification::Timeout,
                    format!(
                        "the SMTP server did not answer in time ({})",
                        stage.command()
                    ),
                    false,
                );
            }
        };
        match conn.message(envelope.message).await {
            Ok(_) => {
                // The message is taken; a failed QUIT changes nothing.
                let _ = conn.quit().await;
                Outcome::Done(())
            }
            Err(e) => classify(&e, Stage::Message),
        }
    }

    fn credentials(call: &ProviderCall<'_>) -> Result<Credentials, CallError> {
        Ok(Credentials::new(
            call.secret("username")?.to_owned(),
            call.secret("password")?.to_owned(),
        ))
    }
}

/// The run's `Message-ID`: 32 hex digits of the run's hash at the sender's domain.
fn message_id(idempotency_key: Option<&str>, from: &str) -> String {
    let seed = idempotency_key
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let digest = Sha256::digest(format!("smtp/{seed}").as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    let domain = from.rsplit_once('@').map_or("localhost", |(_, d)| d);
    format!("{hex}@{domain}")
}

/// The MIME message: the body (text, html or both as alternatives), then the attachments.
fn build_message(email: &Email, from: &str, id: &str) -> Result<Message, String> {
    let mailbox = |a: &str| -> Result<Mailbox, String> {
        a.parse::<Address>()
            .map(|address| Mailbox::new(None, address))
            .map_err(|_| "an address was refused by the SMTP client".to_owned())
    };
    let mut builder = Message::builder()
        .from(mailbox(from)?)
        .subject(email.subject.to_string())
        .message_id(Some(format!("<{id}>")));
    for a in &email.to {
        builder = builder.to(mailbox(a)?);
    }
    for a in &email.cc {
        builder = builder.cc(mailbox(a)?);
    }
    // Bcc recipients are in the envelope only: lettre leaves the header out.
    for a in &email.bcc {
        builder = builder.bcc(mailbox(a)?);
    }
    let body = match (&email.text, &email.html) {
        (Some(text), Some(html)) => Part::Multi(MultiPart::alternative_plain_html(
            text.to_string(),
            html.to_string(),
        )),
        (Some(text), None) => Part::Single(SinglePart::plain(text.to_string())),
        (None, Some(html)) => Part::Single(SinglePart::html(html.to_string())),
        (None, None) => return Err("text or html is required".into()),
    };
    let built = if email.attachments.is_empty() {
        match body {
            Part::Multi(m) => builder.multipart(m),
            Part::Single(s) => builder.singlepart(s),
        }
    } else {
        let mut mixed = match body {
            Part::Multi(m) => MultiPart::mixed().multipart(m),
            Part::Single(s) => MultiPart::mixed().singlepart(s),
        };
        for a in &email.attachments {
            let content_type = ContentType::parse(&a.content_type[..])
                .map_err(|_| format!("{} is not a MIME type", &*a.content_type))?;
            mixed = mixed
                .singlepart(MimeAttachment::new(a.name.to_string()).body(a.bytes(), content_type));
        }
        builder.multipart(mixed)
    };
    built.map_err(|_| "the message could not be built".to_owned())
}

enum Part {
    Single(SinglePart),
    Multi(MultiPart),
}

/// The connection's config, checked when a connection is made (a misspelt, mistyped or
/// malformed setting is a 400 naming it; an internal `host` is refused by the kit's SSRF
/// check of `host`).
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SmtpConfig {
    /// The SMTP server's name or IP address.
    host: String,
    /// Default 465 for implicit TLS, else 587.
    port: Option<u16>,
    #[serde(default)]
    tls: TlsMode,
    /// The sender's address.
    from: String,
}

impl integration_kit::ProviderConfig for SmtpConfig {
    fn check(&self) -> Result<(), InputError> {
        if !is_host(self.host.trim()) {
            return Err(InputError::at(
                "host",
                "must be the SMTP server's name or IP address",
            ));
        }
        if self.port == Some(0) {
            return Err(InputError::at("port", "must be a number from 1 to 65535"));
        }
        if self.tls == TlsMode::None && !is_loopback_host(self.host.trim()) {
            return Err(InputError::at(
                "tls",
                "none is allowed only for a loopback host (localhost, 127.0.0.1, ::1): use starttls or implicit",
            ));
        }
        if !is_email_address(&self.from) {
            return Err(InputError::at("from", "must be the sender's address"));
        }
        Ok(())
    }
}

impl SmtpConfig {
    fn settings(&self) -> Settings {
        let port = self.port.unwrap_or(match self.tls {
            TlsMode::Implicit => 465,
            _ => 587,
        });
        Settings {
            host: self.host.trim().to_owned(),
            port,
            tls: self.tls,
            from: self.from.clone(),
        }
    }
}

#[async_trait]
impl Provider for Smtp {
    fn key(&self) -> &'static str {
        "smtp"
    }

    fn credential_kinds(&self) -> &'static [CredentialKind] {
        &[CredentialKind::Basic]
    }

    async fn test_connection(&self, call: &ProviderCall<'_>) -> Result<(), CallError> {
        let s = call.config_as::<SmtpConfig>()?.settings();
        let credentials = Self::credentials(call)?;
        call.pipeline
            .execute(call.call(Safety::Safe, &HttpStatus), |_| async {
                let mut stage = Stage::Connect;
                match self.open(&s, &credentials, &mut stage).await {
                    Ok(mut conn) => {
                        let _ = conn.quit().await;
                        Outcome::Done(())
                    }
                    Err(outcome) => outcome,
                }
            })
            .await
            .map(|_| ())
    }

    fn serves(served: &mut integration_kit::Served<Self>) {
        served.operation::<crate::Send>().config::<SmtpConfig>();
    }
}

#[async_trait]
impl integration_kit::Serves<crate::Send> for Smtp {
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        email: &crate::Email,
    ) -> Result<integration_kit::Step<crate::EmailSent>, CallError> {
        let s = call.config_as::<SmtpConfig>()?.settings();
        let credentials = Self::credentials(call)?;
        let from = email.from.as_deref().unwrap_or(&s.from);
        let id = message_id(call.idempotency_key, from);
        let message = build_message(email, from, &id)
            .map_err(|e| call_failed(FailureClassification::Validation, e))?;
        let formatted = message.formatted();
        let envelope = Envelope {
            from: message
                .envelope()
                .from()
                .cloned()
                .ok_or_else(|| call_failed(FailureClassification::Validation, "no sender"))?,
            to: message.envelope().to().to_vec(),
            message: &formatted,
        };
        let pre_data = call.pipeline.policy().attempt_timeout * 3 / 4;
        let ((), attempts) = call
            .pipeline
            .execute(call.call(Safety::Unsafe, &HttpStatus), |_| {
                self.attempt(&s, &credentials, &envelope, pre_data)
            })
            .await?;
        Ok(super::sent(email, Some(id), "accepted", attempts).into())
    }
}

#[cfg(test)]
mod tests;
