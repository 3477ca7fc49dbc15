//! Azure Communication Services' HMAC request signing, for every ACS provider (SMS, Email):
//! `StringToSign = "{VERB}\n{path_and_query}\n{x-ms-date};{host};{x-ms-content-sha256}"`,
//! HMAC-SHA256 under the decoded access key, sent as
//! `HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=<base64>`.
//! The key never travels.

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use domain::FailureClassification;
use hmac::Mac as _;
use reqwest::Url;
use resilience::CallError;
use sha2::{Digest as _, Sha256};

use crate::provider::{ProviderCall, fail};

/// The headers of one signed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// `x-ms-date`.
    pub date: String,
    /// `x-ms-content-sha256`: base64(SHA-256(body)).
    pub content_sha256: String,
    /// `Authorization`.
    pub authorization: String,
}

/// Signs a request: `host` as HTTP sends it (the port only when not the scheme's default).
pub fn sign(
    access_key: &[u8],
    method: &str,
    path_and_query: &str,
    host: &str,
    date: &str,
    body: &[u8],
) -> Signed {
    let content_sha256 = STANDARD.encode(Sha256::digest(body));
    let to_sign = format!("{method}\n{path_and_query}\n{date};{host};{content_sha256}");
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(access_key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(to_sign.as_bytes());
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    Signed {
        date: date.to_owned(),
        content_sha256,
        authorization: format!(
            "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={signature}"
        ),
    }
}

/// The `host` that is signed.
pub fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// The path and query that are signed.
pub fn path_and_query(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

/// The decoded access key from the credential's `apiKey` (the `accesskey=` of the resource's
/// connection string). A key that is not base64 does not fit the provider (`auth`).
pub fn access_key(call: &ProviderCall<'_>) -> Result<Vec<u8>, CallError> {
    STANDARD
        .decode(call.secret("apiKey")?.trim())
        .ok()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            fail(
                FailureClassification::Auth,
                "the credential's apiKey is not a base64 access key: use a key from the resource's Keys page",
            )
        })
}

/// A request signed now (per attempt: ACS refuses stale dates), through the call's
/// SSRF-guarded client, with `Accept: application/json` and, for a non-empty body,
/// `Content-Type: application/json`.
pub fn signed(
    call: &ProviderCall<'_>,
    key: &[u8],
    method: reqwest::Method,
    url: &Url,
    body: &[u8],
) -> reqwest::RequestBuilder {
    let date = httpdate::fmt_http_date(SystemTime::now());
    let s = sign(
        key,
        method.as_str(),
        &path_and_query(url),
        &host_header(url),
        &date,
        body,
    );
    let mut request = call
        .http
        .request(method, url.clone())
        .header("x-ms-date", s.date)
        .header("x-ms-content-sha256", s.content_sha256)
        .header(reqwest::header::AUTHORIZATION, s.authorization)
        .header(reqwest::header::ACCEPT, "application/json");
    if !body.is_empty() {
        request = request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec());
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_matches_the_computed_vector() {
        let key = STANDARD
            .decode("MDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDA=")
            .expect("base64");
        let s = sign(
            &key,
            "POST",
            "/emails:send?api-version=2025-09-01",
            "contoso.communication.azure.com",
            "Mon, 01 Jan 2024 00:00:00 GMT",
            br#"{"senderAddress":"a@b.c"}"#,
        );
        assert_eq!(
            s.content_sha256,
            "JppGVhXOsxjTDFEjYrQyeJE/eLwcSbSYvYuKFodVIO0="
        );
        assert_eq!(
            s.authorization,
            "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=HsbczwV/4CJpFKLz3CjWtDrf7e7q6szk+U/o9g42uWw="
        );
        assert_eq!(s.date, "Mon, 01 Jan 2024 00:00:00 GMT");
        // Signed hosts and paths are what HTTP sends.
        let url = Url::parse("https://contoso.communication.azure.com:443/sms?api-version=x")
            .expect("url");
        assert_eq!(host_header(&url), "contoso.communication.azure.com");
        let url = Url::parse("http://localhost:8080/sms?api-version=1").unwrap();
        assert_eq!(host_header(&url), "localhost:8080");
        assert_eq!(path_and_query(&url), "/sms?api-version=1");
        let url = Url::parse("https://x.communication.azure.com/a").unwrap();
        assert_eq!(host_header(&url), "x.communication.azure.com");
    }
}
