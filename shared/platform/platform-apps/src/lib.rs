//! The one list of the platform's apps. The runner, packaging, the Bicep checks and (through
//! each handler's catalogue) the registry read it. Adding an app: its crate under
//! `functions/`, its name in [`platform_apps!`] below (and this crate's dependency on it), and
//! the workspace member.

use app_context::{AppCatalogue, AppRegistration};

macro_rules! platform_apps {
    ($($registration:path),+ $(,)?) => {
        /// Every app of the platform, in start-up order.
        pub fn all() -> Vec<AppRegistration> {
            vec![$($registration()),+]
        }
    };
}

// Each app's `registration` function, by path (so that the crate shows as used).
platform_apps!(
    registry::registration,
    webhook_gateway::registration,
    sms::registration,
    email::registration,
    github::registration,
    azure_devops::registration,
    openai::registration,
    azure_openai::registration,
    ollama::registration,
    support::registration,
    crm::registration,
    payment::registration,
    cloud::registration,
);

/// The providers each app has adapters for, as every handler gives them to the registry.
pub fn catalogue() -> Vec<AppCatalogue> {
    all()
        .iter()
        .map(|r| AppCatalogue {
            app: r.slug,
            providers: r.catalogue,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_and_the_catalogue_agree() {
        let apps = all();
        let catalogue = catalogue();
        assert_eq!(apps.len(), catalogue.len());
        for (app, entry) in apps.iter().zip(&catalogue) {
            assert_eq!(app.slug, entry.app);
            assert_eq!(app.catalogue, entry.providers);
        }
        // A provider belongs to one app.
        let mut keys: Vec<&str> = catalogue
            .iter()
            .flat_map(|a| a.providers.iter().map(|p| p.key))
            .collect();
        let n = keys.len();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), n, "a provider key is listed twice");
        assert!(keys.contains(&"twilio") && keys.contains(&"sendgrid"));
    }

    #[test]
    fn every_entry_makes_a_valid_registration() {
        for app in catalogue() {
            for p in app.providers {
                assert!(domain::ProviderKey::parse(p.key).is_ok(), "{}", p.key);
                assert!(domain::DisplayName::parse(p.name).is_ok(), "{}", p.key);
                assert!(domain::HttpUrl::parse(p.base_url).is_ok(), "{}", p.key);
            }
        }
    }
}
