//! OAuth 2 credentials: building a token client from custody's material, and refreshing a
//! refresh-token credential (what lets it rotate itself).

use std::time::Duration;

use domain::CredentialKind;
use oauth2_client::{AuthMethod, ClientConfig, Grant, OAuthError, TokenClient};
use secrecy::{ExposeSecret as _, SecretString};

use crate::SecretMaterial;

#[derive(Debug, thiserror::Error)]
pub enum OAuthSetupError {
    #[error("only OAuth 2 credentials have a token endpoint")]
    NotOAuth,
    #[error("tokenUrl is not a valid URL")]
    BadUrl,
    #[error("tokenUrl may not be called: {0}")]
    Refused(#[from] netguard::Refused),
}

/// A token client for an `oauth2ClientCredentials` or `oauth2RefreshToken` credential,
/// calling its token endpoint only through `guard` (SSRF protection).
pub fn token_client(
    material: &SecretMaterial,
    guard: &netguard::Guard,
) -> Result<TokenClient, OAuthSetupError> {
    let field = |k: &str| material.get(k).map(|v| v.expose_secret().to_owned());
    let grant = match material.kind() {
        CredentialKind::Oauth2ClientCredentials => Grant::ClientCredentials,
        CredentialKind::Oauth2RefreshToken => Grant::RefreshToken(
            material
                .get("refreshToken")
                .cloned()
                .ok_or(OAuthSetupError::NotOAuth)?,
        ),
        _ => return Err(OAuthSetupError::NotOAuth),
    };
    let url = field("tokenUrl")
        .and_then(|u| reqwest::Url::parse(&u).ok())
        .ok_or(OAuthSetupError::BadUrl)?;
    guard.check_url(&url)?;
    let mut config = ClientConfig::new(url, field("clientId").unwrap_or_default(), grant)
        .with_auth_method(AuthMethod::ClientSecretBasic);
    if let Some(secret) = material.get("clientSecret") {
        config = config.with_secret(secret.clone());
    }
    if let Some(scope) = field("scope") {
        config = config.with_scope(scope);
    }
    if let Some(audience) = field("audience") {
        config = config.with_audience(audience);
    }
    Ok(TokenClient::new(
        guard.client(Duration::from_secs(10)),
        config,
    ))
}

/// Why a refresh-token credential could not renew itself.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error(transparent)]
    Setup(#[from] OAuthSetupError),
    #[error(transparent)]
    OAuth(#[from] OAuthError),
}

/// Uses a refresh-token credential once. When the vendor rotates refresh tokens, returns the
/// material with the new one (to be stored as a new version), and with the access token the
/// grant returned (`accessToken`, `accessTokenExpiresAt` in RFC 3339): with such a vendor a
/// refresh spends the stored refresh token, so only this rotation may refresh, and apps use
/// the access token it kept. `None` when the vendor kept the same refresh token (nothing to
/// rotate; apps may refresh for themselves).
pub async fn refresh(
    material: &SecretMaterial,
    guard: &netguard::Guard,
) -> Result<Option<SecretMaterial>, RefreshError> {
    let client = token_client(material, guard)?;
    let access = client.access_token().await?;
    let old = material
        .get("refreshToken")
        .map(|t| t.expose_secret().to_owned());
    Ok(match client.current_refresh_token() {
        Some(new) if Some(new.expose_secret()) != old.as_deref() => {
            let mut renewed = material
                .with(
                    "refreshToken",
                    SecretString::from(new.expose_secret().to_owned()),
                )
                .with(
                    "accessToken",
                    SecretString::from(access.secret.expose_secret().to_owned()),
                );
            if let Some(at) = access.expires_at {
                renewed = renewed.with("accessTokenExpiresAt", SecretString::from(at.to_rfc3339()));
            }
            Some(renewed)
        }
        _ => None,
    })
}
