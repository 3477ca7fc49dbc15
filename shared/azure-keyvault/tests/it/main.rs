//! `KeyVaultSecretStore` against an HTTPS fake Key Vault.

mod fake;
mod logs;
mod store;
mod tls;
