//! Client TLS for the uplink from the certificate bundle written by
//! `dcmms-hub enroll`: the hub CA as the only root, and the gateway's
//! certificate and key for client authentication.

use anyhow::Context;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut data.as_slice())
        .collect::<Result<_, _>>()
        .with_context(|| format!("{}: not a PEM certificate file", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{}: holds no certificate", path.display());
    }
    Ok(certs)
}

fn read_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    rustls_pemfile::private_key(&mut data.as_slice())
        .with_context(|| format!("{}: not a PEM private key", path.display()))?
        .with_context(|| format!("{}: holds no private key", path.display()))
}

/// Builds the rustls client configuration from `bundle_dir`.
pub fn client_config(bundle_dir: &Path) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in read_certs(&bundle_dir.join("ca.pem"))? {
        roots.add(c).context("hub CA certificate is not usable")?;
    }
    let certs = read_certs(&bundle_dir.join("cert.pem"))?;
    let key = read_key(&bundle_dir.join("key.pem"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .with_context(|| format!("{}: certificate and key do not match", bundle_dir.display()))
}
