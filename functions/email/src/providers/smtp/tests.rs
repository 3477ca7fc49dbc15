//! SMTP against a tiny scripted SMTP server (RFC 5321's greeting, EHLO with AUTH, AUTH
//! PLAIN and LOGIN, MAIL FROM, RCPT TO, DATA, QUIT) on loopback.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};

use serde_json::Value;

use super::*;
use crate::providers::testing::{self, Harness, Perform as _, RUN, assert_no_secret, email};

const USER: &str = "mailer-user";
const PASSWORD: &str = "s3cr3t-pw";

/// What the server answers; `None` for the greeting or the end of the message means it
/// goes silent there.
#[derive(Clone)]
struct Script {
    greeting: Option<&'static str>,
    extensions: Vec<&'static str>,
    auth: &'static str,
    mail: &'static str,
    rcpt: &'static str,
    data: &'static str,
    end: Option<&'static str>,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            greeting: Some("220 fake.smtp.test ESMTP ready"),
            extensions: vec!["PIPELINING", "AUTH PLAIN LOGIN", "8BITMIME"],
            auth: "235 2.7.0 Authentication successful",
            mail: "250 2.1.0 Ok",
            rcpt: "250 2.1.5 Ok",
            data: "354 End data with <CR><LF>.<CR><LF>",
            end: Some("250 2.0.0 Ok: queued as 4AB12"),
        }
    }
}

#[derive(Default, Debug)]
struct Received {
    sessions: usize,
    commands: Vec<String>,
    messages: Vec<String>,
}

struct Server {
    port: u16,
    received: Arc<Mutex<Received>>,
}

impl Server {
    async fn start(script: Script) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Received::default()));
        let shared = received.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                shared.lock().unwrap().sessions += 1;
                tokio::spawn(session(stream, script.clone(), shared.clone()));
            }
        });
        Server { port, received }
    }

    fn sessions(&self) -> usize {
        self.received.lock().unwrap().sessions
    }

    fn commands(&self) -> Vec<String> {
        self.received.lock().unwrap().commands.clone()
    }

    fn messages(&self) -> Vec<String> {
        self.received.lock().unwrap().messages.clone()
    }

    fn harness(&self, tls: &str) -> Harness {
        testing::harness(
            "smtp",
            CredentialKind::Basic,
            json!({"username": USER, "password": PASSWORD}),
            json!({"host": "127.0.0.1", "port": self.port, "tls": tls, "from": "noreply@example.com"}),
        )
    }
}

async fn reply(w: &mut OwnedWriteHalf, text: &str) {
    let _ = w.write_all(format!("{text}\r\n").as_bytes()).await;
}

async fn session(stream: TcpStream, script: Script, received: Arc<Mutex<Received>>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let Some(greeting) = script.greeting else {
        std::future::pending::<()>().await;
        return;
    };
    reply(&mut write, greeting).await;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let command = line.trim_end_matches(['\r', '\n']).to_owned();
        received.lock().unwrap().commands.push(command.clone());
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => {
                let mut lines = vec!["fake.smtp.test"];
                lines.extend(&script.extensions);
                let last = lines.len() - 1;
                let text: Vec<String> = lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| format!("250{}{l}", if i == last { ' ' } else { '-' }))
                    .collect();
                reply(&mut write, &text.join("\r\n")).await;
            }
            "AUTH" if command.to_ascii_uppercase().starts_with("AUTH LOGIN") => {
                for challenge in ["334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6"] {
                    reply(&mut write, challenge).await;
                    line.clear();
                    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    received
                        .lock()
                        .unwrap()
                        .commands
                        .push(line.trim_end().to_owned());
                }
                reply(&mut write, script.auth).await;
            }
            "AUTH" => reply(&mut write, script.auth).await,
            "MAIL" => reply(&mut write, script.mail).await,
            "RCPT" => reply(&mut write, script.rcpt).await,
            "DATA" => {
                reply(&mut write, script.data).await;
                if !script.data.starts_with('3') {
                    continue;
                }
                let mut message = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    message.push_str(&line);
                }
                received.lock().unwrap().messages.push(message);
                match script.end {
                    Some(end) => reply(&mut write, end).await,
                    None => std::future::pending::<()>().await,
                }
            }
            "QUIT" => {
                reply(&mut write, "221 2.0.0 Bye").await;
                return;
            }
            "STARTTLS" => {
                // Agrees, then speaks plain text where TLS should be.
                reply(&mut write, "220 2.0.0 Ready to start TLS").await;
                // After the client has read the 220 (so this lands in its TLS handshake).
                tokio::time::sleep(Duration::from_millis(100)).await;
                reply(&mut write, "this is not TLS").await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                return;
            }
            "RSET" | "NOOP" => reply(&mut write, "250 2.0.0 Ok").await,
            _ => reply(&mut write, "502 5.5.2 Error: command not recognized").await,
        }
    }
}

