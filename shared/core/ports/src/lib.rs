#![doc = include_str!("../README.md")]

pub mod blob;
pub mod bus;
pub mod document;
mod error;
pub mod secrets;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use blob::{BlobInfo, BlobStore, PutOptions};
pub use bus::{
    BrokerReceiver, BusSender, Entity, EntitySpec, Filter, OutgoingMessage, PropertyValue,
    ReceivedMessage, SubscriptionSpec, Topology,
};
pub use document::{Document, DocumentStore, DocumentStoreExt, ETag, Page, Query, WriteOp};
pub use error::{PortError, Result};
pub use secrets::{SecretStore, SecretVersion};
