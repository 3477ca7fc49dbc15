//! `ServiceBusSender` against an HTTPS fake of the Service Bus REST API.

mod fake;
mod send;
mod tls;
