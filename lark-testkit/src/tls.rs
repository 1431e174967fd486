//! HTTPS for the fake platform: a certificate authority made at start, and a server certificate
//! it signs for `127.0.0.1`, `::1` and `localhost`, offering `h2` and `http/1.1` by ALPN.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The server's TLS side: the acceptor, and the CA certificate clients must trust.
pub(crate) struct Tls {
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
    pub(crate) ca_der: Vec<u8>,
}

/// Makes a CA and a server certificate, and the acceptor serving it (offering `h2` too unless
/// `http1_only`).
pub(crate) fn make(http1_only: bool) -> Result<Tls, String> {
    let err = |e: &dyn std::fmt::Display| format!("lark-testkit TLS setup: {e}");
    let ca_key = KeyPair::generate().map_err(|e| err(&e))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(|e| err(&e))?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "lark-testkit CA");
    let ca_cert = ca_params.self_signed(&ca_key).map_err(|e| err(&e))?;
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate().map_err(|e| err(&e))?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).map_err(|e| err(&e))?;
    params.subject_alt_names.push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    params.subject_alt_names.push(SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()));
    let cert = params.signed_by(&key, &issuer).map_err(|e| err(&e))?;

    let chain = vec![CertificateDer::from(cert.der().to_vec())];
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(&e))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| err(&e))?;
    config.alpn_protocols = match http1_only {
        true => vec![b"http/1.1".to_vec()],
        false => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    };
    Ok(Tls { acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)), ca_der: ca_cert.der().to_vec() })
}
