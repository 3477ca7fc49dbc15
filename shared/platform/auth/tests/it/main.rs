//! Integration tests of the `auth` crate (one test binary, modules per area).

mod entra;
mod support;
