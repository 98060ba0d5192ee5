//! TLS for a clinic network (rustls, ring provider, TLS 1.2 and 1.3): the certificate chain
//! and private key are PEM files, read once at start; a file that cannot be read or holds no
//! usable certificate or key is an error naming it, before the port opens.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::ServerError;

/// The PEM files of a TLS endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (PEM `CERTIFICATE` blocks).
    pub cert: PathBuf,
    /// The leaf's private key (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key: PathBuf,
}

fn tls_error(path: &Path, reason: impl std::fmt::Display) -> ServerError {
    ServerError::Tls {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

impl TlsFiles {
    /// Reads both files and builds the acceptor (HTTP/1.1 offered through ALPN).
    pub(crate) fn acceptor(&self) -> Result<TlsAcceptor, ServerError> {
        let certs = CertificateDer::pem_file_iter(&self.cert)
            .map_err(|e| tls_error(&self.cert, format!("cannot read certificates: {e}")))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls_error(&self.cert, format!("malformed PEM: {e}")))?;
        if certs.is_empty() {
            return Err(tls_error(&self.cert, "holds no PEM CERTIFICATE block"));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| tls_error(&self.key, format!("no usable private key: {e}")))?;
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(&self.cert, e))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| {
                tls_error(
                    &self.key,
                    format!(
                        "does not fit the certificate in {}: {e}",
                        self.cert.display()
                    ),
                )
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}