fn smtp() -> Smtp {
    Smtp::new(testing::net())
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn secrets() -> [String; 4] {
    [
        PASSWORD.to_owned(),
        b64(&format!("\0{USER}\0{PASSWORD}")),
        b64(PASSWORD),
        b64(USER),
    ]
}

fn assert_clean(e: &CallError) {
    let s = secrets();
    assert_no_secret(e, &s.iter().map(String::as_str).collect::<Vec<_>>());
}

#[tokio::test]
async fn sends_through_the_whole_dialogue() {
    let server = Server::start(Script::default()).await;
    let h = server.harness("none");
    let out = smtp().perform(&h.call(), &email()).await.expect("sent");
    let id = message_id(Some(RUN), "noreply@example.com");
    assert!(id.ends_with("@example.com") && id.len() == 32 + "@example.com".len());
    assert_eq!(out.vendor_message_id.as_deref(), Some(id.as_str()));
    assert_eq!(out.summary["status"], "accepted");
    assert_eq!(out.summary["attempts"], 1);
    assert_eq!(out.summary["recipients"], 3);
    let commands = server.commands();
    assert!(commands[0].starts_with("EHLO "), "{commands:?}");
    assert_eq!(
        commands[1],
        format!("AUTH PLAIN {}", b64(&format!("\0{USER}\0{PASSWORD}")))
    );
    assert_eq!(
        &commands[2..],
        [
            "MAIL FROM:<noreply@example.com>",
            "RCPT TO:<ada@example.com>",
            "RCPT TO:<grace@example.com>",
            "RCPT TO:<alan@example.com>",
            "DATA",
            "QUIT",
        ]
    );
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    for needle in [
        "From: noreply@example.com\r\n",
        "To: ada@example.com\r\n",
        "Cc: grace@example.com\r\n",
        "Subject: Hello\r\n",
        &format!("Message-ID: <{id}>\r\n"),
        "multipart/mixed",
        "multipart/alternative",
        "Plain body",
        "<p>HTML body</p>",
        "Content-Disposition: attachment; filename=\"note.txt\"",
        // Short ASCII: lettre sends it as 7bit.
        "\r\n\r\nhello\r\n",
    ] {
        assert!(m.contains(needle), "{needle:?} in {m}");
    }
    assert!(!m.contains("Bcc:"), "bcc stays in the envelope");
    assert!(!m.contains("alan@example.com"));
    // `from` in the input is the envelope and header sender.
    let server = Server::start(Script::default()).await;
    let mut input =
        json!({"to": ["a@example.com"], "subject": "s", "text": "t", "from": "news@example.org"});
    smtp()
        .perform(&server.harness("none").call(), &input)
        .await
        .unwrap();
    assert!(
        server
            .commands()
            .contains(&"MAIL FROM:<news@example.org>".to_owned())
    );
    assert!(server.messages()[0].contains("From: news@example.org\r\n"));
    assert!(server.messages()[0].contains("Content-Type: text/plain"));
    input["html"] = json!("<b>h</b>");
    input["text"] = Value::Null;
    let server = Server::start(Script::default()).await;
    smtp()
        .perform(&server.harness("none").call(), &input)
        .await
        .unwrap();
    assert!(server.messages()[0].contains("Content-Type: text/html"));
}

#[tokio::test]
async fn auth_login_is_used_when_plain_is_not_offered() {
    let server = Server::start(Script {
        extensions: vec!["AUTH LOGIN"],
        ..Script::default()
    })
    .await;
    smtp()
        .perform(&server.harness("none").call(), &email())
        .await
        .unwrap();
    let commands = server.commands();
    assert_eq!(commands[1], "AUTH LOGIN");
    assert_eq!(commands[2], b64(USER));
    assert_eq!(commands[3], b64(PASSWORD));
    // A server without AUTH: the credential cannot be used.
    let server = Server::start(Script {
        extensions: vec!["8BITMIME"],
        ..Script::default()
    })
    .await;
    let e = smtp()
        .perform(&server.harness("none").call(), &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Auth);
}

#[tokio::test]
async fn refused_credentials_are_an_auth_failure_naming_no_secret() {
    let server = Server::start(Script {
        auth: "535 5.7.8 Error: authentication failed: bWFpbGVyLXVzZXI=",
        ..Script::default()
    })
    .await;
    let e = smtp()
        .perform(&server.harness("none").call(), &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Auth);
    assert_eq!(e.failure.vendor_code.as_deref(), Some("535 5.7.8"));
    assert_eq!(e.failure.message, "the SMTP server answered 535 to AUTH");
    assert_eq!(e.attempts, 1);
    assert!(!e.retryable);
    assert_eq!(server.sessions(), 1);
    assert!(!server.commands().iter().any(|c| c.starts_with("MAIL")));
    assert_clean(&e);
}

#[tokio::test]
async fn a_4xx_before_data_is_transient_and_repeated() {
    let server = Server::start(Script {
        rcpt: "451 4.7.1 Greylisted, try again later",
        ..Script::default()
    })
    .await;
    let e = smtp()
        .perform(&server.harness("none").call(), &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Transient);
    assert_eq!(e.failure.vendor_code.as_deref(), Some("451 4.7.1"));
    assert!(e.failure.message.contains("RCPT TO"));
    assert_eq!(e.attempts, 3, "refused before DATA: safe to repeat");
    assert!(e.retryable);
    assert_eq!(server.sessions(), 3);
    assert!(server.messages().is_empty());
    assert_clean(&e);
}

#[tokio::test]
async fn a_4xx_to_the_message_is_repeated_too() {
    let server = Server::start(Script {
        end: Some("451 4.3.0 Queue full"),
        ..Script::default()
    })
    .await;
    let e = smtp()
        .perform(&server.harness("none").call(), &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Transient);
    assert_eq!(
        e.attempts, 3,
        "a negative reply means the message was not taken"
    );
    assert_eq!(server.messages().len(), 3);
}

#[tokio::test]
async fn a_5xx_is_permanent() {
    let server = Server::start(Script {
        rcpt: "550 5.1.1 <ada@example.com>: Recipient address rejected: User unknown",
        ..Script::default()
    })
    .await;
    let e = smtp()
        .perform(&server.harness("none").call(), &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Unprocessable);
    assert_eq!(e.failure.vendor_code.as_deref(), Some("550 5.1.1"));
    assert!(
        !e.failure.message.contains("ada@example.com"),
        "server text is not kept"
    );
    assert_eq!(e.attempts, 1);
    assert!(!e.retryable);
    assert!(!server.commands().contains(&"DATA".to_owned()));
    let server = Server::start(Script {
        mail: "553 5.7.1 Sender address rejected: not owned by user",
        ..Script::default()
    })
    .await;
    let e = smtp()
        .perform(&server.harness("none").call(), &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Validation);
    assert!(e.failure.message.contains("MAIL FROM"));
    let server = Server::start(Script {
        end: Some("554 5.7.1 Message rejected as spam"),
        ..Script::default()
    })
    .await;
    let e = smtp()
        .perform(&server.harness("none").call(), &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Unprocessable);
    assert!(e.failure.message.contains("the message"));
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn a_server_silent_before_data_times_out_and_is_repeated() {
    let server = Server::start(Script {
        greeting: None,
        ..Script::default()
    })
    .await;
    let e = smtp()
        .perform(&server.harness("none").call(), &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Timeout);
    assert_eq!(e.attempts, 3, "nothing was sent");
    assert!(e.retryable);
    assert_eq!(server.sessions(), 3);
}

#[tokio::test]
async fn a_server_silent_after_the_message_is_not_repeated() {
    let server = Server::start(Script {
        end: None,
        ..Script::default()
    })
    .await;
    let e = smtp()
        .perform(&server.harness("none").call(), &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Timeout);
    assert_eq!(e.attempts, 1, "it may have been delivered");
    assert!(!e.retryable);
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn an_unreachable_server_is_transient_and_repeated() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let h = testing::harness(
        "smtp",
        CredentialKind::Basic,
        json!({"username": USER, "password": PASSWORD}),
        json!({"host": "127.0.0.1", "port": port, "tls": "none", "from": "noreply@example.com"}),
    );
    let e = smtp().perform(&h.call(), &email()).await.unwrap_err();
    assert_eq!(e.class(), FailureClassification::Transient);
    assert_eq!(e.failure.message, "the SMTP server could not be reached");
    assert_eq!(e.attempts, 3);
    assert!(e.retryable);
}

#[tokio::test]
async fn starttls_is_required_when_configured_and_nothing_goes_in_clear() {
    let server = Server::start(Script::default()).await;
    let e = smtp()
        .perform(&server.harness("starttls").call(), &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Validation);
    assert!(e.failure.message.contains("STARTTLS"));
    assert_eq!(e.attempts, 1);
    let commands = server.commands();
    assert!(commands[0].starts_with("EHLO"));
    assert!(
        !commands
            .iter()
            .any(|c| c.starts_with("AUTH") || c.starts_with("MAIL"))
    );
    // A server that offers STARTTLS but cannot do TLS: a TLS failure, still nothing in clear.
    let server = Server::start(Script {
        extensions: vec!["STARTTLS", "AUTH PLAIN LOGIN"],
        ..Script::default()
    })
    .await;
    let e = smtp()
        .perform(&server.harness("starttls").call(), &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::VendorError);
    assert!(
        e.failure.message.contains("TLS handshake"),
        "{}",
        e.failure.message
    );
    assert_eq!(e.attempts, 1);
    assert!(server.commands().contains(&"STARTTLS".to_owned()));
    assert!(!server.commands().iter().any(|c| c.starts_with("AUTH")));
    assert_clean(&e);
}

#[tokio::test]
async fn internal_hosts_are_refused_unless_allowed() {
    let server = Server::start(Script::default()).await;
    let e = Smtp::new(Net::strict())
        .perform(&server.harness("none").call(), &email())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Validation);
    assert!(e.failure.message.contains("internal"));
    assert_eq!(e.attempts, 1);
    assert_eq!(server.sessions(), 0, "no connection was made");
    let e = Smtp::new(Net::new(Some("localhost"), false))
        .test_connection(&server.harness("none").call())
        .await
        .unwrap_err();
    assert_eq!(
        e.class(),
        FailureClassification::Validation,
        "only the hosts named"
    );
}

#[tokio::test]
async fn the_connection_test_authenticates_and_quits() {
    let server = Server::start(Script::default()).await;
    smtp()
        .test_connection(&server.harness("none").call())
        .await
        .expect("fine");
    let commands = server.commands();
    assert_eq!(commands.len(), 3, "{commands:?}");
    assert!(commands[0].starts_with("EHLO"));
    assert!(commands[1].starts_with("AUTH PLAIN"));
    assert_eq!(commands[2], "QUIT");
    let server = Server::start(Script {
        auth: "535 5.7.8 Authentication credentials invalid",
        ..Script::default()
    })
    .await;
    let e = smtp()
        .test_connection(&server.harness("none").call())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Auth);
    assert_clean(&e);
    // A 421 greeting: the server is busy.
    let server = Server::start(Script {
        greeting: Some("421 4.3.2 Service not available"),
        ..Script::default()
    })
    .await;
    let e = smtp()
        .test_connection(&server.harness("none").call())
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClassification::Transient);
    assert_eq!(e.failure.vendor_code.as_deref(), Some("421 4.3.2"));
}

