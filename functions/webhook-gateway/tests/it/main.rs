//! The webhook gateway through the local runner, with the registry keeping secrets.

mod inbound;
mod outbound;
