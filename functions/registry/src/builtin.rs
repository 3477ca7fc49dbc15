//! Providers the platform ships adapters for. They join the catalogue the first time they
//! are looked up (through the same registration, event included), so a tenant can connect
//! to them without an operator registering them first; an operator's own registration of
//! the same key, made earlier, wins.

use domain::{AuthScheme, DisplayName, HttpUrl, NewProvider, ProviderCategory, ProviderKey};

struct Builtin {
    key: &'static str,
    name: &'static str,
    category: ProviderCategory,
    auth: AuthScheme,
    base_url: &'static str,
}

const BUILTINS: &[Builtin] = &[
    Builtin {
        key: "fake",
        name: "Fake SMS (tests and demos)",
        category: ProviderCategory::Sms,
        auth: AuthScheme::ApiKey,
        base_url: "https://fake-sms.invalid",
    },
    Builtin {
        key: "twilio",
        name: "Twilio Programmable Messaging",
        category: ProviderCategory::Sms,
        auth: AuthScheme::Basic,
        base_url: "https://api.twilio.com",
    },
    Builtin {
        key: "019",
        name: "019 SMS",
        category: ProviderCategory::Sms,
        auth: AuthScheme::Bearer,
        base_url: "https://019sms.co.il",
    },
    Builtin {
        key: "acs-sms",
        name: "Azure Communication Services SMS",
        category: ProviderCategory::Sms,
        auth: AuthScheme::Hmac,
        base_url: "https://communication.azure.com",
    },
    Builtin {
        key: "fake-email",
        name: "Fake email (tests and demos)",
        category: ProviderCategory::Email,
        auth: AuthScheme::ApiKey,
        base_url: "https://fake-email.invalid",
    },
    Builtin {
        key: "acs-email",
        name: "Azure Communication Services Email",
        category: ProviderCategory::Email,
        auth: AuthScheme::Hmac,
        base_url: "https://communication.azure.com",
    },
    Builtin {
        key: "sendgrid",
        name: "SendGrid v3",
        category: ProviderCategory::Email,
        auth: AuthScheme::Bearer,
        base_url: "https://api.sendgrid.com",
    },
    Builtin {
        key: "smtp",
        name: "SMTP",
        category: ProviderCategory::Email,
        auth: AuthScheme::Basic,
        // SMTP is not HTTP; the catalogue's URL is informative, the connection's config
        // names the server.
        base_url: "https://smtp.invalid",
    },
];

/// The registration of a built-in provider, if `key` is one.
pub(crate) fn builtin(key: &ProviderKey) -> Option<NewProvider> {
    let b = BUILTINS.iter().find(|b| b.key == key.as_str())?;
    Some(NewProvider {
        key: key.clone(),
        display_name: DisplayName::parse(b.name).ok()?,
        category: b.category,
        auth_scheme: b.auth,
        base_url: HttpUrl::parse(b.base_url).ok()?,
        rate_limit_hints: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_is_a_valid_registration() {
        for b in BUILTINS {
            let key = ProviderKey::parse(b.key).expect("a valid key");
            assert!(builtin(&key).is_some(), "{} does not register", b.key);
        }
        assert!(builtin(&ProviderKey::parse("nobody").unwrap()).is_none());
    }
}
