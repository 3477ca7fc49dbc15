//! Conformance suites of every port, run against the embedded adapters.

mod blob;
mod blobdb;
mod broker;
mod combined;
mod document;
mod secrets;
