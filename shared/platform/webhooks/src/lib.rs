#![doc = include_str!("../README.md")]

mod error;
mod headers;
pub mod outbound;
mod request;
mod scheme;
mod schemes;
mod secret;

pub use error::VerifyError;
pub use request::{DEFAULT_BODY_LIMIT, Handshake, Unverified, Verified};
pub use scheme::{
    AzureDevOpsAuth, DEFAULT_TOLERANCE_SECS, GenericHmac, Scheme, SignatureEncoding, TwilioVariant,
};
pub use secret::Secret;
