//! Against a fake Blob endpoint: answers Azurite cannot give (throttling, a hang, a 500).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use azure_blob::{AzureBlobStore, Credential, DEV_ACCOUNT, DEV_ACCOUNT_KEY, Options};
use ports::{BlobStore, PortError};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// Serves `answer` to every request (or nothing at all when `None`), recording the request
/// heads. Runs until the test's runtime ends.
async fn fake(answer: Option<&'static str>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let record = record.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                record
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).into_owned());
                match answer {
                    Some(answer) => {
                        let _ = socket.write_all(answer.as_bytes()).await;
                        let _ = socket.shutdown().await;
                    }
                    // Hold the connection open without answering.
                    None => tokio::time::sleep(Duration::from_secs(60)).await,
                }
            });
        }
    });
    (format!("http://127.0.0.1:{port}/{DEV_ACCOUNT}"), seen)
}

fn open(endpoint: &str, timeout: Duration) -> AzureBlobStore {
    let key = azure_blob::AccountKey::from_base64(DEV_ACCOUNT_KEY).unwrap();
    AzureBlobStore::new(
        endpoint,
        Credential::AccountKey {
            account: DEV_ACCOUNT.to_owned(),
            key,
        },
        Options {
            timeout,
            ..Options::default()
        },
    )
    .unwrap()
}

#[tokio::test]
async fn throttling_is_reported_with_the_services_hint() {
    let (endpoint, seen) = fake(Some(
        "HTTP/1.1 503 Server Busy\r\nRetry-After: 7\r\nx-ms-error-code: ServerBusy\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n",
    ))
    .await;
    let store = open(&endpoint, Duration::from_secs(10));
    let r = store.head("busy", "x").await;
    assert!(
        matches!(r, Err(PortError::Throttled { retry_after: Some(d) }) if d == Duration::from_secs(7)),
        "{r:?}"
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "no retry behind the caller's back: {seen:?}");
    let request = seen[0].to_ascii_lowercase();
    assert!(
        request.starts_with("head /devstoreaccount1/busy/x?"),
        "{request}"
    );
    assert!(
        request.contains("&sig=") || request.contains("?sig="),
        "signed with a SAS: {request}"
    );
    assert!(request.contains("x-ms-version:"), "{request}");

    let (endpoint, _) = fake(Some(
        "HTTP/1.1 429 Too Many Requests\r\nx-ms-retry-after-ms: 250\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n",
    ))
    .await;
    let r = open(&endpoint, Duration::from_secs(10))
        .delete("busy", "x")
        .await;
    assert!(
        matches!(r, Err(PortError::Throttled { retry_after: Some(d) }) if d == Duration::from_millis(250)),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_hanging_service_times_out() {
    let (endpoint, _) = fake(None).await;
    let store = open(&endpoint, Duration::from_millis(400));
    let started = Instant::now();
    let r = store.get("hang", "x").await;
    assert!(matches!(r, Err(PortError::Timeout)), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn server_errors_are_transient_and_never_show_the_signature() {
    let (endpoint, _) = fake(Some(
        "HTTP/1.1 500 Internal Server Error\r\nx-ms-error-code: InternalError\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n",
    ))
    .await;
    let r = open(&endpoint, Duration::from_secs(10))
        .list("broken", "")
        .await;
    let Err(e) = r else {
        panic!("a 500 is an error");
    };
    assert!(e.is_transient(), "{e:?}");
    let text = format!(
        "{e:?} {}",
        std::error::Error::source(&e)
            .map(ToString::to_string)
            .unwrap_or_default()
    );
    assert!(
        text.contains("500") || text.contains("InternalError"),
        "{text}"
    );
    assert!(
        !text.contains("sig=") || text.contains("sig=REDACTED"),
        "{text}"
    );

    // A refused connection: the transport error quotes the URL, whose SAS is redacted.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let r = open(
        &format!("http://127.0.0.1:{closed}/{DEV_ACCOUNT}"),
        Duration::from_secs(10),
    )
    .head("gone", "x")
    .await;
    let Err(e) = r else {
        panic!("nothing listens");
    };
    assert!(e.is_transient(), "{e:?}");
    let mut text = format!("{e:?}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(&s.to_string());
        source = s.source();
    }
    assert!(
        !text.contains("sig=")
            || !text
                .split("sig=")
                .skip(1)
                .any(|rest| !rest.starts_with("REDACTED")),
        "{text}"
    );
}
