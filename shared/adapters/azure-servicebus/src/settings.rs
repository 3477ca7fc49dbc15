//! The sender the settings choose.
//!
//! - [`NAMESPACE_SETTING`] (`ServiceBusConnection__fullyQualifiedNamespace`, the name the
//!   Functions host's triggers read too) chooses Service Bus with Entra ID: managed identity
//!   in Azure, developer tools (`az login`, `azd auth login`) elsewhere.
//! - [`REST_CONNECTION_SETTING`] (`ServiceBusRestConnection`) is a connection string for a
//!   local stand-in that serves the REST API over HTTPS. It is deliberately *not* the plain
//!   `ServiceBusConnection`: Core Tools gives that one to the triggers, usually pointing at
//!   the Service Bus emulator, which speaks AMQP only.
//!
//! The namespace setting wins when both are set, as the identity-based form does everywhere
//! else in the platform.

use std::collections::BTreeMap;
use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_credential::value;

use crate::{Error, SenderOptions, ServiceBusSender};

/// Setting: the namespace host name (`<ns>.servicebus.windows.net`), reached with Entra ID.
pub const NAMESPACE_SETTING: &str = "ServiceBusConnection__fullyQualifiedNamespace";
/// Setting (optional, Functions convention): `managedidentity` forces managed identity.
pub const CREDENTIAL_SETTING: &str = "ServiceBusConnection__credential";
/// Setting (optional, Functions convention): the client id of a user-assigned identity.
pub const CLIENT_ID_SETTING: &str = "ServiceBusConnection__clientId";
/// Setting: a connection string (`Endpoint=sb://host:port/;SharedAccessKeyName=…;
/// SharedAccessKey=…`) of a stand-in serving the Service Bus REST API over HTTPS. Local use
/// only; Azure namespaces have local (key) auth disabled.
pub const REST_CONNECTION_SETTING: &str = "ServiceBusRestConnection";

pub(crate) fn from_settings(
    settings: &BTreeMap<String, String>,
    mut options: SenderOptions,
) -> Result<Option<ServiceBusSender>, Error> {
    if let Some(namespace) = value(settings, NAMESPACE_SETTING) {
        let credential = match options.credential.take() {
            Some(credential) => credential,
            None => credential(settings)?,
        };
        let sender = ServiceBusSender::with_credential(namespace, credential, options).map_err(
            |e| match e {
                Error::Namespace { reason } => Error::Setting {
                    setting: NAMESPACE_SETTING,
                    reason,
                },
                other => other,
            },
        )?;
        tracing::info!(
            endpoint = sender.endpoint(),
            "bus: Service Bus with Entra ID"
        );
        return Ok(Some(sender));
    }
    if let Some(connection) = value(settings, REST_CONNECTION_SETTING) {
        let sender =
            ServiceBusSender::with_connection_string(connection, options).map_err(|e| match e {
                // The reason never holds the key; the setting name tells where to look.
                Error::ConnectionString { reason } => Error::Setting {
                    setting: REST_CONNECTION_SETTING,
                    reason,
                },
                other => other,
            })?;
        tracing::info!(
            endpoint = sender.endpoint(),
            "bus: a Service Bus REST stand-in with a shared access key"
        );
        return Ok(Some(sender));
    }
    Ok(None)
}

/// Managed identity when the app has one (or the settings ask for it), developer tools
/// otherwise. There is no "try everything" chain on purpose: in Azure a missing identity
/// must fail loudly rather than fall through to a developer's credentials.
fn credential(settings: &BTreeMap<String, String>) -> Result<Arc<dyn TokenCredential>, Error> {
    azure_credential::Choice::from_settings(settings, CREDENTIAL_SETTING, CLIENT_ID_SETTING)
        .credential()
        .map_err(|e| Error::Credential {
            kind: e.kind,
            reason: e.reason,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn nothing_chooses_nothing() {
        let s = settings(&[
            (NAMESPACE_SETTING, "  "),
            // The triggers' emulator connection string is not the sender's.
            (
                "ServiceBusConnection",
                "Endpoint=sb://localhost;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true;",
            ),
        ]);
        assert!(ServiceBusSender::from_settings(&s).unwrap().is_none());
    }

    #[test]
    fn the_namespace_wins_and_uses_entra() {
        let s = settings(&[
            (NAMESPACE_SETTING, "ns.servicebus.windows.net"),
            (CREDENTIAL_SETTING, "managedidentity"),
            (
                REST_CONNECTION_SETTING,
                "Endpoint=sb://localhost:1/;SharedAccessKeyName=k;SharedAccessKey=KEY",
            ),
        ]);
        let sender = ServiceBusSender::from_settings(&s).unwrap().unwrap();
        assert_eq!(sender.endpoint(), "https://ns.servicebus.windows.net");
        assert!(format!("{sender:?}").contains("entra-id"));
    }

    #[test]
    fn the_rest_connection_uses_sas() {
        let s = settings(&[(
            REST_CONNECTION_SETTING,
            "Endpoint=sb://localhost:5443/;SharedAccessKeyName=k;SharedAccessKey=THEKEY",
        )]);
        let sender = ServiceBusSender::from_settings(&s).unwrap().unwrap();
        assert_eq!(sender.endpoint(), "https://localhost:5443");
        let debug = format!("{sender:?}");
        assert!(debug.contains("shared-access-signature") && !debug.contains("THEKEY"));
    }

    #[test]
    fn bad_settings_are_named_and_never_echo_keys() {
        let err = ServiceBusSender::from_settings(&settings(&[(
            REST_CONNECTION_SETTING,
            "Endpoint=http://localhost/;SharedAccessKeyName=k;SharedAccessKey=THEKEY",
        )]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(REST_CONNECTION_SETTING) && !err.contains("THEKEY"),
            "{err}"
        );
        let err = ServiceBusSender::from_settings(&settings(&[(NAMESPACE_SETTING, "ns/q")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains(NAMESPACE_SETTING), "{err}");
    }
}
