//! What a [`TokenClient`](crate::TokenClient) is configured with: the token endpoint, the
//! client's identity and how it authenticates, the grant, and the caching margins.

use std::time::Duration;

use reqwest::Url;
use secrecy::SecretString;

/// How long before a token's expiry it is refreshed, unless configured otherwise.
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// The whole-request timeout (connect, send, read the body), unless configured otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a token whose response carries no `expires_in` is reused. The lifetime is
/// unknown, so the client assumes a short one rather than caching forever; the refresh
/// margin is not subtracted from it because it is an assumption, not a promise.
pub const UNKNOWN_EXPIRY_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// How the client authenticates to the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AuthMethod {
    /// `client_secret_basic`: HTTP Basic with the form-urlencoded id and secret. The RFC's
    /// recommended method and the default.
    #[default]
    ClientSecretBasic,
    /// `client_secret_post`: `client_id` and `client_secret` in the request body.
    ClientSecretPost,
}

/// The grant the client exchanges for access tokens.
#[derive(Debug, Clone)]
pub enum Grant {
    /// RFC 6749 §4.4: the client's own credentials.
    ClientCredentials,
    /// RFC 6749 §6: a refresh token. When the server rotates it (returns a new
    /// `refresh_token`), the client uses the new one from then on and reports it to
    /// [`subscribe_refresh_token`](crate::TokenClient::subscribe_refresh_token) receivers.
    RefreshToken(SecretString),
}

/// The configuration of one [`TokenClient`](crate::TokenClient).
///
/// Build it with [`ClientConfig::new`] (defaults for everything but the endpoint, the
/// client id and the grant) and adjust the public fields.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The token endpoint. The RFC requires TLS; the client does not enforce it (the
    /// workspace has no TLS backend yet and tests use `http://127.0.0.1`).
    pub token_url: Url,
    pub client_id: String,
    /// `None` for a public client: the `client_id` is then sent in the body and no client
    /// authentication is attempted, whatever `auth_method` says.
    pub client_secret: Option<SecretString>,
    /// Sent as `scope` when set (space-delimited, RFC 6749 §3.3).
    pub scope: Option<String>,
    /// Sent as `audience` when set (not in RFC 6749; Auth0 and others ask for it; servers
    /// ignore parameters they do not know, §3.2).
    pub audience: Option<String>,
    pub auth_method: AuthMethod,
    pub grant: Grant,
    /// A cached token is reused only while it stays valid for longer than this.
    pub refresh_margin: Duration,
    /// The whole-request timeout of one call to the token endpoint.
    pub timeout: Duration,
}

impl ClientConfig {
    /// A configuration with Basic authentication, no scope or audience, a 60 s refresh
    /// margin and a 10 s timeout.
    pub fn new(token_url: Url, client_id: impl Into<String>, grant: Grant) -> Self {
        ClientConfig {
            token_url,
            client_id: client_id.into(),
            client_secret: None,
            scope: None,
            audience: None,
            auth_method: AuthMethod::default(),
            grant,
            refresh_margin: DEFAULT_REFRESH_MARGIN,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sets the client secret (a confidential client).
    pub fn with_secret(mut self, secret: SecretString) -> Self {
        self.client_secret = Some(secret);
        self
    }

    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    pub fn with_auth_method(mut self, auth_method: AuthMethod) -> Self {
        self.auth_method = auth_method;
        self
    }

    pub fn with_refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}
