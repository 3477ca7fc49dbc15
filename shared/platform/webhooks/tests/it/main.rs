//! Integration tests: published and computed vectors, the negative matrix for every scheme,
//! properties, and the cross-check against the `standardwebhooks` crate.

mod crosscheck;
mod matrix;
mod props;
mod support;
mod vectors;
