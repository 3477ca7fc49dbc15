//! Integration tests: the real `init` in a child process exporting to a fake ingestion
//! endpoint over HTTPS.

mod export;
mod fake;
mod tls;
