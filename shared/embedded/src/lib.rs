#![doc = include_str!("../README.md")]

pub mod blob;
pub mod broker;
pub mod docstore;
pub mod secrets;
pub mod sqlite;

pub use blob::FolderBlobStore;
pub use broker::SqliteBroker;
pub use docstore::SqliteDocumentStore;
pub use secrets::EncryptedSecretStore;
pub use sqlite::Durability;
