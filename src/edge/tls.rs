//! TLS configuration for the HTTPS listeners: loading the PEM certificate chain and
//! key into a rustls `ServerConfig` (ring, TLS 1.2 and 1.3 only), and swapping it on reload.
//!
//! rustls ≥ 0.23.5 is required (SPEC 6): tiny_http's bundled rustls 0.20 has
//! RUSTSEC-2024-0336. New connections take the config current at accept time;
//! connections already open keep the one they started with.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// A certificate or key that cannot be used; the message names the file.
#[derive(Debug)]
pub struct TlsError(String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

impl From<TlsError> for io::Error {
    fn from(e: TlsError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e.0)
    }
}

/// Reads `cert` (PEM chain, leaf first) and `key` (PEM: PKCS#8, PKCS#1 or SEC1;
/// RSA, ECDSA or Ed25519) and builds the server configuration.
pub fn load_server_config(cert: &Path, key: &Path) -> Result<ServerConfig, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| {
            TlsError(format!(
                "cannot read TLS certificate chain {}: {e}",
                cert.display()
            ))
        })?;
    if chain.is_empty() {
        return Err(TlsError(format!(
            "no PEM certificate (-----BEGIN CERTIFICATE-----) in {}",
            cert.display()
        )));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        TlsError(format!(
            "cannot read TLS private key {}: {e}",
            key.display()
        ))
    })?;

    let provider = Arc::new(ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError(format!("TLS setup: {e}")))?
        .with_no_client_auth()
        // Also checks that the key belongs to the leaf certificate.
        .with_single_cert(chain, key_der)
        .map_err(|e| {
            TlsError(format!(
                "TLS certificate {} and key {} cannot be used together: {e}",
                cert.display(),
                key.display()
            ))
        })?;
    // Say which protocol we speak, so clients offering h2 settle on HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The current configuration and where it came from.
pub(crate) struct ReloadableTls {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
}

impl ReloadableTls {
    pub(crate) fn load(cert: &Path, key: &Path) -> Result<ReloadableTls, TlsError> {
        let config = load_server_config(cert, key)?;
        Ok(ReloadableTls {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(Arc::new(config)),
        })
    }

    /// The configuration for a connection accepted now.
    pub(crate) fn current(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Re-reads the files; on failure the old configuration stays in force.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        let config = load_server_config(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        Ok(())
    }
}
