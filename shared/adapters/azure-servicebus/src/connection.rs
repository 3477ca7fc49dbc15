//! Namespaces and connection strings, parsed into an endpoint and a key.

use std::fmt;

use secrecy::SecretString;

use crate::Error;

/// A parsed `Endpoint=sb://…;SharedAccessKeyName=…;SharedAccessKey=…` connection string.
/// `Debug` never shows the key.
#[derive(Clone)]
pub struct ConnectionString {
    /// `https://host[:port]`.
    pub endpoint: String,
    pub key_name: String,
    pub(crate) key: SecretString,
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field("endpoint", &self.endpoint)
            .field("key_name", &self.key_name)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl ConnectionString {
    /// Parses a connection string. Errors say which part is wrong, never its value (apart from
    /// the endpoint, which is no secret).
    pub fn parse(text: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::ConnectionString {
            reason: reason.to_owned(),
        };
        let (mut endpoint, mut key_name, mut key) = (None, None, None);
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            // Keys hold base64 padding, so only the first '=' separates.
            let Some((name, value)) = part.split_once('=') else {
                return Err(invalid("every part must be name=value"));
            };
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "endpoint" => endpoint = Some(value),
                "sharedaccesskeyname" => key_name = Some(value),
                "sharedaccesskey" => key = Some(value),
                "usedevelopmentemulator" if value.eq_ignore_ascii_case("true") => {
                    return Err(invalid(
                        "it points at the Service Bus emulator, which speaks AMQP only; \
                         the sender needs a stand-in that serves the REST API over HTTPS",
                    ));
                }
                "sharedaccesssignature" => {
                    return Err(invalid(
                        "pre-signed SharedAccessSignature strings are not supported; \
                         give SharedAccessKeyName and SharedAccessKey",
                    ));
                }
                // EntityPath and others: a key scoped to one entity still signs for it.
                _ => {}
            }
        }
        let endpoint = endpoint.ok_or_else(|| invalid("Endpoint is missing"))?;
        let key_name = key_name
            .filter(|v| !v.is_empty())
            .ok_or_else(|| invalid("SharedAccessKeyName is missing"))?;
        let key = key
            .filter(|v| !v.is_empty())
            .ok_or_else(|| invalid("SharedAccessKey is missing"))?;
        let endpoint = namespace_endpoint(endpoint).map_err(|reason| Error::ConnectionString {
            reason: format!("Endpoint: {reason}"),
        })?;
        Ok(ConnectionString {
            endpoint,
            key_name: key_name.to_owned(),
            key: SecretString::from(key.to_owned()),
        })
    }
}

/// `https://host[:port]` from a namespace given as `host[:port]`, `sb://host[:port]/` or
/// `https://host[:port]/`. Plain `http://` is refused: tokens would cross the network in
/// clear text.
pub(crate) fn namespace_endpoint(namespace: &str) -> Result<String, String> {
    let trimmed = namespace.trim();
    let rest = if let Some(rest) = strip_prefix_ci(trimmed, "sb://") {
        rest
    } else if let Some(rest) = strip_prefix_ci(trimmed, "https://") {
        rest
    } else if strip_prefix_ci(trimmed, "http://").is_some() {
        return Err("http:// is not allowed; Service Bus is reached over https".to_owned());
    } else if trimmed.contains("://") {
        return Err("the scheme must be sb:// or https://".to_owned());
    } else {
        trimmed
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() {
        return Err("the host is empty".to_owned());
    }
    if authority.contains(['/', '?', '#', '@']) || authority.chars().any(char::is_whitespace) {
        return Err("expected a host name with an optional port and nothing else".to_owned());
    }
    let url = reqwest::Url::parse(&format!("https://{authority}/"))
        .map_err(|e| format!("not a host name: {e}"))?;
    let host = url.host_str().ok_or("not a host name")?;
    Ok(match url.port() {
        Some(port) => format!("https://{host}:{port}"),
        None => format!("https://{host}"),
    })
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len() && s.is_char_boundary(prefix.len()) {
        let (head, tail) = s.split_at(prefix.len());
        head.eq_ignore_ascii_case(prefix).then_some(tail)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn namespaces_normalise_to_https() {
        for (input, want) in [
            (
                "ns.servicebus.windows.net",
                "https://ns.servicebus.windows.net",
            ),
            (
                "sb://ns.servicebus.windows.net/",
                "https://ns.servicebus.windows.net",
            ),
            (
                "HTTPS://NS.servicebus.windows.net",
                "https://ns.servicebus.windows.net",
            ),
            ("127.0.0.1:8443", "https://127.0.0.1:8443"),
            (" sb://localhost:5443/ ", "https://localhost:5443"),
        ] {
            assert_eq!(namespace_endpoint(input).as_deref(), Ok(want), "{input}");
        }
        for bad in [
            "",
            "http://ns",
            "amqp://ns",
            "ns/queue",
            "user@ns",
            "ns:notaport",
            "a b",
            "sb://",
            "ü://x",
        ] {
            assert!(
                namespace_endpoint(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn connection_strings_parse_and_never_echo_the_key() {
        let c = ConnectionString::parse(
            "Endpoint=sb://localhost:5443/;SharedAccessKeyName=RootManageSharedAccessKey;\
             SharedAccessKey=abc+/def==;EntityPath=q",
        )
        .unwrap();
        assert_eq!(c.endpoint, "https://localhost:5443");
        assert_eq!(c.key_name, "RootManageSharedAccessKey");
        assert_eq!(c.key.expose_secret(), "abc+/def==");
        assert!(!format!("{c:?}").contains("abc+/def=="));

        for (bad, says) in [
            (
                "SharedAccessKeyName=k;SharedAccessKey=SECRETKEY",
                "Endpoint is missing",
            ),
            (
                "Endpoint=sb://h/;SharedAccessKey=SECRETKEY",
                "SharedAccessKeyName",
            ),
            (
                "Endpoint=sb://h/;SharedAccessKeyName=k",
                "SharedAccessKey is missing",
            ),
            (
                "Endpoint=sb://localhost;SharedAccessKeyName=k;SharedAccessKey=SECRETKEY;UseDevelopmentEmulator=true",
                "AMQP",
            ),
            (
                "Endpoint=http://h/;SharedAccessKeyName=k;SharedAccessKey=SECRETKEY",
                "https",
            ),
            ("garbage SECRETKEY", "name=value"),
            (
                "Endpoint=sb://h/;SharedAccessSignature=SharedAccessSignature sr=x&sig=SECRETKEY",
                "not supported",
            ),
        ] {
            let err = ConnectionString::parse(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
            assert!(!err.contains("SECRETKEY"), "the key leaked: {err}");
        }
    }
}
