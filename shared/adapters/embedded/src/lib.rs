#![doc = include_str!("../README.md")]

pub mod blob;
pub mod blobdb;
pub mod broker;
pub mod combined;
pub mod docstore;
pub mod secrets;
pub mod sqlite;

pub use blob::FolderBlobStore;
pub use blobdb::SqliteBlobStore;
pub use broker::SqliteBroker;
pub use combined::{import_broker, open_combined};
pub use docstore::{OutboxMessage, SqliteDocumentStore};
pub use secrets::EncryptedSecretStore;
pub use sqlite::Durability;
