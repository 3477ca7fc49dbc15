//! A throw-away certificate authority and a `localhost`/`127.0.0.1` leaf it signs: the fake
//! ingestion endpoint serves real HTTPS, trusted through its CA as the real one is through the
//! platform's, not through "accept any certificate" (which the exporter cannot be told anyway).

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

pub(crate) struct TestPki {
    pub(crate) ca_pem: String,
    /// The leaf then the CA, the chain a server sends.
    pub(crate) chain_pem: String,
    pub(crate) key_pem: String,
}

impl TestPki {
    pub(crate) fn new() -> TestPki {
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "telemetry test CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().expect("CA key");
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca, ca_key);

        // webpki refuses a CA certificate as a server's own: the leaf is an end entity.
        let mut leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("leaf params");
        leaf.is_ca = IsCa::ExplicitNoCa;
        leaf.distinguished_name
            .push(DnType::CommonName, "localhost");
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf_cert = leaf
            .signed_by(&leaf_key, &issuer)
            .expect("leaf certificate");

        TestPki {
            ca_pem: ca_cert.pem(),
            chain_pem: format!("{}{}", leaf_cert.pem(), ca_cert.pem()),
            key_pem: leaf_key.serialize_pem(),
        }
    }
}
