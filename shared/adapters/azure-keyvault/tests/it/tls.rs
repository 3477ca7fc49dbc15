//! The test PKI: `standins::tls` makes a throw-away CA and a `localhost`/`127.0.0.1` leaf,
//! so the fake serves real HTTPS and the client trusts it through its CA (as it would trust
//! Azure's), not through "accept anything".

pub(crate) use standins::tls::TestTls as TestPki;

/// A fresh PKI; panics only if the temporary folder cannot be written.
pub(crate) fn pki() -> TestPki {
    TestPki::generate().expect("a test PKI")
}
