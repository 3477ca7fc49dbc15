//! `KeyVaultSecretStore` against an HTTPS fake Key Vault.

mod fake;
mod store;
mod tls;