#[test]
fn config_is_checked() {
    let config = |v: Value| v.as_object().unwrap().clone();
    let read = |v: Value| {
        integration_kit::config_of::<SmtpConfig>(&config(v))
            .map(|c| c.settings())
            .map_err(|e| format!("{}: {}", e.path, e.message))
    };
    let s = read(json!({"host": "smtp.example.com", "from": "a@example.com"})).unwrap();
    assert_eq!((s.port, s.tls), (587, TlsMode::StartTls));
    let s = read(json!({"host": "smtp.example.com", "tls": "implicit", "from": "a@example.com"}))
        .unwrap();
    assert_eq!((s.port, s.tls), (465, TlsMode::Implicit));
    let s =
        read(json!({"host": "smtp.example.com", "port": 2525, "from": "a@example.com"})).unwrap();
    assert_eq!(s.port, 2525);
    assert!(read(json!({"host": "localhost", "tls": "none", "from": "a@example.com"})).is_ok());
    assert!(read(json!({"host": "::1", "tls": "none", "from": "a@example.com"})).is_ok());
    assert!(
        read(json!({"host": "smtp.example.com", "tls": "none", "from": "a@example.com"}))
            .unwrap_err()
            .contains("loopback")
    );
    assert!(read(json!({"host": "10.0.0.5", "tls": "none", "from": "a@example.com"})).is_err());
    assert!(
        read(json!({"host": "smtp.example.com", "tls": "ssl", "from": "a@example.com"})).is_err()
    );
    assert!(read(json!({"host": "smtp.example.com", "port": 0, "from": "a@example.com"})).is_err());
    assert!(
        read(json!({"host": "smtp.example.com", "port": 70000, "from": "a@example.com"})).is_err()
    );
    assert!(
        read(json!({"host": "smtp.example.com"}))
            .unwrap_err()
            .contains("from")
    );
    assert!(read(json!({"host": "smtp example", "from": "a@example.com"})).is_err());
    assert!(
        read(json!({"from": "a@example.com"}))
            .unwrap_err()
            .contains("host")
    );
}

#[test]
fn enhanced_codes_are_read_from_the_reply() {
    assert_eq!(enhanced_code("5.1.1 User unknown"), Some("5.1.1"));
    assert_eq!(enhanced_code("4.7.0 TLS"), Some("4.7.0"));
    assert_eq!(enhanced_code("User unknown"), None);
    assert_eq!(enhanced_code("1.2.3 no"), None);
    assert_eq!(enhanced_code(""), None);
}
