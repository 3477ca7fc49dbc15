//! Conformance tests for the custom-handler protocol.
