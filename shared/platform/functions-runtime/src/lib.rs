#![doc = include_str!("../README.md")]

pub mod app;
pub mod declare;
pub mod encode;
pub mod ncrontab;
pub mod openapi;
pub mod problem;
pub mod route;
pub mod serve;
pub mod triggers;
pub mod wire;

pub use app::{FunctionApp, Invocation, InvocationError, InvocationResult};
pub use declare::{AuthLevel, FunctionDecl, ServiceBusSource, Trigger};
pub use serve::{serve, serve_on};
pub use wire::{InvocationRequest, InvocationResponse};
