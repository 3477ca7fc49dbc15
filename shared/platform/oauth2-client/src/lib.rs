#![doc = include_str!("../README.md")]

mod client;
mod config;
mod error;
mod response;
mod token;

pub use client::TokenClient;
pub use config::{
    AuthMethod, ClientConfig, DEFAULT_REFRESH_MARGIN, DEFAULT_TIMEOUT, Grant,
    UNKNOWN_EXPIRY_LIFETIME,
};
pub use error::OAuthError;
pub use token::AccessToken;
