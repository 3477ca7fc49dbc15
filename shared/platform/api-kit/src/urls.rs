//! URLs users give the platform to call (webhook endpoints, vendor base URLs, token
//! endpoints): one check, one set of problem codes, wherever they are given.
//!
//! - `invalid_url`: not an absolute http(s) URL;
//! - `https_required`: plain http outside development;
//! - `url_refused`: the guard refuses it: an internal address written as an IP literal (a
//!   name is checked by the guard's resolver when it is called, and a refusal then is
//!   recorded with the same code). The message is the same for every refusal and never
//!   shows an address a name resolved to.

use app_context::AppContext;
use domain::HttpUrl;

use crate::ApiError;

/// The one message of a refused address.
pub const REFUSED: &str = "the address is internal (loopback, private, link-local or otherwise special-purpose) and may not be called";

/// Checks `raw`, the value of `field`, as a URL the platform will call.
pub fn user_url(
    ctx: &AppContext,
    guard: &netguard::Guard,
    field: &str,
    raw: &str,
) -> Result<HttpUrl, ApiError> {
    let invalid =
        || ApiError::bad_request("invalid_url", format!("{field} must be an http(s) URL"));
    let url = HttpUrl::parse(raw).map_err(|_| invalid())?;
    if ctx.requires_https() && !url.is_https() {
        return Err(ApiError::bad_request(
            "https_required",
            format!("{field} must be an https URL"),
        ));
    }
    let parsed = reqwest::Url::parse(raw).map_err(|_| invalid())?;
    guard.check_url(&parsed).map_err(|e| match e {
        netguard::Refused::Internal(_) => refused(field),
        netguard::Refused::NoHost | netguard::Refused::Scheme => invalid(),
    })?;
    Ok(url)
}

/// Checks a bare host (an SMTP server): an IP literal must not be internal; a name is
/// checked when it is resolved.
pub fn user_host(guard: &netguard::Guard, field: &str, host: &str) -> Result<(), ApiError> {
    let bare = host.trim().trim_start_matches('[').trim_end_matches(']');
    let Ok(ip) = bare.parse::<std::net::IpAddr>() else {
        return Ok(());
    };
    let url = match ip {
        std::net::IpAddr::V4(v4) => format!("http://{v4}/"),
        std::net::IpAddr::V6(v6) => format!("http://[{v6}]/"),
    };
    match reqwest::Url::parse(&url) {
        Ok(parsed) if guard.check_url(&parsed).is_err() => Err(refused(field)),
        _ => Ok(()),
    }
}

/// The problem of a refused address in `field`.
pub fn refused(field: &str) -> ApiError {
    ApiError::bad_request("url_refused", format!("{field}: {REFUSED}"))
}
