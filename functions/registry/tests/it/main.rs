//! The registry through the local runner, with tokens as `dev-token` makes them.

mod catalogue;
mod credentials;
mod support;
